"""The HA fault suite: the seed topology's failures against the HA topology (`scripts/topology
--ha`: etcd x3, Patroni x3, synchronous replication, HAProxy by Patroni's REST checks)
under the fault suite's steady payment load (enqueues, a POSTing client, status reads,
serve charging at the external gateway). Beside it, the two probes of the topology itself
(harness/probes.py): a committed write through pgbouncer-write every 0.1 s (the longest
gap between two is the scenario's "time without writes") and a split-brain watch (each
node asked directly for the same write every 0.5 s; two committing in one sample fails).
Each scenario ends with the money proof (payments watch + the gateway's journal), and the
ones that lose the leader also check that every job succeeded before the fault is still
succeeded with the same finish time and its two postings (an acknowledged completion lost
on the old leader would have re-run and finished again, later).
  suites/ha/run.sh [--port-offset N] [SCENARIO...]    RUNS=n repeats each scenario
Needs a running HA topology (scripts/topology --ha up) and a built binary (BIN)."""
import os
import signal
import subprocess
import time

from harness import faults
from harness.probes import Probes
from harness.processes import get_json
from harness.proof import Kept
from harness.report import log
from harness.suite import Suite
from harness.topology import children_of
from harness.wait import fmt, now, seconds_until

# Patroni needs ttl (11 s) to notice a lost leader, then an election: 15 s is the bound.
NEW_LEADER_BOUND = float(os.environ.get("NEW_LEADER_BOUND", "15"))
# A bare `patronictl switchover`'s failed writes: at most 2 s (with pgbouncer-write paused
# around it, as `scripts/topology --ha switchover` does, none may fail). What is left of
# them is pgbouncer's fast fail: the old leader refuses a login the moment its shutdown
# starts, and pgbouncer then fails every client without a server until a login succeeds
# on the new leader (about 1 s of that is Patroni 3.0.2 polling pg_controldata once a
# second before it releases the leader key).
SWITCHOVER_FAILED_BOUND = float(os.environ.get("SWITCHOVER_FAILED_BOUND", "2"))


