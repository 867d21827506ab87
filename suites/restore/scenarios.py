"""The restore drill: what failover cannot fix, fixed from backups while payments flow.
  truncate     an operator's TRUNCATE of the books (payment_history, ledger_entries) at T;
               the cluster restored to just before T
  disk_lost    every data directory removed; the cluster restored to the last archived WAL
  archive_gap  the same with a segment removed from the archive: the restore says it
               stopped short (exit 3), adoption brings back what was charged after the hole
On the HA topology (TOPOLOGY_HA=1, as scripts/run-ha runs it) the truncate scenario
restores through Patroni: the cluster re-bootstrapped from the backup on one node, the two
others cloned from it.
Each under steady load (an enqueue of 50 payments every 0.3 s, each batch's
acknowledgement time recorded outside the database) through `payments serve` and the
external gateway. After each restore: `payments reconcile --adopt` re-creates the charged
payments the restore lost, serve restarts, open payments settle through lookups, and the
proofs run: every payment acknowledged before T (or before the last archived WAL) exists,
every gateway charge belongs to exactly one succeeded payment, nothing is charged twice,
the ledger balances. Prints the RPO (acknowledged payments missing before and after
adoption) and the RTO (restore start to the first payment processed).
  suites/restore/run.sh [--port-offset N] [SCENARIO...]
Needs a running topology and a built binary (BIN, default release)."""
import os
import re
import time

from harness import faults
from harness.load import Load
from harness.proof import watch
from harness.report import log
from harness.suite import Suite
from harness.wait import now, seconds_until, since

HA = os.environ.get("TOPOLOGY_HA") == "1"
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "8"))


