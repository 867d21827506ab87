"""The seeded chaos suite: three `payments serve` on one queue, the external payment gateway
with its faults, clients POSTing with retries (same key until acknowledged) and bulk
enqueues, while a schedule drawn from SEED kills, pauses and restarts serves,
pgbouncer-write, the primary, a replica and the gateway. Afterwards, with every fault
healed, the reconcilers settle what is left; then every process stops and the money is
checked from the database and the gateway's own journal:
  every acknowledged POST and enqueue exists; every job is terminal; each gateway charge
  belongs to exactly one succeeded job (same amount and currency) with one debit and one
  credit; no succeeded job lacks its charge; no key was charged twice; the ledger
  balances per currency; and no payment failed without a decline (every fault here heals
  well within the payments' retry budget, so any such failure is a liveness defect).
Every fault is verified when applied (the process gone and back, the port refusing), and
one that was not applied fails the run, as does a serve that did not start.
A violation prints the seed and the schedule; the same SEED replays the same schedule and,
on a database that has not run it (make chaos starts a fresh topology), the same keys, so
the gateway's fault draws and the workers' jitter (functions of seed, key and attempt)
replay too.
  SEED=N (random by default)  MINUTES=M (2)  BIN=path/to/payments  PORT_OFFSET (100)"""
import os
import random
import shutil
import signal
import time

from harness import faults
from harness.load import Load
from harness.processes import http
from harness.proof import check_posted, watch
from harness.report import Scenario
from harness.suite import Suite
from harness.wait import seconds_until

FAULTS = ["sigkill_serve", "sigstop_serve", "restart_pgbouncer_write", "restart_primary", "stop_replica",
          "restart_gateway", "sigkill_pgbouncer_write", "crash_primary"]
LEASE = 4