class HASuite(Suite):
    label = "ha"
    ha = True
    defaults = ["leader_lost", "postmaster_killed", "switchover", "switchover_bare", "sync_standby_lost",
                "etcd_member_lost", "etcd_quorum_lost", "replica_lag"]
    # The gateway at 200 ms per charge (the demo's), so jobs are in flight when a fault lands.
    gateway_args = ["--latency-ms", 200, "--jitter-ms", 50, "--error-rate", 0.02, "--lost-answer-rate", 0.02,
                    "--decline-rate", 0.01, "--seed", 13]

    def __init__(self, offset, binary):
        super().__init__(offset, binary)
        self.probes = None
        self.watcher = None  # the dashboard's event stream, read while the leader is lost
        self.stopped_pids = []

    def prepare(self) -> bool:
        if not super().prepare():
            return False
        if seconds_until(120, self.topo.healthy, interval=0.5) is None:
            print("the HA cluster is not healthy (a leader and two streaming replicas)")
            return False
        return True

    def heal(self):
        if self.probes:
            self.probes.on.clear()
        if self.watcher is not None:
            self.watcher.kill()
            self.watcher.wait()
            self.watcher = None
        for pid in self.stopped_pids:
            faults.resume(pid)
        # Brings back whatever a scenario left stopped or paused (only a topology the suite reached).
        if self.reached:
            for s in ("etcd-1", "etcd-2", "etcd-3"):
                faults.resume(self.topo.pid(s))
                self.topo.start(s)
            for s in ("node-1", "node-2", "node-3"):
                self.topo.start(s)

    # ------------------------------------------------------------ a scenario's window
    def begin_ha(self, prefix: str):
        """Each scenario starts from a healthy cluster (the one before may still be settling),
        and every fault lands once both probes sample."""
        if seconds_until(120, self.topo.healthy, interval=0.5) is None:
            log(f"the cluster is not healthy before the scenario: {self.topo.cluster()}")
        load = self.begin(prefix)
        self.probes = Probes(self.topo.write_dsn, self.topo.node_dsns)
        time.sleep(1)
        if seconds_until(15, lambda: self.probes.started() or not self.probes.alive()) is None:
            log("the probes took no sample in 15 s")
        return load

    def end_ha(self, sc):
        """The window closes here: a probe not running now died by itself."""
        alive, t1 = self.probes.alive(), now()
        self.end_traffic()
        self.probes.stop()
        fails = self.probes.check(alive, t1)
        if fails:
            sc.probes_ok = False
            for f in fails:
                log(f)

    def clients_saw(self) -> str:
        return f"clients: {self.probes.summary()}, {self.load.summary()}"

    def money_checks(self, sc, prefix: str, kept: Kept = None) -> bool:
        ok = True
        log(self.clients_saw())
        if kept is not None:
            kept_ok, line = kept.check()
            log(line)
            ok = kept_ok
        return self.prove(prefix) and ok

    def healthy_within(self, seconds=120):
        return seconds_until(seconds, self.topo.healthy, interval=0.5)

    # ------------------------------------------------------------ scenarios
    def scenario_leader_lost(self, sc):
        """The leader's machine dies: a new leader within 15 s, writes resume, nothing
        acknowledged lost, nothing posted twice; the node started again rejoins as a replica."""
        p = self.prefix("ha-lost")
        self.begin_ha(p)
        old, tl0 = self.topo.leader(), self.topo.timeline()
        if not old:
            sc.missing("no leader before the fault")
        kept = Kept(self.topo, p)
        # A page watching the dashboard (its stream keeps serve's collector asking Patroni).
        self.watcher = watcher = subprocess.Popen(["curl", "-sN", f"{self.api}/v1/dashboard/events"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        killed = faults.kill_node(sc, self.topo, old)
        t0 = now()
        log(f"leader {old} lost (SIGKILL: {killed}), timeline {tl0}")
        elected = seconds_until(60, lambda: self.topo.leader() not in ("", old))
        leader = self.topo.leader()
        resumed = seconds_until(60, lambda: self.probes.ok_since(t0) is not None)
        if resumed is not None:
            resumed = round(self.probes.ok_since(t0) - t0, 1)
        log(f"new leader {leader or 'none'} after {fmt(elected)} s (timeline {self.topo.timeline()}); probe writes resumed after {fmt(resumed)} s")
        # Jobs the old leader had handed out finish within their lease after writes resume.
        settled = seconds_until(60, lambda: kept.held_open() == 0)
        if not self.topo.start(old):
            log(f"topology start {old} failed")
        rejoined = seconds_until(120, lambda: self.topo.streaming(old), interval=0.5)
        tl = self.topo.timeline()  # read again: /cluster can show the old timeline for a moment after the promotion
        rewound = " (pg_rewind ran)" if "pg_rewind" in read(os.path.join(self.topo.state_dir, "log", f"{old}.log")) else ""
        log(f"{old} started again: streaming from {leader} on timeline {tl} after {fmt(rejoined)} s{rewound}")
        # The failover as the dashboard's timeline showed it while it happened.
        state = (get_json(f"{self.api}/v1/dashboard") or {}).get("state") or {}
        shown = " | ".join(f"+{e['at'] - t0:.1f}s {e['text']}" for e in state.get("events", []) if e["at"] >= t0 - 1)
        watcher.kill()
        watcher.wait()
        self.watcher = None
        log(f"dashboard timeline: {shown or 'nothing'}")
        time.sleep(1)
        self.end_ha(sc)
        gap = self.probes.write_gap(t0)
        ok = True
        # Directly, or through a second with no leader (Patroni's /cluster between the old
        # leader key's expiry and the new leader taking it, seen once in CI).
        if not (f"leader {old} → {leader}" in shown or (f"leader {old} → none" in shown and f"leader none → {leader}" in shown)):
            ok = False
            log(f"the dashboard's timeline does not show leader {old} → {leader}")
        if elected is None or elected > NEW_LEADER_BOUND:
            ok = False
            log(f"no new leader within {NEW_LEADER_BOUND:g} s")
        ok = ok and resumed is not None and settled is not None and rejoined is not None and tl > tl0
        if self.probes.split_brain():
            ok = False
            log(f"TWO NODES ACCEPTED WRITES in {self.probes.split_brain()} samples")
        ok = self.money_checks(sc, p, kept) and ok
        self.record(sc, "leader lost", ok, rejoined,
                    f"new leader {fmt(elected)} s, writes stopped {gap} s, {len(kept.running)} jobs in flight settled after "
                    f"{fmt(settled)} s; {self.clients_saw()}")

    def scenario_postmaster_killed(self, sc):
        """The leader's postmaster alone SIGKILLed (its Patroni lives on)."""
        p = self.prefix("ha-postmaster")
        self.begin_ha(p)
        old, tl0 = self.topo.leader(), self.topo.timeline()
        kept = Kept(self.topo, p)
        pm = self.topo.postmaster(old)
        t0 = now()
        faults.send(sc, pm, signal.SIGKILL, f"{old}'s postmaster")
        log(f"leader {old}'s postmaster {pm} SIGKILLed (Patroni left running)")
        resumed = seconds_until(90, lambda: self.probes.ok_since(t0) is not None)
        leader, tl = self.topo.leader(), self.topo.timeline()
        what = "restarted in place" if leader == old else f"failed over to {leader}"
        settled = seconds_until(60, lambda: kept.held_open() == 0)
        recovered = self.healthy_within()
        time.sleep(1)
        self.end_ha(sc)
        gap = self.probes.write_gap(t0)
        log(f"Patroni {what} (timeline {tl0} -> {tl}); writes stopped {gap} s; cluster healthy after {fmt(recovered)} s")
        ok = resumed is not None and settled is not None and recovered is not None and self.probes.split_brain() == 0
        ok = self.money_checks(sc, p, kept) and ok
        self.record(sc, "leader's postmaster killed", ok, recovered, f"{what}, writes stopped {gap} s; {self.clients_saw()}")

    def switchover_under_load(self, sc, name: str, bound: float, command: list):
        """A planned switchover to the synchronous standby, under load. BOUND: seconds of
        failed writes allowed (0: none may fail, they wait)."""
        p = self.prefix("ha-switch")
        self.begin_ha(p)
        old, sync = self.topo.leader(), self.topo.sync_standby()
        if not sync:
            sc.missing("no synchronous standby to switch to")
        kept = Kept(self.topo, p)
        t0 = now()
        out = self.topo.run(*command, "--candidate", sync, *(["--leader", old] if "patronictl" in command else []), timeout=120)
        if out.returncode != 0:
            sc.missing(f"{name}: the switchover command failed")
            log((out.stdout + out.stderr)[-1500:])
        done_in = seconds_until(60, lambda: self.topo.leader() == sync)
        log(f"{name} {old} -> {sync}: the new leader leads after {fmt(done_in)} s")
        recovered = self.healthy_within()
        time.sleep(2)
        self.end_ha(sc)
        gap, failed = self.probes.write_gap(t0), self.probes.failed_span()
        log(f"writes failed for {failed} s, no write committed for {gap} s")
        ok = done_in is not None and recovered is not None and self.probes.split_brain() == 0
        if bound == 0:
            if self.probes.failures():
                ok = False
                log(f"{len(self.probes.failures())} probe writes failed; none may")
        elif failed > bound:
            ok = False
            log(f"writes failed for {failed} s, more than {bound:g} s")
        ok = self.money_checks(sc, p, kept) and ok
        self.record(sc, name, ok, recovered, f"writes failed {failed} s, stopped {gap} s; old leader streaming again after "
                                             f"{fmt(recovered)} s; {self.clients_saw()}")

    def scenario_switchover(self, sc):
        """The way docs/ha.md gives (`scripts/topology --ha switchover`: pgbouncer-write
        paused around `patronictl switchover`): no write may fail, they wait."""
        self.switchover_under_load(sc, "switchover", 0, ["switchover"])

    def scenario_switchover_bare(self, sc):
        """`patronictl switchover` alone, as someone may run it."""
        self.switchover_under_load(sc, "switchover, bare patronictl", SWITCHOVER_FAILED_BOUND, ["patronictl", "switchover", "--force"])

    def scenario_sync_standby_lost(self, sc):
        """The synchronous standby's machine dies: the other standby becomes synchronous, writes go on."""
        p = self.prefix("ha-sync")
        self.begin_ha(p)
        leader, sync = self.topo.leader(), self.topo.sync_standby()
        if not sync:
            sc.missing("no synchronous standby")
        killed = faults.kill_node(sc, self.topo, sync)
        t0 = now()
        log(f"synchronous standby {sync} lost (SIGKILL: {killed})")
        moved = seconds_until(60, lambda: self.topo.sync_standby() not in ("", sync))
        time.sleep(2)
        same_leader = self.topo.leader() == leader
        if not self.topo.start(sync):
            log(f"topology start {sync} failed")
        rejoined = seconds_until(120, lambda: self.topo.streaming(sync), interval=0.5)
        time.sleep(1)
        self.end_ha(sc)
        gap = self.probes.write_gap(t0)
        log(f"{self.topo.sync_standby()} synchronous after {fmt(moved)} s; leader unchanged: {int(same_leader)}; writes stopped {gap} s; "
            f"{sync} back streaming after {fmt(rejoined)} s")
        ok = moved is not None and same_leader and rejoined is not None and self.probes.split_brain() == 0
        ok = self.money_checks(sc, p) and ok
        self.record(sc, "sync standby lost", ok, rejoined,
                    f"other standby synchronous after {fmt(moved)} s, writes stopped {gap} s; {self.clients_saw()}")

    def scenario_etcd_member_lost(self, sc):
        """One etcd member (the raft leader, the worst one to lose) killed: nothing changes."""
        p = self.prefix("ha-etcd1")
        self.begin_ha(p)
        leader = self.topo.leader()
        victim = self.topo.etcd_leader() or "etcd-1"
        t0 = now()
        faults.send(sc, self.topo.pid(victim), signal.SIGKILL, victim)
        log(f"{victim} (the etcd raft leader) SIGKILLed")
        time.sleep(8)
        same = self.topo.leader() == leader
        if not self.topo.start(victim):
            log(f"topology start {victim} failed")
        back = seconds_until(30, lambda: self.topo.etcd_healthy(victim))
        time.sleep(1)
        self.end_ha(sc)
        gap = self.probes.write_gap(t0)
        log(f"Patroni leader unchanged: {int(same)}; writes stopped {gap} s at most; {victim} healthy again after {fmt(back)} s")
        ok = same and back is not None and self.probes.split_brain() == 0
        ok = self.money_checks(sc, p) and ok
        self.record(sc, "etcd member lost", ok, back, f"leader unchanged {int(same)}, writes stopped {gap} s; {self.clients_saw()}")

    def scenario_etcd_quorum_lost(self, sc):
        """Two of three etcd members stopped: Patroni cannot renew the leader lock, so
        (failsafe mode off) it demotes the leader; no node may accept writes meanwhile, and
        never two. Quorum back: one leader again, writes resume."""
        p = self.prefix("ha-quorum")
        self.begin_ha(p)
        leader = self.topo.leader()
        a, b = self.topo.pid("etcd-1"), self.topo.pid("etcd-2")
        kept = Kept(self.topo, p)
        t0 = now()
        if faults.send(sc, a, signal.SIGSTOP, "etcd-1"):
            self.stopped_pids.append(a)
        if faults.send(sc, b, signal.SIGSTOP, "etcd-2"):
            self.stopped_pids.append(b)
        log("etcd-1 and etcd-2 stopped (SIGSTOP): no quorum")
        demoted = seconds_until(60, lambda: self.probes.writable_now() == 0)
        log(f"the leader {leader} stopped accepting writes after {fmt(demoted)} s")
        time.sleep(10)
        writes_in_outage = self.probes.committed_after(t0 + (demoted or 0) + 1)
        t1 = now()
        faults.resume(a)
        faults.resume(b)
        log("etcd-1 and etcd-2 resumed")
        resumed = seconds_until(90, lambda: self.probes.ok_since(t1) is not None)
        recovered = self.healthy_within()
        after = self.topo.leader()
        time.sleep(1)
        self.end_ha(sc)
        gap = self.probes.write_gap(t0)
        log(f"quorum back: leader {after}, writes resumed after {fmt(resumed)} s, cluster healthy after {fmt(recovered)} s; "
            f"writes committed during the outage: {writes_in_outage}; samples with two writable nodes: "
            f"{self.probes.split_brain()} of {len(self.probes.brain)}")
        ok = (demoted is not None and writes_in_outage == 0 and resumed is not None and recovered is not None
              and self.probes.split_brain() == 0)
        ok = self.money_checks(sc, p, kept) and ok
        self.record(sc, "etcd quorum lost", ok, resumed,
                    f"leader demoted after {fmt(demoted)} s, writes stopped {gap} s (10 s of it without quorum), leader after: {after}; "
                    f"{self.clients_saw()}")

    def scenario_replica_lag(self, sc):
        """A replica made to lag: its startup process (the one replaying WAL) stopped with
        SIGSTOP, then WAL written on the leader. Not pg_wal_replay_pause(): Patroni 3 resumes a
        paused replay on PostgreSQL 14+ at its next loop. The asynchronous replica, so the
        synchronous standby's flushes (what commits wait for) go on. It must leave read
        rotation, reads keep succeeding, and it returns once it has caught up."""
        p = self.prefix("ha-lag")
        load = self.begin_ha(p)
        victim = self.topo.async_replica()
        if not victim:
            sc.missing("no asynchronous replica")
        in_rotation = lambda: self.topo.haproxy_servers("pg_replicas").get(victim, {}).get("status", "").startswith("UP")
        if not in_rotation():
            sc.missing(f"{victim} was not in read rotation to begin with")
        pm = self.topo.postmaster(victim)
        startup = next((pid for pid in (children_of(pm) if pm else []) if "startup" in read(f"/proc/{pid}/cmdline")), None)
        if faults.send(sc, startup, signal.SIGSTOP, f"the startup process on {victim}"):
            self.stopped_pids.append(startup)
        # More WAL than the lag bound (16 MB by default), written on the leader.
        if self.topo.superuser("CREATE TABLE ha_lag_filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 120000) g; "
                               "DROP TABLE ha_lag_filler") is None:
            log("filler write failed")
        left = seconds_until(60, lambda: not in_rotation())
        log(f"replay stopped on {victim} (startup process {startup}), 25 MB of WAL written: out of read rotation after {fmt(left)} s")
        reads_before, lost_before = load.reads, load.reads_lost
        time.sleep(3)
        reads_during, lost_during = load.reads - reads_before, load.reads_lost - lost_before
        faults.resume(startup)
        back = seconds_until(60, in_rotation)
        time.sleep(1)
        self.end_ha(sc)
        log(f"reads while {victim} was out: {reads_during}, failed {lost_during}; back in rotation {fmt(back)} s after replay resumed")
        ok = left is not None and back is not None and reads_during > 0 and lost_during == 0
        ok = self.money_checks(sc, p) and ok
        self.record(sc, "replica lag", ok, back, f"out of rotation after {fmt(left)} s, back {fmt(back)} s after resume; "
                                                  f"reads during {reads_during}, failed {lost_during}; {self.clients_saw()}")


def read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read().replace("\0", " ")
    except OSError:
        return ""


SUITE = HASuite
