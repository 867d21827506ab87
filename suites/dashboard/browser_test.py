#!/usr/bin/env python3
"""The dashboard in a real browser (headless Chromium through Selenium) against a real
serve on the real topology. Each check prints PASS or FAIL; the exit status is the
number of failures (0: all passed).

  browser_test.py --bin BIN --port P --topology "scripts/topology --port-offset N"
                  --shots DIR [--empty-dsn DSN]
"""
import argparse
import os
import shlex
import signal
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(ok)
    print(f"    {'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail else ''}", flush=True)
    return ok


def wait(what, seconds, step=0.2):
    """Polls `what` until it returns a true value or `seconds` pass; returns the value."""
    deadline = time.time() + seconds
    while True:
        try:
            value = what()
        except Exception:  # the page may be re-rendering: an element just replaced
            value = None
        if value or time.time() > deadline:
            return value
        time.sleep(step)


class StandIn:
    """What a proxy answers while the server behind it is away: 503 to everything, on
    the server's port. An EventSource given an answer that is not a stream stops for
    good; the page has to start a new one."""

    def __init__(self, port):
        import http.server
        import threading
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                body = b'{"error":{"code":"unavailable","message":"upstream is restarting"}}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Serve:
    """A `payments serve` of this test, stopped by its pid."""

    def __init__(self, bin, port, log, env, *args):
        self.command = [bin, "serve", "--port", str(port), *args]
        self.port, self.log, self.env = port, log, env
        self.process = None

    def start(self):
        self.process = subprocess.Popen(self.command, stdout=open(self.log, "a"), stderr=subprocess.STDOUT, env=self.env)
        import urllib.request
        def ready():
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                return r.status == 200
        if not wait(ready, 20):
            raise RuntimeError(f"serve on {self.port} did not start; see {self.log}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1100"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def console_errors(driver, ignore=()):
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and not any(i in e["message"] for i in ignore)]


# The page re-renders its tiles every second: an element found a moment ago may be gone
# (stale) by the time it is asked. Tiles are read in one script, atomically.
def tile(driver, name):
    """(status, text, shown) of a tile, or None if there is none."""
    return driver.execute_script("""
        const t = document.querySelector(`.tile[data-name="${arguments[0]}"]`);
        if (!t) return null;
        const box = t.getBoundingClientRect();
        return [t.dataset.status, t.innerText, box.width > 0 && box.height > 0 && box.right <= window.innerWidth + 1];
        """, name)


def status(driver, name):
    info = tile(driver, name)
    return info[0] if info else None


def text(driver, name):
    info = tile(driver, name)
    return info[1] if info else ""


