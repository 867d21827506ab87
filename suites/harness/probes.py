"""Two probes of the HA topology while a scenario runs, in threads of the harness, over
long-lived psycopg connections (a psql per try measured its own start-up: ~0.4 s per
write on a loaded 2-core machine):

  write probe: one committed write (SELECT txid_current(): its commit waits for the
               synchronous standby) through pgbouncer-write every 0.1 s; the longest time
               between two successes is the scenario's time without writes.
  split brain: every 0.5 s each node is asked directly for the same write; two nodes
               committing in one sample is a second primary accepting writes.

An empty or cut-short sample list reads as no failed write, no gap and no split brain, so
check() fails a probe that died, stopped sampling or sampled too rarely."""
import threading
import time
import traceback

import psycopg

TIMEOUT = 3.0  # a write not answered within this counts as failed (the sync standby gone, a hung server)
# A try lasts at most connect (2 s) + the write's timeout (3 s) + its cancel (1 s), so
# longer than two of those plus the interval without a sample is a probe dead or stuck.
HOLE = 13.0


class Prober:
    """One connection, reopened after any error; each write cancelled after TIMEOUT."""

    def __init__(self, dsn):
        self.dsn, self.conn = dsn, None

    def write(self, only_if_primary=False):
        """None when the write committed, else what went wrong."""
        try:
            if self.conn is None or self.conn.closed:
                # No prepared statements: pgbouncer-write pools transactions.
                self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2, prepare_threshold=None)
            timer = threading.Timer(TIMEOUT, self._cancel, [self.conn])
            timer.start()
            try:
                # Asked of a node directly: a replica says so without an error in its log.
                if only_if_primary and self.conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return "in recovery"
                self.conn.execute("SELECT txid_current()").fetchone()
            finally:
                timer.cancel()
            return None
        except Exception as error:  # any failure is the probe's finding, not the probe's crash
            self.close()
            return str(error).splitlines()[0][:160] if str(error) else type(error).__name__

    @staticmethod
    def _cancel(conn):
        try:
            conn.cancel_safe(timeout=1)
        except Exception:
            pass

    def close(self):
        try:
            if self.conn is not None:
                self.conn.close()
        except Exception:
            pass
        self.conn = None


class Probes:
    def __init__(self, write_dsn: str, node_dsns: list, interval: float = 0.1):
        self.writes = []   # (start, end, error or None)
        self.brain = []    # (time, [nodes that committed])
        self.errors = []   # a probe that raised: its traceback
        self.on = threading.Event()
        self.on.set()
        self.t0 = time.time()
        self.threads = [threading.Thread(target=self._guard, args=("write probe", self._write, write_dsn, interval), daemon=True),
                        threading.Thread(target=self._guard, args=("split-brain watch", self._watch, node_dsns), daemon=True)]
        for t in self.threads:
            t.start()

    def _guard(self, name, target, *args):
        try:
            target(*args)
        except BaseException:
            self.errors.append(f"{name} died at +{time.time() - self.t0:.1f}s:\n{traceback.format_exc()}")

    def _write(self, dsn, interval):
        prober = Prober(dsn)
        while self.on.is_set():
            start = time.time()
            error = prober.write()
            end = time.time()
            self.writes.append((start, end, error))
            time.sleep(max(0.0, interval - (end - start)))
        prober.close()

    def _watch(self, dsns):
        probers = [Prober(d) for d in dsns]
        while self.on.is_set():
            t = time.time()
            results = [False] * len(probers)

            def ask(i):
                results[i] = probers[i].write(only_if_primary=True) is None

            askers = [threading.Thread(target=ask, args=(i,)) for i in range(len(probers))]
            for a in askers:
                a.start()
            for a in askers:
                a.join()
            self.brain.append((t, [f"node-{i + 1}" for i, ok in enumerate(results) if ok]))
            time.sleep(max(0.0, 0.5 - (time.time() - t)))
        for p in probers:
            p.close()

    # ------------------------------------------------------------ while the scenario runs
    def started(self) -> bool:
        return bool(self.writes) and bool(self.brain)

    def alive(self) -> bool:
        return all(t.is_alive() for t in self.threads)

    def ok_since(self, t: float):
        """The end of the first successful write started after T, or None."""
        return next((end for start, end, error in list(self.writes) if error is None and start > t), None)

    def writable_now(self) -> int:
        return len(self.brain[-1][1]) if self.brain else -1

    def stop(self):
        """Stops the threads (the caller notes first whether they were alive when its
        window closed: check() judges that)."""
        self.on.clear()
        for t in self.threads:
            t.join(10)

    # ------------------------------------------------------------ what they saw
    def failures(self) -> list:
        return [w for w in self.writes if w[2] is not None]

    def failed_span(self) -> float:
        """From the first failed write to the last: how long clients got errors (as opposed
        to waiting: pgbouncer holds a client while it finds a server)."""
        f = self.failures()
        return round(f[-1][1] - f[0][0], 1) if f else 0.0

    def write_gap(self, t: float) -> float:
        """The longest time between two successful writes from T-1 s on."""
        ends = sorted(end for start, end, error in self.writes if error is None and end >= t - 1)
        return round(max((b - a for a, b in zip(ends, ends[1:])), default=0.0), 1)

    def split_brain(self) -> int:
        return sum(1 for _, nodes in self.brain if len(nodes) > 1)

    def committed_after(self, t: float) -> int:
        return sum(1 for start, _, error in self.writes if error is None and start > t)

    def check(self, alive: bool, t1: float) -> list:
        """FAIL lines for a probe that died, or took too few samples across the window
        (under one a second for the write probe: fewer cannot time the 2 s bounds; one in
        2 s for the watch, whose samples each write on the leader, so a commit waiting out
        its 3 s for a lost synchronous standby slows it to one in 3 s while that lasts)."""
        fails = []
        for name, samples, per_s in (("write probe", [w[0] for w in self.writes], 1.0),
                                     ("split-brain watch", [b[0] for b in self.brain], 0.5)):
            times = sorted(t for t in samples if self.t0 <= t <= t1)
            edges = [self.t0] + times + [t1]
            longest, at = max((b - a, a) for a, b in zip(edges, edges[1:]))
            why = []
            if not alive:
                why.append("died" + (f" after its last sample at +{times[-1] - self.t0:.1f}s" if times else " before its first sample"))
            elif not times:
                why.append(f"0 samples in the {t1 - self.t0:.1f} s window")
            else:
                if len(times) < per_s * (t1 - self.t0):
                    why.append(f"{len(times)} samples in the {t1 - self.t0:.1f} s window, fewer than {per_s:g} a second")
                if longest > HOLE:
                    why.append(f"no sample from +{at - self.t0:.1f}s to +{at + longest - self.t0:.1f}s")
            if why:
                fails.append(f"FAIL  {name}: {'; '.join(why)}")
        return fails + [e for e in self.errors]

    def summary(self) -> str:
        return f"probe writes failed {len(self.failures())} (over {self.failed_span()} s)"
