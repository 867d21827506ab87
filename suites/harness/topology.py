"""The local topology as the suites talk to it: scripts/topology for every process it
supervises (start, stop, pid, psql as superuser), pgbouncer-write for the suites' own
reads, Patroni's /cluster, HAProxy's stats (by column name) and etcd."""
import csv
import io
import json
import os
import shlex
import signal
import subprocess
import urllib.request

import psycopg

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Topology:
    def __init__(self, offset: int, ha: bool = False):
        self.offset = offset
        self.ha = ha
        self.command = [os.path.join(REPO, "scripts", "topology")] + (["--ha"] if ha else []) + ["--port-offset", str(offset)]
        self.env = self._env()
        # Every process the suite starts (payments, psql) talks to this topology, as the
        # shell's `eval "$(scripts/topology env)"` made it.
        os.environ.update(self.env)
        self.write_dsn = self.env["WRITE_DSN"]
        self.state_dir = self.env.get("TOPOLOGY_STATE_DIR", "")
        self.backup_dir = self.env.get("BACKUP_REPO_DIR", "")
        self.node_dsns = self.env.get("NODE_DSNS", "").split()

    def _env(self) -> dict:
        out = subprocess.run(self.command + ["env"], capture_output=True, text=True, check=True).stdout
        env = {}
        for line in out.splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export "):].partition("=")
                env[name] = (shlex.split(value) or [""])[0]
        return env

    def port(self, base: int) -> int:
        return base + self.offset

    # ------------------------------------------------------------ processes (scripts/topology)
    def run(self, *args, timeout: float = 300) -> subprocess.CompletedProcess:
        """A timeout is a failed command (exit 124), never an exception that would stop a
        cleanup half-way."""
        try:
            return subprocess.run(self.command + list(args), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(e.cmd, 124, "", f"timed out after {timeout} s")

    def start(self, service: str) -> bool:
        return self.run("start", service).returncode == 0

    def stop(self, service: str) -> bool:
        return self.run("stop", service).returncode == 0

    def restart(self, service: str) -> bool:
        return self.run("restart", service).returncode == 0

    def pid(self, service: str):
        out = self.run("pid", service, timeout=30)
        return int(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None

    def postmaster(self, node: str):
        out = self.run("postmaster", node, timeout=30)
        return int(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None

    def superuser(self, statement: str, node: str = None):
        """One statement as the superuser on NODE (the primary or the HA leader without
        one), psql -tA's text; None when it failed."""
        args = ["psql", "super"] + ([node] if node else []) + ["-v", "ON_ERROR_STOP=1", "-tAc", statement]
        out = self.run(*args, timeout=120)
        return out.stdout.strip() if out.returncode == 0 else None

    # ------------------------------------------------------------ the suites' reads (pgbouncer-write)
    def rows(self, query: str, params=None):
        """Rows of QUERY through pgbouncer-write (a connection per call, as a client that
        must survive the pooler's restarts would), or None when it failed."""
        try:
            with psycopg.connect(self.write_dsn, autocommit=True, connect_timeout=5, prepare_threshold=None) as conn:
                return conn.execute(query, params).fetchall()
        except Exception:
            return None

    def value(self, query: str, params=None):
        rows = self.rows(query, params)
        return rows[0][0] if rows else None

    def count(self, query: str, params=None):
        """An integer answer, or None when the database did not give one."""
        v = self.value(query, params)
        return int(v) if v is not None else None

    def succeeded(self, prefix: str):
        return self.count("SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE %s AND state = 'succeeded'", (prefix + "-%",))

    def open_jobs(self, prefix: str):
        return self.count("SELECT count(*) FROM payment_queue WHERE idempotency_key LIKE %s", (prefix + "-%",))

    # ------------------------------------------------------------ HAProxy (stats CSV, by column name)
    def haproxy_servers(self, proxy: str) -> dict:
        """{server: row} for PROXY's servers, each row keyed by the CSV header's names."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port(8404)}/;csv", timeout=2) as r:
                text = r.read().decode()
        except Exception:
            return {}
        text = text.lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text))
                if row.get("pxname") == proxy and row.get("svname") not in ("FRONTEND", "BACKEND")}

    # ------------------------------------------------------------ Patroni (HA)
    def cluster(self):
        for n in (1, 2, 3):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port(8007 + n)}/cluster", timeout=1) as r:
                    return json.load(r)
            except Exception:
                continue
        return None

    def _member(self, role: str):
        c = self.cluster() or {"members": []}
        return next((m["name"] for m in c["members"] if m["role"] == role), "")

    def leader(self) -> str:
        return self._member("leader")

    def sync_standby(self) -> str:
        return self._member("sync_standby")

    def async_replica(self) -> str:
        return self._member("replica")

    def timeline(self) -> int:
        c = self.cluster() or {"members": []}
        return max((m.get("timeline", 0) for m in c["members"] if m["role"] == "leader"), default=0)

    def replicas(self) -> list:
        c = self.cluster() or {"members": []}
        return [m["name"] for m in c["members"] if m["role"] != "leader"]

    def streaming(self, node: str) -> bool:
        """NODE streams from the leader on its timeline: Patroni's view, then the leader's
        own pg_stat_replication (Patroni 3.0.2 calls a replica "running" either way)."""
        c = self.cluster() or {"members": []}
        lead = [m for m in c["members"] if m["role"] == "leader"]
        me = [m for m in c["members"] if m["name"] == node and m["role"] in ("replica", "sync_standby")]
        if not (lead and me and me[0].get("timeline") == lead[0].get("timeline")):
            return False
        try:
            with psycopg.connect(self.env["PRIMARY_DSN"], autocommit=True, connect_timeout=3,
                                 options="-c statement_timeout=3000") as conn:
                n = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE application_name = %s AND state = 'streaming'",
                                 (node,)).fetchone()[0]
            return n == 1
        except Exception:
            return False

    def healthy(self) -> bool:
        """A leader and both other nodes streaming from it."""
        return bool(self.leader()) and sum(1 for r in self.replicas() if self.streaming(r)) == 2

    def kill_node(self, node: str):
        """A node lost as when its machine dies: Patroni and every PostgreSQL process of it,
        SIGKILL at once. What it killed, or None when the node had no processes."""
        patroni, postmaster = self.pid(node), self.postmaster(node)
        if not patroni or not postmaster:
            return None
        children = children_of(postmaster)
        for pid in [patroni, postmaster] + children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return f"patroni {patroni}, postmaster {postmaster}, {len(children)} backends"

    # ------------------------------------------------------------ etcd (HA)
    def etcd_port(self, member: str) -> int:
        return self.port(2377 + 2 * int(member.rsplit("-", 1)[1]))

    def etcd_leader(self):
        for i in (1, 2, 3):
            out = subprocess.run(["etcdctl", f"--endpoints=127.0.0.1:{self.etcd_port(f'etcd-{i}')}", "endpoint", "status", "-w", "json"],
                                 capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"}, timeout=10)
            try:
                s = json.loads(out.stdout)[0]["Status"]
                if s["leader"] == s["header"]["member_id"]:
                    return f"etcd-{i}"
            except Exception:
                continue
        return None

    def etcd_healthy(self, member: str) -> bool:
        return subprocess.run(["etcdctl", f"--endpoints=127.0.0.1:{self.etcd_port(member)}", "endpoint", "health"],
                              capture_output=True, env={**os.environ, "ETCDCTL_API": "3"}, timeout=10).returncode == 0


def children_of(pid: int) -> list:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def alive(pid) -> bool:
    """The process exists and is not a zombie (nothing here reaps the topology's daemons,
    so a stopped one can linger as a zombie: for a stop or a fault that counts as gone)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