def element_text(driver, id):
    return driver.execute_script("const e = document.getElementById(arguments[0]); return e ? e.innerText : ''", id)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topology", required=True)
    parser.add_argument("--shots", required=True)
    parser.add_argument("--logs", required=True)
    parser.add_argument("--empty-dsn")
    args = parser.parse_args()
    topology = shlex.split(args.topology)
    env = dict(os.environ)
    url = f"http://127.0.0.1:{args.port}/"
    serve = Serve(args.bin, args.port, f"{args.logs}/serve.log", env, "--concurrency", "200",
                  "--gateway-latency-ms", "100", "--retry-base-ms", "100")
    serve.start()
    driver = browser()
    enqueue = None
    try:
        driver.get(url)
        check("the page goes live", wait(lambda: element_text(driver, "link") == "live", 15))
        streaming = wait(lambda: all(status(driver, r) == "up" and "streaming" in text(driver, r).split("\n")
                                     for r in ("replica-1", "replica-2")), 20)
        check("both replica tiles show streaming", bool(streaming))
        pools = wait(lambda: all(status(driver, p) == "up" and "clients" in text(driver, p) and "cl act" in text(driver, p)
                                 for p in ("pgbouncer-write", "pgbouncer-read")), 10)
        check("both pooler tiles show SHOW POOLS", bool(pools), text(driver, "pgbouncer-write").replace("\n", " ")[:120])
        check("haproxy's tile lists its backends", bool(wait(lambda: "pg_read/replica-1" in text(driver, "haproxy"), 5)))
        check("the backups tile shows the WAL archive", bool(wait(lambda: status(driver, "backups") == "up"
                                                                   and "segments archived" in text(driver, "backups"), 10)),
              text(driver, "backups").replace("\n", " ")[:160])

        before = int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-succeeded-total") or 0)
        enqueue = subprocess.Popen([args.bin, "enqueue", "--count", "4000", "--rate", "200"], env=env,
                                   stdout=open(f"{args.logs}/enqueue.log", "a"), stderr=subprocess.STDOUT)
        def moving():
            rate = element_text(driver, "rate-succeeded")
            total = int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-succeeded-total") or 0)
            return rate not in ("–", "0.0") and total > before + 20
        check("the throughput series moves while jobs are processed", bool(wait(moving, 40)),
              f"succeeded/s {element_text(driver, 'rate-succeeded')}")
        time.sleep(3)
        driver.save_screenshot(f"{args.shots}/dashboard.png")

        subprocess.run(topology + ["stop", "replica-1"], check=True, stdout=subprocess.DEVNULL)
        down = wait(lambda: status(driver, "replica-1") == "down", 30)
        check("replica-1 stopped: its tile turns down", bool(down))
        check("the timeline shows it", bool(wait(lambda: "replica-1 down" in element_text(driver, "events"), 5)))
        driver.save_screenshot(f"{args.shots}/dashboard-replica-down.png")
        subprocess.run(topology + ["start", "replica-1"], check=True, stdout=subprocess.DEVNULL)
        up = wait(lambda: status(driver, "replica-1") == "up", 60)
        check("replica-1 restarted: its tile turns up again", bool(up))
        errors = console_errors(driver)
        check("no console errors", not errors, "; ".join(errors)[:300])

        serve.stop()
        lost = wait(lambda: element_text(driver, "link") != "live", 10)
        serve.start()
        back = wait(lambda: element_text(driver, "link") == "live"
                    and int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-points") or 0) >= 2, 30)
        check("the page survives the server restarting (reconnects by itself)", bool(lost) and bool(back))
        # The browser reports the refused reconnection attempts; nothing else may fail.
        errors = console_errors(driver, ignore=("/v1/dashboard/events",))
        check("no console errors besides the refused reconnections", not errors, "; ".join(errors)[:300])

        serve.stop()
        standin = StandIn(serve.port)
        answered = wait(lambda: standin.hits >= 1, 15)
        time.sleep(1)
        standin.stop()
        serve.start()
        back = wait(lambda: element_text(driver, "link") == "live"
                    and int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-points") or 0) >= 2, 30)
        check("the page reconnects after an answer that is not a stream (a proxy's 503)", bool(answered) and bool(back),
              f"{standin.hits} answered 503")
        console_errors(driver, ignore=("/v1/dashboard/events",))

        driver.set_window_size(390, 844)
        time.sleep(1.5)
        width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        visible = wait(lambda: all((tile(driver, n) or [None, None, False])[2]
                                   for n in ("primary", "replica-1", "replica-2", "pgbouncer-write")), 5)
        check("renders at a phone's width (no sideways scroll, tiles shown)", width[0] <= width[1] + 1 and bool(visible), f"{width}")
        driver.save_screenshot(f"{args.shots}/dashboard-phone.png")
        driver.set_window_size(1280, 1100)
    finally:
        if enqueue and enqueue.poll() is None:
            enqueue.terminate()
            enqueue.wait()
        serve.stop()

    # A server without the poolers' stats credential: the pooler tiles say so.
    bare_env = {k: v for k, v in env.items() if k not in ("PGBOUNCER_STATS_USER", "PGBOUNCER_STATS_PASSWORD")}
    bare = Serve(args.bin, args.port + 1, f"{args.logs}/serve-nocred.log", bare_env, "--no-workers")
    bare.start()
    try:
        driver.get(f"http://127.0.0.1:{args.port + 1}/")
        said = wait(lambda: status(driver, "pgbouncer-write") == "no_credentials"
                    and "PGBOUNCER_STATS_USER" in text(driver, "pgbouncer-write"), 15)
        check("a missing admin credential: the pooler tile says so", bool(said))
        check("the other tiles still work", bool(wait(lambda: status(driver, "replica-2") == "up", 5)))
    finally:
        bare.stop()

    if args.empty_dsn:
        empty_env = dict(bare_env, WRITE_DSN=args.empty_dsn, READ_DSN=args.empty_dsn)
        empty = Serve(args.bin, args.port + 2, f"{args.logs}/serve-empty.log", empty_env, "--no-workers")
        empty.start()
        try:
            driver.get_log("browser")
            driver.get(f"http://127.0.0.1:{args.port + 2}/")
            shown = wait(lambda: element_text(driver, "link") == "live" and element_text(driver, "counts") != "", 15)
            counts = element_text(driver, "counts").replace("\n", " ")
            check("an empty database: the page shows zero jobs", bool(shown) and all(
                c == "0" for c in counts.split() if c.replace(",", "").isdigit()), counts[:120])
            errors = console_errors(driver)
            check("an empty database: no console errors", not errors, "; ".join(errors)[:300])
        finally:
            empty.stop()
    driver.quit()
    failed = RESULTS.count(False)
    print(f"dashboard: {len(RESULTS) - failed} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    sys.exit(main())
