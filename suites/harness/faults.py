"""One fault library for every suite. Each fault is verified as it is applied (the process
gone or replaced, the port refusing, the file removed); one that did not happen is
reported to the scenario (Scenario.missing), which then fails: a run whose fault did not
happen proves nothing."""
import glob
import os
import shutil
import signal
import socket

from .topology import alive
from .wait import seconds_until


def port_refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def send(sc, pid, sig, what: str) -> bool:
    """SIG to PID; SIGKILL also waits until it is gone, SIGSTOP until it is stopped."""
    if not pid:
        sc.missing(f"{what} had no process")
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        sc.missing(f"{what} ({pid}) was not running")
        return False
    if sig == signal.SIGKILL and seconds_until(5, lambda: not alive(pid)) is None:
        sc.missing(f"{what} ({pid}) survived SIGKILL")
        return False
    if sig == signal.SIGSTOP and seconds_until(2, lambda: stopped(pid)) is None:
        sc.missing(f"{what} ({pid}) is not stopped")
        return False
    return True


def resume(pid):
    try:
        os.kill(pid, signal.SIGCONT)
    except (ProcessLookupError, TypeError):
        pass


def stopped(pid) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(l.startswith("State:") and "T" in l.split()[1] for l in f)
    except OSError:
        return False


def stop_service(sc, topo, name: str, port: int = None):
    """scripts/topology stop NAME: its process gone (and its PORT refusing). Its old PID."""
    pid = topo.pid(name)
    if not pid:
        sc.missing(f"{name} was not running")
    if not topo.stop(name):
        sc.missing(f"topology stop {name} failed")
    if pid and seconds_until(5, lambda: not alive(pid)) is None:
        sc.missing(f"{name}'s process {pid} still runs")
    if port is not None and seconds_until(5, lambda: port_refuses(port)) is None:
        sc.missing(f"{name} still accepts connections on {port}")
    return pid


def start_service(sc, topo, name: str) -> bool:
    ok = topo.start(name)
    if not ok:
        sc.missing(f"{name} did not start again")
    return ok


def restart_service(sc, topo, name: str):
    """scripts/topology restart NAME: its process replaced. (old PID, new PID)."""
    old = topo.pid(name)
    if not old:
        sc.missing(f"{name} was not running")
    if not topo.restart(name):
        sc.missing(f"topology restart {name} failed")
    new = topo.pid(name)
    if not new or new == old:
        sc.missing(f"{name}'s process was not replaced ({old} -> {new})")
    return old, new


def kill_service(sc, topo, name: str, port: int = None, sig=signal.SIGKILL):
    """A topology process killed without its script: SIGKILL (a crash), or SIGQUIT to a
    postmaster (immediate shutdown: no checkpoint, in-flight commits cut off)."""
    pid = topo.pid(name)
    if not send(sc, pid, sig, name):
        return None
    if port is not None and seconds_until(5, lambda: port_refuses(port)) is None:
        sc.missing(f"{name} still accepts connections on {port} after signal {sig}")
    return pid


def kill_node(sc, topo, node: str):
    """HA: a node's machine dies (Patroni and every PostgreSQL process, SIGKILL)."""
    killed = topo.kill_node(node)
    if not killed:
        sc.missing(f"could not find {node}'s processes")
    return killed


def pause_replay(sc, topo, nodes):
    for n in nodes:
        if topo.superuser("SELECT pg_wal_replay_pause()", n) is None:
            sc.missing(f"replay could not be paused on {n}")


def resume_replay(topo, nodes):
    for n in nodes:
        topo.superuser("SELECT pg_wal_replay_resume()", n)


def lose_every_disk(sc, topo, nodes=("primary", "replica-1", "replica-2")):
    """Every node's data directory gone at once (SIGKILL first, as when a disk dies)."""
    for n in nodes:
        pid = topo.pid(n)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(os.path.join(topo.state_dir, n, "data"), ignore_errors=True)
    for n in nodes:
        if os.path.exists(os.path.join(topo.state_dir, n, "data")):
            sc.missing(f"{n}'s data is still there")


def remove_archived_segment_after(sc, topo, stop_segment: str):
    """The first WAL segment archived after STOP_SEGMENT (the last backup's end) removed
    from the repository: not the last one, so the archive holds segments past the hole.
    The removed segment's name, or None."""
    found = []
    for path in glob.glob(os.path.join(topo.backup_dir, "archive", "**", "*-*"), recursive=True):
        name = os.path.basename(path)[:24]
        if os.path.isfile(path) and len(name) == 24 and all(c in "0123456789ABCDEF" for c in name) and name[8:] > stop_segment[8:]:
            found.append((name, path))
    found.sort()
    if len(found) < 2:
        sc.missing(f"fewer than two segments archived after the last backup ({stop_segment}): no hole to make")
        return None
    name, path = found[0]
    os.remove(path)
    if os.path.exists(path):
        sc.missing("the segment is still in the archive")
    return f"{name} ({len(found)} archived after the backup's {stop_segment})"
