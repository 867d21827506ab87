"""A suite: its scenarios run one after another on a running topology, each under the
steady load through `payments serve` charging at `payments gateway`, each recording one
verdict; then one report. Subclasses (suites/NAME/scenarios.py) define scenario_NAME
methods and their defaults."""
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback

from .load import Load
from .processes import Payments, get_json
from .proof import prove
from .report import Report, Scenario, log
from .topology import REPO, Topology


class Suite:
    label = "suite"
    defaults: list = []
    ha = False
    # The gateway every serve of the suite charges at; its journal is the proof's evidence.
    gateway_args = ["--latency-ms", 20, "--jitter-ms", 10, "--error-rate", 0.02, "--lost-answer-rate", 0.02,
                    "--decline-rate", 0.01, "--seed", 11]
    serve_args = ["--concurrency", 500, "--batch-size", 200, "--lease", 4, "--retry-base-ms", 50,
                  "--retry-cap-ms", 1000, "--stats-interval", 2]
    batch = int(os.environ.get("STREAM_BATCH", "50"))  # about half of what a debug build charges through the gateway per second with the stream's pace

    def __init__(self, offset: int, binary: str):
        self.topo = Topology(offset, ha=self.ha)
        self.payments = Payments(binary)
        self.work = tempfile.mkdtemp(prefix=f"payments-{self.label}.")
        self.journal = os.path.join(self.work, "gateway.jsonl")
        self.serve_port = self.topo.port(8140)
        self.gateway_port = self.topo.port(8091)  # beside the demo's and the chaos suite's gateway (8090)
        self.api = f"http://127.0.0.1:{self.serve_port}"
        self.gw = f"http://127.0.0.1:{self.gateway_port}"
        self.serve = self.gateway = None
        self.load = None
        self.report = Report(self.label)
        self.unclean_stops = 0
        self.reached = False  # the topology answered: cleanup may restart what a scenario left stopped

    # ------------------------------------------------------------ processes
    def start_serve(self, *extra) -> bool:
        self.serve = self.payments.serve(self.serve_port, os.path.join(self.work, "serve.log"),
                                         "--gateway-url", self.gw, *self.serve_args, *extra)
        return self.serve is not None

    def stop_serve(self) -> bool:
        """A graceful stop must be clean: SIGTERM, exit 0 within 30 s. A serve that ignored
        SIGTERM fails the run even when every money check held: a deploy or a scale-down
        would have to SIGKILL it."""
        if self.serve is None:
            return True
        rc, self.serve = self.serve.stop(), None
        if rc != 0:
            log(f"SERVE DID NOT STOP CLEANLY: exit {rc}")
            self.unclean_stops += 1
        return rc == 0

    def serve_survived(self) -> bool:
        if self.serve is not None and self.serve.running():
            return True
        log("serve died")
        return False

    def restart_gateway(self, *extra) -> bool:
        """(Re)starts the gateway; EXTRA overrides gateway_args. Its journal persists."""
        if self.gateway is not None:
            self.gateway.stop()
        self.gateway = self.payments.gateway(self.gateway_port, self.journal, os.path.join(self.work, "gateway.log"),
                                             *self.gateway_args, *extra)
        return self.gateway is not None

    def gateway_stat(self, name: str) -> int:
        return int((get_json(f"{self.gw}/v1/stats") or {}).get(name, 0))

    def worker_stat(self, name: str) -> int:
        return int(((get_json(f"{self.api}/v1/stats") or {}).get("worker") or {}).get(name, 0))

    # ------------------------------------------------------------ a scenario's load and proof
    def prefix(self, short: str) -> str:
        return f"{short}-{random.randrange(32768)}"

    def begin(self, prefix: str) -> Load:
        """The steady load: a stream of enqueues, a client POSTing through serve, a reader."""
        self.load = Load(self.topo, self.payments, prefix, batch=self.batch, posters=[[self.serve_port]], work=self.work,
                         reader_port=self.serve_port)
        time.sleep(2)
        return self.load

    def end_traffic(self):
        if self.load is not None:
            self.load.stop()

    def prove(self, prefix: str, extra: int = 0, journal: str = None, quiet=False, timeout=None) -> bool:
        load = self.load
        expected = (load.expected if load else 0) + extra
        return prove(self, prefix, expected, journal, timeout=timeout, posted=load.posted if load else [], quiet=quiet)

    def record(self, sc: Scenario, title: str, ok: bool, recovery, notes: str):
        if not sc.record(title, ok, recovery, notes):
            stats = get_json(f"{self.api}/v1/stats")
            log(f"serve stats: {str(stats)[:1500]}")

    # ------------------------------------------------------------ the run
    def prepare(self) -> bool:
        """Before the first scenario (the database reached, its schema current)."""
        rc, out = self.payments.output("migrate", timeout=120)
        if rc != 0:
            print(f"migrate failed (is the topology at offset {self.topo.offset} up?)\n{out[-2000:]}")
            return False
        self.reached = True
        return True

    def start(self) -> bool:
        return self.restart_gateway() and self.start_serve()

    def finish(self):
        self.stop_serve()
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None

    def heal(self):
        """Brings back what a scenario may have left stopped or paused (subclasses)."""

    def cleanup(self):
        """Stops what the suite started and heals what a scenario left stopped."""
        if self.load is not None:
            self.load.abort()
        self.payments.stop_all()
        self.heal()

    def run(self, names: list) -> int:
        names = names or list(self.defaults)
        names = [n for n in names for _ in range(int(os.environ.get("RUNS", "1")))]
        try:
            if not self.prepare() or not self.start():
                return 1
            for name in names:
                print(f"--- {name}", flush=True)
                sc, t0 = Scenario(name), time.time()
                method = getattr(self, f"scenario_{name}", None)
                if method is None:
                    sc.record(name, False, "-", "unknown scenario")
                else:
                    try:
                        method(sc)
                        self.end_traffic()
                    except Exception:
                        traceback.print_exc()
                        sc.record(name, False, "-", "the scenario raised (traceback above)")
                        # Its fault may still be in place: the next scenario starts healed.
                        if self.load is not None:
                            self.load.abort()
                        self.heal()
                    except BaseException:
                        if self.load is not None:
                            self.load.abort()
                        raise
                    self.load = None
                self.report.add(sc, time.time() - t0)
            self.finish()
            if self.unclean_stops:
                self.report.fail(f"serve did not stop cleanly on SIGTERM {self.unclean_stops} times (SERVE DID NOT STOP CLEANLY above)")
            self.report.print()
            if self.report.failed:
                pools = self.topo.run("psql", "admin-write", "-c", "SHOW POOLS", timeout=30)
                print("pgbouncer-write pools:\n" + "\n".join((pools.stdout + pools.stderr).splitlines()[:5]))
                print(f"whole logs kept in {self.work}; serve log (last lines):")
                self.tail(os.path.join(self.work, "serve.log"), 60)
            elif not os.environ.get("KEEP_WORK"):
                shutil.rmtree(self.work, ignore_errors=True)
            return 0 if self.report.failed == 0 else 1
        finally:
            self.cleanup()

    @staticmethod
    def tail(path: str, n: int):
        try:
            with open(path, errors="replace") as f:
                lines = [l for l in f if "read path failed" not in l]
            print("".join(lines[-n:]), end="", flush=True)
        except OSError:
            pass


def main(suite_class, argv=None) -> int:
    """`python3 -m harness NAME [--port-offset N] [SCENARIO...]`; BIN names the binary."""
    argv = list(sys.argv[1:] if argv is None else argv)
    offset = int(os.environ.get("PORT_OFFSET", getattr(suite_class, "default_offset", 0)))
    if argv[:1] == ["--port-offset"]:
        offset, argv = int(argv[1]), argv[2:]
    binary = os.environ.get("BIN") or os.path.join(REPO, ".build", "release", "payments")
    if not os.access(binary, os.X_OK):
        print(f"{suite_class.label}: no binary at {binary} (swift build, or BIN=...)", file=sys.stderr)
        return 1
    # A SIGTERM (make test's lane cleanup) ends the run through its cleanup.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    suite = suite_class(offset, binary)
    return suite.run(argv)