def say(message: str):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Chaos(Suite):
    label = "chaos"
    default_offset = 100

    def __init__(self, offset: int, binary: str):
        super().__init__(offset, binary)
        self.seed = int(os.environ.get("SEED") or random.randrange(2 ** 30))
        self.minutes = float(os.environ.get("MINUTES", "2"))
        self.gateway_port = self.topo.port(8090)
        self.gw = f"http://127.0.0.1:{self.gateway_port}"
        self.gateway_args = ["--latency-ms", 10, "--jitter-ms", 10, "--lost-answer-rate", 0.05, "--error-rate", 0.05,
                             "--decline-rate", 0.02, "--hang-rate", 0.005, "--hang-seconds", 10, "--seed", self.seed]
        self.serve_ports = [self.topo.port(8121 + n) for n in range(3)]
        self.serves = [None, None, None]
        self.sc = Scenario("chaos")
        self.applied = []

    # ------------------------------------------------------------ the schedule
    def schedule(self) -> list:
        """One fault every 5-10 s, drawn from the seed before anything runs, so it can be
        printed and replayed. The kinds come in seeded shuffled rounds, so every kind runs
        once before any runs twice. (at, kind, serve, hold seconds)."""
        rng = random.Random(self.seed)
        kinds = FAULTS[:]
        rng.shuffle(kinds)
        plan, t, k, end = [], 5, 0, int(self.minutes * 60)
        while t < end - 5:
            plan.append((t, kinds[k % len(kinds)], rng.randrange(3), 1 + rng.randrange(3)))
            k += 1
            t += 5 + rng.randrange(6)
        return plan

    def start_serve_n(self, n: int) -> bool:
        self.serves[n] = self.payments.serve(self.serve_ports[n], os.path.join(self.work, f"serve-{n}.log"),
                                             "--gateway-url", self.gw, "--lease", LEASE, "--concurrency", 300, "--batch-size", 100,
                                             "--retry-base-ms", 50, "--retry-cap-ms", 1000, "--stats-interval", 5, "--log-level", "notice")
        return self.serves[n] is not None

    def fault(self, text: str):
        self.applied.append(f"+{time.time() - self.t_start:.0f}s {text}")
        say(text)

    def missing(self, text: str):
        self.sc.missing(f"+{time.time() - self.t_start:.0f}s {text}")

    # ------------------------------------------------------------ the faults
    def apply(self, kind: str, n: int, hold: int):
        sc, topo = self.sc, self.topo
        pgb_port, primary_port = topo.port(6432), topo.port(5432)
        if kind == "sigkill_serve":
            self.fault(f"SIGKILL serve {n} (restart after {hold} s)")
            faults.send(sc, self.serves[n].pid if self.serves[n] else None, signal.SIGKILL, f"serve {n}")
            if self.serves[n]:
                self.serves[n].popen.wait()
            time.sleep(hold)
            self.start_serve_n(n) or self.missing(f"serve {n} did not restart")
        elif kind == "sigstop_serve":
            # Longer than the lease: another serve takes its jobs, then it wakes up.
            self.fault(f"SIGSTOP serve {n} for {LEASE + hold} s, then SIGCONT")
            pid = self.serves[n].pid if self.serves[n] else None
            faults.send(sc, pid, signal.SIGSTOP, f"serve {n}")
            time.sleep(LEASE + hold)
            faults.resume(pid)
        elif kind in ("restart_pgbouncer_write", "sigkill_pgbouncer_write"):
            if kind == "restart_pgbouncer_write":
                self.fault(f"pgbouncer-write stopped for {hold} s")
                faults.stop_service(sc, topo, "pgbouncer-write", port=pgb_port)
            else:
                # While completions commit: a commit whose answer the pooler's death loses.
                self.fault(f"pgbouncer-write SIGKILL, back after {hold} s")
                faults.kill_service(sc, topo, "pgbouncer-write", port=pgb_port)
            time.sleep(hold)
            faults.start_service(sc, topo, "pgbouncer-write")
        elif kind == "restart_primary":
            self.fault(f"primary stopped for {hold} s")
            faults.stop_service(sc, topo, "primary", port=primary_port)
            time.sleep(hold)
            faults.start_service(sc, topo, "primary")
        elif kind == "crash_primary":
            # Immediate shutdown (SIGQUIT to the postmaster): no checkpoint, in-flight
            # commits cut off, crash recovery at the next start.
            self.fault(f"primary crashed (immediate shutdown), back after {hold} s")
            faults.kill_service(sc, topo, "primary", port=primary_port, sig=signal.SIGQUIT)
            time.sleep(hold)
            faults.start_service(sc, topo, "primary")
        elif kind == "stop_replica":
            replica = f"replica-{n % 2 + 1}"
            self.fault(f"{replica} stopped for {hold * 2} s")
            faults.stop_service(sc, topo, replica)
            time.sleep(hold * 2)
            faults.start_service(sc, topo, replica)
        elif kind == "restart_gateway":
            self.fault(f"gateway SIGKILL, back after {hold} s")
            faults.send(sc, self.gateway.pid if self.gateway else None, signal.SIGKILL, "the gateway")
            if self.gateway:
                self.gateway.popen.wait()
            time.sleep(hold)
            self.restart_gateway() or self.missing("the gateway did not restart")

    # ------------------------------------------------------------ the run
    def run(self, names: list) -> int:
        try:
            return self._run()
        finally:
            self.cleanup()

    def cleanup(self):
        super().cleanup()
        self.topo.run("psql", "admin-write", "-c", "RESUME", timeout=30)
        for s in ("primary", "replica-1", "replica-2", "pgbouncer-write"):
            self.topo.start(s)

    def _run(self) -> int:
        prefix = f"chaos-{self.seed}"
        # Keys are unique for ever: on a database that already ran this seed, a fresh prefix
        # (the schedule replays; the per-key fault draws do not).
        if (self.topo.count("SELECT count(*) FROM payment_keys WHERE idempotency_key LIKE %s", (prefix + "-%",)) or 0) > 0:
            prefix = f"chaos-{self.seed}-{int(time.time())}"
            say(f"this database already ran seed {self.seed}: keys under {prefix} (per-key faults will differ from the first run)")
        plan = self.schedule()
        say(f"seed {self.seed}, {self.minutes:g} min, {len(plan)} faults; work dir {self.work}")
        for at, kind, n, hold in plan:
            print(f"  at +{at}s: {kind} (serve {n}, hold {hold} s)", flush=True)
        if not self.prepare():
            return 1
        if not self.restart_gateway() or not all(self.start_serve_n(n) for n in range(3)):
            return 1
        # Bulk enqueues of 200 a second, and two clients POSTing across the three serves.
        self.load = load = Load(self.topo, self.payments, prefix, batch=200, interval=1, stream_prefix=f"{prefix}-e", work=self.work,
                                posters=[self.serve_ports, self.serve_ports])
        self.t_start = time.time()
        end = self.minutes * 60
        for at, kind, n, hold in plan:
            time.sleep(max(0.0, self.t_start + at - time.time()))
            self.apply(kind, n, hold)
        time.sleep(max(0.0, self.t_start + end - time.time()))

        say("faults over; stopping the load (clients finish the key they hold)")
        load.stop()
        for n in range(3):
            if not (self.serves[n] and self.serves[n].running()):
                self.start_serve_n(n) or self.missing(f"serve {n} did not start for the settling")
        say("waiting for every job to be terminal (reconciling jobs settle once no charge can land)")
        settled = seconds_until(180, lambda: self.topo.open_jobs(prefix) == 0, interval=0.2) is not None
        for s in self.serves:
            if s:
                s.stop()
        code, _, gateway_stats = http("GET", f"{self.gw}/v1/stats")
        gateway_stats = gateway_stats if code == 200 else "unreachable"
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None

        # ------------------------------------------------------------ the money
        expected = load.expected
        say(f"acknowledged: {load.enqueued} enqueued, {len(load.posted)} POSTed; checking")
        verdict = True
        ok, lines = watch(self.payments, self.work, prefix, expected, self.journal, timeout=10)
        verdict &= ok
        ok, line = check_posted(self.topo, load.posted)
        verdict &= ok
        for l in lines + [line]:
            print(l, flush=True)
        if not settled:
            print("FAIL  every job settled within 180 s after the faults")
            verdict = False
        like = (prefix + "-%",)
        states = ",".join(f"{s} {c}" for s, c in self.topo.rows(
            "SELECT state, count(*) FROM payment_jobs WHERE idempotency_key LIKE %s GROUP BY state ORDER BY 1", like) or [])
        reasons = ",".join(f"{r} {c}" for r, c in self.topo.rows(
            "SELECT COALESCE(failure_reason, 'none'), count(*) FROM payment_jobs WHERE idempotency_key LIKE %s AND state = 'failed' "
            "GROUP BY failure_reason ORDER BY 1", like) or [])
        # Liveness: every fault here heals within seconds, far inside the budget (an hour),
        # so a payment failed for anything but a decline is a defect.
        undeclined = self.topo.count("SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE %s AND state = 'failed' "
                                     "AND (failure_reason IS NULL OR failure_reason = 'budget_exhausted')", like)
        longest = self.topo.value("SELECT COALESCE(round(max(EXTRACT(EPOCH FROM finished_at - created_at))::numeric, 1), 0) "
                                  "FROM payment_jobs WHERE idempotency_key LIKE %s", like)
        reconciled = self.topo.count("SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE %s AND last_error LIKE '%%reconcil%%'", like)
        if undeclined == 0:
            print("PASS  no payment failed without a decline")
        else:
            print(f"FAIL  no payment failed without a decline: {'unknown (query failed)' if undeclined is None else undeclined} did")
            verdict = False
        if self.sc.not_injected:
            print(f"FAIL  every scheduled fault applied: {len(self.sc.not_injected)} were not:")
            for m in self.sc.not_injected:
                print(f"        {m}")
            verdict = False
        elif not self.applied:
            print("FAIL  every scheduled fault applied: none ran")
            verdict = False
        else:
            print(f"PASS  every scheduled fault applied: {len(self.applied)}")
        print(f"INFO  jobs: {states}; failed by reason: {reasons or 'none'}; longest enqueue-to-finish {longest} s; "
              f"settled through reconciliation: {reconciled}; POST retries: {load.post_retries}")
        print(f"INFO  gateway since its last start: {gateway_stats}")
        # The slowest payments' own account of where their time went, so a long tail can be
        # read after the topology is gone.
        for row in self.topo.rows(
                "SELECT idempotency_key, state, attempt, lease_losses, round(EXTRACT(EPOCH FROM finished_at - created_at)::numeric, 1), "
                "round(EXTRACT(EPOCH FROM claimed_at - created_at)::numeric, 1), cancel_requested_at IS NOT NULL, left(COALESCE(last_error, ''), 160) "
                "FROM payment_jobs WHERE idempotency_key LIKE %s AND finished_at IS NOT NULL "
                "ORDER BY finished_at - created_at DESC LIMIT 3", like) or []:
            key, state, attempt, losses, took, last_claim, cancel, error = row
            print(f"INFO  slow: {key} {state} after {took} s (last claimed at +{last_claim} s), attempt {attempt}, "
                  f"lease losses {losses}, cancel asked {cancel}, last error: {error or 'none'}")
        print("INFO  faults applied:")
        for a in self.applied:
            print(f"        {a}")
        print(f"SUMMARY seed={self.seed} payments={expected} faults={len(self.applied)} states=[{states}] "
              f"failed_without_decline={'?' if undeclined is None else undeclined} longest_wait_s={longest}", flush=True)
        if verdict:
            say(f"PASS: seed {self.seed}, {len(self.applied)} faults, {expected} payments")
            shutil.rmtree(self.work, ignore_errors=True)
            return 0
        say(f"FAIL: seed {self.seed} (replay: SEED={self.seed} MINUTES={self.minutes:g} make chaos); logs kept in {self.work}")
        return 1


SUITE = Chaos
