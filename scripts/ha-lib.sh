# shellcheck shell=bash
# The HA topology as Patroni sees it, for suites/ha, the failover demo and
# scripts/topology-ha.sh (which uses ha_leader). Needs PORT_OFFSET; ha_kill_node needs
# TOPO (scripts/lib.sh), ha_streaming the topology env (PRIMARY_DSN).

# /cluster from whichever Patroni answers.
ha_rest_port() { echo $((8007 + ${1##*-} + PORT_OFFSET)); }
ha_cluster_json() {
  local n
  for n in node-1 node-2 node-3; do curl -fsS --max-time 1 "http://127.0.0.1:$(ha_rest_port "$n")/cluster" 2>/dev/null && return 0; done
  return 1
}
# ha_query PYTHON: runs PYTHON with `c` = the /cluster document.
ha_query() { ha_cluster_json | python3 -c "
import json, sys
c = json.load(sys.stdin)
$1" 2>/dev/null; }
ha_leader() { ha_query 'print(next((m["name"] for m in c["members"] if m["role"] == "leader"), ""))'; }
ha_sync() { ha_query 'print(next((m["name"] for m in c["members"] if m["role"] == "sync_standby"), ""))'; }
ha_async() { ha_query 'print(next((m["name"] for m in c["members"] if m["role"] == "replica"), ""))'; }
ha_timeline() { ha_query 'print(max((m.get("timeline", 0) for m in c["members"] if m["role"] == "leader"), default=0))'; }
ha_replicas() { ha_query 'print(" ".join(m["name"] for m in c["members"] if m["role"] != "leader"))'; }
# A node streaming from the leader on the leader's timeline: Patroni's view, then the
# leader's own pg_stat_replication (Patroni 3.0.2 calls a replica "running" either way).
ha_streaming() { # node
  ha_query "
lead = [m for m in c['members'] if m['role'] == 'leader']
me = [m for m in c['members'] if m['name'] == '$1' and m['role'] in ('replica', 'sync_standby')]
sys.exit(0 if lead and me and me[0].get('timeline') == lead[0].get('timeline') else 1)" \
  && [ "$(timeout 3 psql "$PRIMARY_DSN" -XtAc "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$1' AND state = 'streaming'" 2>/dev/null)" = 1 ]
}
# A leader and both other nodes streaming from it.
ha_healthy() { local r n=0; for r in $(ha_replicas); do ha_streaming "$r" && n=$((n + 1)); done; [ -n "$(ha_leader)" ] && [ "$n" = 2 ]; }

# A node lost as when its machine dies: Patroni and every PostgreSQL process of the
# node, SIGKILL at once. Prints what it killed.
ha_kill_node() { # node
  local patroni postmaster children
  patroni=$("${TOPO[@]}" pid "$1" 2>/dev/null) || true
  postmaster=$("${TOPO[@]}" postmaster "$1" 2>/dev/null) || true
  [ -n "$patroni" ] && [ -n "$postmaster" ] || return 1
  children=$(pgrep -P "$postmaster" | tr '\n' ' ')
  # shellcheck disable=SC2086
  kill -KILL "$patroni" "$postmaster" $children 2>/dev/null
  echo "patroni $patroni, postmaster $postmaster, $(echo "$children" | wc -w) backends"
}
