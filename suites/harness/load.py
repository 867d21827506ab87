"""The steady payment load a scenario runs under, and what its clients were told, kept
outside the database under test: acknowledged enqueue batches (with the time each was
acknowledged), acknowledged POSTs ("key -> id"), failed tries, and status reads."""
import json
import os
import subprocess
import threading
import time

from .processes import http


class Load:
    """A stream of enqueues (BATCH payments every INTERVAL s, keys STREAM_PREFIX+i-n), POSTing
    clients (one per entry of POSTERS: the serve ports each retries across, as behind a
    load balancer) and a status reader through READER_PORT. A failed enqueue batch is
    retried under the same prefix (idempotent) until acknowledged, after stop() too when
    RETRY_AFTER_STOP (it may have committed, and the count must say so); a POST is retried
    with the same key and body until acknowledged, for at most 120 s after stop()."""

    def __init__(self, topo, payments, prefix: str, *, batch=50, interval=0.3, stream_prefix=None,
                 posters=(), reader_port=None, enqueue_args=(), retry_after_stop=True, stream=True, work=None):
        self.topo, self.payments, self.prefix = topo, payments, prefix
        self.batch, self.interval = batch, interval
        self.stream_prefix = stream_prefix if stream_prefix is not None else f"{prefix}-"
        self.enqueue_args, self.retry_after_stop = list(enqueue_args), retry_after_stop
        self.on = threading.Event()
        self.aborted = threading.Event()  # the run is interrupted: no retry after stop
        self.lock = threading.Lock()
        self.acked = []            # (batch index, epoch acknowledged)
        self.enqueue_failures = 0
        self.posted = []           # (key, id)
        self.post_retries = 0
        self.unacknowledged = []   # keys given up on after stop (they may or may not exist)
        self.reads = self.reads_failed = self.reads_lost = 0
        self.threads = []
        self.errors = open(os.path.join(work, "enqueue.err"), "a") if work else subprocess.DEVNULL
        self.on.set()
        if stream:
            self._spawn(self._stream)
        for client, ports in enumerate(posters, start=1):
            self._spawn(self._poster, client, list(ports))
        if reader_port:
            self._spawn(self._reader, reader_port)

    def _spawn(self, target, *args):
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self):
        """Stops the clients; pending acknowledgements finish first."""
        self.on.clear()
        for t in self.threads:
            t.join()
        self.threads = []
        self._close()

    def _close(self):
        if self.errors is not subprocess.DEVNULL:
            self.errors.close()
            self.errors = subprocess.DEVNULL

    def abort(self):
        """Stops the clients without waiting for what they have not been told (an
        interrupted run: a service may be down for good)."""
        self.aborted.set()
        self.on.clear()
        for t in self.threads:
            t.join(10)
        if not any(t.is_alive() for t in self.threads):
            self._close()

    # ------------------------------------------------------------ what the clients were told
    @property
    def enqueued(self) -> int:
        return self.batch * len(self.acked)

    @property
    def expected(self) -> int:
        """Payments clients were told exist."""
        return self.enqueued + len(self.posted)

    def acked_before(self, epoch: float) -> list:
        return [i for i, t in self.acked if t < epoch]

    # ------------------------------------------------------------ clients
    def _stream(self):
        i, pending = 0, False
        while self.on.is_set() or (pending and self.retry_after_stop and not self.aborted.is_set()):
            rc = self.payments.run("enqueue", "--count", self.batch, "--key-prefix", f"{self.stream_prefix}{i}",
                                   *self.enqueue_args, timeout=120, stderr=self.errors)
            with self.lock:
                if rc == 0:
                    self.acked.append((i, time.time()))
                    i, pending = i + 1, False
                else:
                    self.enqueue_failures += 1
                    pending = True
            time.sleep(self.interval if rc == 0 else max(self.interval, 0.5))

    def _poster(self, client: int, ports: list):
        i = r = 0
        while self.on.is_set():
            i += 1
            key = f"{self.prefix}-p{client}-{i}"
            body = {"amount_minor": 100 + i, "currency": "EUR", "debtor": f"acct_c{client}", "creditor": f"acct_m{i % 7}"}
            give_up = None
            while True:
                if not self.on.is_set():
                    give_up = give_up or time.time() + 120
                    if time.time() >= give_up or self.aborted.is_set():
                        with self.lock:
                            self.unacknowledged.append(key)
                        break
                r += 1
                port = ports[(r + client) % len(ports)]
                code, _, text = http("POST", f"http://127.0.0.1:{port}/v1/payments", body, {"Idempotency-Key": key}, timeout=5)
                if code in (200, 201):
                    with self.lock:
                        self.posted.append((key, json.loads(text)["id"]))
                    break
                with self.lock:
                    self.post_retries += 1
                time.sleep(0.3)
            time.sleep(0.1)

    def _reader(self, port: int):
        """Status reads of the run's payments; a failed read is retried once."""
        while self.on.is_set():
            ids = self.topo.rows("SELECT id FROM payment_jobs WHERE idempotency_key LIKE %s ORDER BY random() LIMIT 1",
                                 (self.prefix + "-%",))
            if not ids:
                time.sleep(0.1)
                continue
            url = f"http://127.0.0.1:{port}/v1/payments/{ids[0][0]}"
            if http("GET", url)[0] != 200:
                with self.lock:
                    self.reads_failed += 1
                time.sleep(0.2)
                if http("GET", url)[0] != 200:
                    with self.lock:
                        self.reads_lost += 1
            with self.lock:
                self.reads += 1
            time.sleep(0.05)

    def summary(self) -> str:
        unacknowledged = f", POSTs never acknowledged {len(self.unacknowledged)}" if self.unacknowledged else ""
        return (f"enqueue failures {self.enqueue_failures}, POST retries {self.post_retries}{unacknowledged}, "
                f"reads failed {self.reads_failed} (lost {self.reads_lost})")

