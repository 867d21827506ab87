"""The money proofs every scenario ends with. The expected payments come from what clients
were told (the load's acknowledgements), never from the database under test, and the
gateway's charges from its own journal: a lost acknowledged write or a charge without its
payment fails here."""
import os


def watch(payments, work: str, prefix: str, expected: int, journal: str, timeout: float = 120) -> tuple:
    """`payments watch`: every payment of PREFIX terminal, each gateway charge one succeeded
    payment's (same amount and currency), nothing charged or posted twice, the ledger
    balanced, no payment failed without a decline. (ok, its PASS/FAIL/INFO lines)."""
    path = os.path.join(work, "proof.txt")
    with open(path, "w") as out:
        rc = payments.run("watch", "--key-prefix", prefix, "--count", expected, "--gateway-journal", journal,
                          "--reads-per-tick", 0, "--expect-replicas", 0, "--timeout", int(timeout),
                          stdout=out, timeout=timeout + 120)
    with open(path) as f:
        lines = [l.rstrip("\n") for l in f if l.startswith(("PASS", "FAIL", "INFO"))]
    return rc == 0, lines


def check_posted(topo, posted: list) -> tuple:
    """Every acknowledged POST ("key -> id") names a payment with that id under that key."""
    if not posted:
        return True, "PASS  every acknowledged POST exists under its key: 0 of 0"
    missing = topo.count(
        "SELECT count(*) FROM unnest(%s::bigint[], %s::text[]) AS a(id, key) "
        "WHERE NOT EXISTS (SELECT 1 FROM payment_jobs j WHERE j.id = a.id AND j.idempotency_key = a.key)",
        ([int(i) for _, i in posted], [k for k, _ in posted]))
    if missing == 0:
        return True, f"PASS  every acknowledged POST exists under its key: {len(posted)} of {len(posted)}"
    shown = "unknown (query failed)" if missing is None else missing
    return False, f"FAIL  every acknowledged POST exists under its key: {shown} of {len(posted)} missing"


def prove(ctx, prefix: str, expected: int, journal: str = None, timeout: float = None, posted=None, quiet=False) -> bool:
    """The proof of a run: watch, then every acknowledged POST. Prints the lines."""
    ok, lines = watch(ctx.payments, ctx.work, prefix, expected, journal or ctx.journal,
                      timeout if timeout is not None else float(os.environ.get("WATCH_TIMEOUT", 120)))
    posted_ok, line = check_posted(ctx.topo, posted if posted is not None else [])
    lines = [l for l in lines if not l.startswith("INFO")] + [line]
    with open(os.path.join(ctx.work, "proof.txt"), "a") as f:
        f.write(line + "\n")
    if not quiet:
        for l in lines:
            print(f"    {l}", flush=True)
    return ok and posted_ok


class Kept:
    """The run's payments succeeded before a fault: each must still be succeeded after it,
    finished at the same moment (not run again) with its debit and its credit."""

    def __init__(self, topo, prefix: str):
        self.topo = topo
        rows = topo.rows("SELECT id, finished_at FROM payment_history WHERE idempotency_key LIKE %s AND state = 'succeeded'",
                         (prefix + "-%",)) or []
        self.ids = [r[0] for r in rows]
        self.finished = [r[1] for r in rows]
        running = topo.rows("SELECT id FROM payment_queue WHERE idempotency_key LIKE %s AND state = 'running'",
                            (prefix + "-%",)) or []
        self.running = [r[0] for r in running]

    def held_open(self):
        """Running before the fault and not terminal yet."""
        if not self.running:
            return 0
        return self.topo.count("SELECT count(*) FROM payment_queue WHERE id = ANY(%s)", (self.running,))

    def check(self) -> tuple:
        total = len(self.ids)
        kept = 0
        if total:
            kept = self.topo.count(
                "SELECT count(*) FROM unnest(%s::bigint[], %s::timestamptz[]) AS b(id, finished_at) "
                "JOIN payment_history h ON h.id = b.id AND h.state = 'succeeded' AND h.finished_at = b.finished_at "
                "WHERE (SELECT count(*) FROM ledger_entries l WHERE l.job_id = b.id) = 2", (self.ids, self.finished))
        word = "PASS" if kept == total else "FAIL"
        return kept == total, f"{word}  every job succeeded before the fault kept its outcome and postings: {kept if kept is not None else '?'} of {total}"