class RestoreDrill(Suite):
    label = "restore-ha" if HA else "restore"
    ha = HA
    defaults = ["truncate"] if HA else ["truncate", "disk_lost", "archive_gap"]

    def __init__(self, offset, binary):
        super().__init__(offset, binary)
        self.writer = None if HA else "primary"  # the HA leader, wherever it is, when no node is named
        self.drill_started = False

    def cleanup(self):
        super().cleanup()
        # A drill that stopped half-way leaves the nodes down: bring back what can come back.
        if self.drill_started and self.topo.run("status").returncode != 0:
            self.topo.run("restore", "--to", "latest", timeout=900)

    def primary(self, statement: str):
        return self.topo.superuser(statement, self.writer)

    def prepare(self) -> bool:
        if not super().prepare():
            return False
        self.drill_started = True
        self.drill_start = self.primary("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
        # A full backup to restore from (the scenarios add incremental ones under load).
        t0 = now()
        out = self.topo.run("backup", "full", timeout=900)
        if out.returncode != 0:
            print(out.stdout + out.stderr)
            return False
        print(f"full backup before the drill: {since(t0)} s", flush=True)
        return True

    # ------------------------------------------------------------ the load and what it was told
    def start_load(self, prefix: str) -> Load:
        """A batch every 0.3 s, each acknowledged batch kept with the time its COMMIT was
        answered; a failed batch is retried under the same prefix while the load runs."""
        self.load = Load(self.topo, self.payments, prefix, batch=self.batch, enqueue_args=["--timeout", 5], work=self.work,
                         retry_after_stop=False)
        return self.load

    def missing_before(self, prefix: str, epoch: float) -> int:
        """Acknowledged before EPOCH and not in the database."""
        batches = self.load.acked_before(epoch)
        if not batches:
            return 0
        have = self.topo.count("SELECT count(*) FROM payment_keys WHERE idempotency_key LIKE ANY(%s)",
                               ([f"{prefix}-{i}-%" for i in batches],))
        return self.batch * len(batches) - (have or 0)

    # ------------------------------------------------------------ after a restore
    def settle_and_prove(self, sc, prefix: str, t_restore: float, cutoff: float) -> bool:
        """The runbook's order: the lost charged payments re-created before any new payment
        is taken, then serve (open payments settle through lookups), then new payments."""
        self.notes = "settled nothing"
        self.rpo_before = self.missing_before(prefix, cutoff)
        # The drill's payments only: the topology may hold others, charged at other gateways.
        rc, out = self.payments.output("reconcile", "--gateway-url", self.gw, "--from", self.drill_start, "--adopt")
        with open(os.path.join(self.work, "reconcile.txt"), "w") as f:
            f.write(out)
        shown = [l for l in out.splitlines() if not re.match(r"^\s*20[0-9]{2}-|^\s+\S+\t", l)]
        for l in shown[:16]:
            log(f"  {l}")
        if not self.start_serve():
            log("serve did not start after the restore")
            return False
        # RTO: new payments taken and processed again (the restored queue may hold none).
        self.payments.run("enqueue", "--count", 10, "--key-prefix", f"{prefix}-after")
        rto = seconds_until(120, lambda: (self.topo.count("SELECT count(*) FROM payment_history WHERE idempotency_key LIKE %s",
                                                          (f"{prefix}-after-%",)) or 0) > 0)
        rto = None if rto is None else round(now() - t_restore, 1)
        adopted = (re.search(r"^adopted: (\d+)", out, re.M) or [None, "0"])[1]
        rpo_after = self.missing_before(prefix, cutoff)
        # Every payment of the prefix now in the database must settle, charged once.
        present = self.topo.count("SELECT count(*) FROM payment_keys WHERE idempotency_key LIKE %s", (prefix + "-%",))
        if present is None:
            log("the drill's payments could not be counted after the restore")
            return False
        proof, lines = watch(self.payments, self.work, prefix, present, self.journal, float(os.environ.get("WATCH_TIMEOUT", 180)))
        for l in lines:
            if not l.startswith("INFO"):
                log(l)
        log(f"RTO {rto if rto is not None else 'none'} s (restore start to the first new payment finished); RPO: {self.rpo_before} "
            f"acknowledged payments missing before adoption, {rpo_after} after (adopted {adopted}); reconcile exit {rc}")
        # The replicas are replicas still, after new payments were written (a recovery
        # target left in the settings would have promoted them at the first commit past it).
        good = True
        replicas = self.topo.replicas() if HA else ["replica-1", "replica-2"]
        if len(replicas) != 2:
            good = False
            log(f"two replicas expected after the restore, found: {' '.join(replicas)}")
        for n in replicas:
            if self.topo.superuser("SELECT pg_is_in_recovery()", n) != "t":
                good = False
                log(f"{n} is not in recovery after the restore")
        if HA:
            leader_now = self.topo.leader()
            if not leader_now or self.topo.timeline() <= self.timeline_before:
                good = False
                log(f"after the restore: leader '{leader_now}', timeline {self.topo.timeline()} (before: {self.timeline_before})")
        self.notes = f"RTO {rto if rto is not None else 'none'}s; acknowledged missing {self.rpo_before} -> {rpo_after} after adopting {adopted}"
        return good and proof and rc == 0 and rto is not None

    def restore(self, target: str):
        out = self.topo.run("restore", "--to", target, timeout=900)
        for l in (out.stdout + out.stderr).splitlines():
            print(f"    {l}", flush=True)
        return out

    # ------------------------------------------------------------ scenarios
    def scenario_truncate(self, sc):
        p = self.prefix("r-trunc")
        ok = True
        load = self.start_load(p)
        time.sleep(LOAD_SECONDS)
        t0 = now()
        out = self.topo.run("backup", "incr", timeout=900)
        if out.returncode != 0:
            ok = False
            log(f"backup under load failed: {(out.stdout + out.stderr)[-300:]}")
        log(f"incremental backup under load: {since(t0)} s")
        time.sleep(2)
        T = self.primary("SELECT clock_timestamp()")
        if not T:
            load.stop()
            return self.record(sc, "TRUNCATE undone (to T)", False, "-", "the primary did not say what time it was: nothing truncated")
        time.sleep(0.5)
        self.timeline_before = self.topo.timeline() if HA else 0
        if self.primary("TRUNCATE ledger_entries, payment_history") is None:
            sc.missing("the TRUNCATE did not run")
        if self.topo.count("SELECT count(*) FROM payment_history WHERE finished_at < %s", (T,)) != 0:
            sc.missing("payments finished before T still in the history after the TRUNCATE")
        log(f"TRUNCATE ledger_entries, payment_history just after {T}")
        time.sleep(2)
        load.stop()
        self.stop_serve()
        t_restore = now()
        if self.restore(T).returncode != 0:
            ok = False
        cutoff = float(self.primary(f"SELECT EXTRACT(EPOCH FROM '{T}'::timestamptz)") or 0)
        # Not a vacuous pass: the load must have been acknowledged before T.
        if len(load.acked_before(cutoff)) < 5:
            sc.missing(f"fewer than 5 batches acknowledged before T ({len(load.acked_before(cutoff))})")
        if not self.topo.count("SELECT count(*) FROM payment_history"):
            ok = False
            log("the history is still empty after the restore")
        ok = self.settle_and_prove(sc, p, t_restore, cutoff) and ok
        # The restore itself, before adoption could hide anything: every payment
        # acknowledged before T is there.
        if self.rpo_before != 0:
            ok = False
            log(f"{self.rpo_before} payments acknowledged before T were missing after the restore")
        self.record(sc, "TRUNCATE undone (to T)" + (", HA through Patroni" if HA else ""), ok, "-", self.notes)

    def scenario_disk_lost(self, sc):
        if HA:
            return self.record(sc, "disks lost (to latest)", False, "-", "the seed topology's scenario (run it without TOPOLOGY_HA)")
        p = self.prefix("r-disk")
        ok = True
        # Longer than archive_timeout: part of the load is archived before the disks go.
        load = self.start_load(p)
        time.sleep(LOAD_SECONDS + 12)
        faults.lose_every_disk(sc, self.topo)
        lost_at = now()
        log("every data directory removed")
        time.sleep(2)
        load.stop()
        self.stop_serve()
        t_restore = now()
        if self.restore("latest").returncode != 0:
            ok = False
        # What a client was told before the disks went is what may be missing (the last
        # archived segment bounds it): everything acknowledged more than archive_timeout
        # (10 s) and a margin before the loss must be there, before adoption.
        archived_by = lost_at - 10 - 5
        if len(load.acked_before(archived_by)) < 5:
            sc.missing(f"fewer than 5 batches acknowledged before {archived_by:.1f}")
        early_missing = self.missing_before(p, archived_by)
        if early_missing:
            ok = False
            log(f"{early_missing} payments acknowledged over 15 s before the loss are missing: the archive fell behind")
        ok = self.settle_and_prove(sc, p, t_restore, lost_at) and ok
        log(f"acknowledged and never charged, gone with the disks: {self.missing_before(p, lost_at)} "
            "(their clients learn it from GET /v1/payments/{id} or by retrying)")
        self.record(sc, "disks lost (to latest)", ok, "-", self.notes)

    def scenario_archive_gap(self, sc):
        """A segment lost from the archive (a repository damaged, a segment never pushed): a
        restore to latest cannot replay past the hole. It must say so (exit 3, the segment
        named) rather than promote quietly; what came after the hole comes back as far as
        the provider's charges reach (adoption), and the proofs still hold."""
        if HA:
            return self.record(sc, "archive gap (to latest)", False, "-", "the seed topology's scenario (run it without TOPOLOGY_HA)")
        p = self.prefix("r-gap")
        ok = True
        # At least two segments past the last backup: the load's, switched twice (and
        # archived within a second each, asynchronously) rather than waiting for archive_timeout.
        load = self.start_load(p)
        time.sleep(LOAD_SECONDS)
        self.primary("SELECT pg_switch_wal()")
        time.sleep(3)
        self.primary("SELECT pg_switch_wal()")
        time.sleep(3)
        faults.lose_every_disk(sc, self.topo)
        lost_at = now()
        log("every data directory removed")
        ranges = re.findall(r"(?m)\s([0-9A-F]+)\.\.([0-9A-F]+)\s*$", self.topo.run("backups").stdout)
        if not ranges:
            sc.missing("no backup's WAL range found in `topology backups`")
        else:
            hole = faults.remove_archived_segment_after(sc, self.topo, ranges[-1][1])
            if hole:
                log(f"removed segment {hole} from the archive")
        time.sleep(2)
        load.stop()
        self.stop_serve()
        t_restore = now()
        out = self.restore("latest")
        if out.returncode != 3 or "a segment is missing" not in out.stdout + out.stderr:
            ok = False
            log(f"restore to latest over a hole exited {out.returncode} without naming the missing segment")
        ok = self.settle_and_prove(sc, p, t_restore, lost_at) and ok
        self.record(sc, "archive gap (to latest)", ok, "-", f"restore exit {out.returncode}; {self.notes}")


SUITE = RestoreDrill
