"""The payments processes a suite runs (serve, the simulated gateway, one-shot commands)
and the HTTP calls its clients make. Every process started here is stopped by PID."""
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request

from .wait import seconds_until


def http(method: str, url: str, body=None, headers=None, timeout: float = 5):
    """(status, headers, body text); status 0 when nothing answered."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in req.headers:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode(errors="replace")
    except Exception:
        return 0, {}, ""


def get_json(url: str, timeout: float = 5):
    code, _, text = http("GET", url, timeout=timeout)
    try:
        return json.loads(text) if code == 200 else None
    except ValueError:
        return None


class Process:
    """A payments server started in the background, logging to LOG."""

    def __init__(self, popen, port: int, log: str, name: str):
        self.popen, self.port, self.log, self.name = popen, port, log, name

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig=signal.SIGKILL):
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:
            self.popen.wait()

    def stop(self, grace: float = 30):
        """SIGTERM (graceful: in-flight jobs finish or are released), SIGKILL after GRACE
        seconds. Serve's exit status: a server that ignored SIGTERM is a defect (-9)."""
        if self.popen.poll() is not None:
            return self.popen.returncode
        self.kill(signal.SIGCONT)
        self.kill(signal.SIGTERM)
        try:
            return self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            print(f"    {self.name} {self.pid} ignored SIGTERM for {grace:.0f} s: SIGKILL", flush=True)
            self.kill()
            return self.popen.returncode


class Payments:
    """The payments binary: servers it starts are remembered, so cleanup stops them all."""

    def __init__(self, binary: str):
        self.binary = binary
        self.started = []

    def start(self, command: str, port: int, log: str, *args, wait: float = 20):
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "ab") as out:
            popen = subprocess.Popen([self.binary, command, "--port", str(port), *map(str, args)],
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        proc = Process(popen, port, log, command)
        self.started.append(proc)
        if seconds_until(wait, lambda: proc.running() and http("GET", f"{proc.url}/healthz", timeout=1)[0] == 200) is None:
            print(f"    {command} did not start on port {port}:", flush=True)
            with open(log, errors="replace") as f:
                print("".join(f.readlines()[-20:]), flush=True)
            proc.kill()
            return None
        return proc

    def serve(self, port: int, log: str, *args):
        return self.start("serve", port, log, *args)

    def gateway(self, port: int, journal: str, log: str, *args):
        return self.start("gateway", port, log, "--journal", journal, *args)

    def run(self, *args, timeout: float = 600, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        """A one-shot command (enqueue, watch, reconcile...): its exit status (-1 on timeout)."""
        try:
            return subprocess.run([self.binary, *map(str, args)], stdout=stdout, stderr=stderr,
                                  stdin=subprocess.DEVNULL, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return -1

    def output(self, *args, timeout: float = 600):
        """A one-shot command's exit status and its output (stdout and stderr together)."""
        try:
            r = subprocess.run([self.binary, *map(str, args)], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=timeout)
            return r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            return -1, (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")

    def stop_all(self):
        for proc in self.started:
            if proc.running():
                proc.kill(signal.SIGCONT)
                proc.kill()
        self.started = []
