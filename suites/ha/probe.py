#!/usr/bin/env python3
"""Two probes of the HA topology while a scenario runs, one process, long-lived connections
(a psql per try measured its own start-up: ~0.4 s per write on a loaded 2-core machine).

  write probe: one committed write (SELECT txid_current(): its commit waits for the
               synchronous standby) through pgbouncer-write every INTERVAL; one line per
               try, "START END ok|fail [error]" (epoch seconds). The longest time between
               two successes is the scenario's time without writes.
  split brain: every 0.5 s each node is asked directly for the same write; one line
               "TIME N NODES..." with the nodes that committed it. Two in one sample is
               a second primary accepting writes.

Runs until the file given with --while disappears. A probe that raises takes the process
down with exit 1 (the suite fails a scenario whose probe died or took too few samples).
  probe.py --write DSN --nodes DSN DSN DSN --out FILE --brain FILE --while FILE
"""
import argparse
import os
import sys
import threading
import time
import traceback

import psycopg

TIMEOUT = 3.0  # a write not answered within this counts as failed (the sync standby gone, a hung server)


class Prober:
    """One connection, reopened after any error; each write cancelled after TIMEOUT."""

    def __init__(self, dsn):
        self.dsn = dsn
        self.conn = None

    def write(self, only_if_primary=False):
        try:
            if self.conn is None or self.conn.closed:
                # No prepared statements: pgbouncer-write pools transactions (no named prepared statements through transaction pooling).
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


def write_probe(dsn, out, alive, interval):
    prober = Prober(dsn)
    with open(out, "a", buffering=1) as f:
        while alive():
            start = time.time()
            error = prober.write()
            end = time.time()
            f.write(f"{start:.3f} {end:.3f} ok\n" if error is None else f"{start:.3f} {end:.3f} fail {error}\n")
            time.sleep(max(0.0, interval - (end - start)))
    prober.close()


def brain_probe(dsns, out, alive):
    probers = [Prober(d) for d in dsns]
    with open(out, "a", buffering=1) as f:
        while alive():
            t = time.time()
            results = [None] * len(probers)

            def ask(i):
                results[i] = probers[i].write(only_if_primary=True) is None

            threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(probers))]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            writable = [f"node-{i + 1}" for i, ok in enumerate(results) if ok]
            f.write(f"{t:.3f} {len(writable)} {' '.join(writable)}\n")
            time.sleep(max(0.0, 0.5 - (time.time() - t)))
    for p in probers:
        p.close()


def fatal(name, target, *args):
    """A dead thread would leave the other probe running and the process exiting 0: the
    suite could not tell, and would judge the scenario by a file that stopped growing."""
    try:
        target(*args)
    except BaseException:
        traceback.print_exc()
        print(f"probe.py: {name} died at {time.time():.3f}", file=sys.stderr, flush=True)
        os._exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", required=True)
    parser.add_argument("--nodes", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--brain", required=True)
    parser.add_argument("--while", dest="while_file", required=True)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    alive = lambda: os.path.exists(args.while_file)  # noqa: E731
    threads = [
        threading.Thread(target=fatal, args=("write probe", write_probe, args.write, args.out, alive, args.interval)),
        threading.Thread(target=fatal, args=("split-brain watch", brain_probe, args.nodes, args.brain, alive)),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


if __name__ == "__main__":
    main()
