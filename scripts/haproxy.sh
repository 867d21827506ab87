# shellcheck shell=bash
# HAProxy's stats page (its CSV), read by column name from the header, never by position.
#   . "$REPO/scripts/haproxy.sh"

# haproxy_servers STATS_PORT PROXY: one tab-separated line per server of PROXY:
# name, status (UP, DOWN, "UP 1/2" while going down, MAINT...), current sessions,
# sessions in all, last check.
haproxy_servers() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/;csv" 2>/dev/null | awk -F, -v px="$2" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["pxname"] == px && $col["svname"] != "FRONTEND" && $col["svname"] != "BACKEND" {
      printf "%s\t%s\t%s\t%s\t%s\n", $col["svname"], $col["status"], $col["scur"], $col["stot"], $col["check_status"] }'
}

# haproxy_server_status STATS_PORT PROXY SERVER: that server's status.
haproxy_server_status() {
  haproxy_servers "$1" "$2" | awk -F'\t' -v s="$3" '$1 == s {print $2}'
}

# haproxy_up STATS_PORT PROXY [REGEX]: the servers of PROXY that are UP (exactly), whose
# names match REGEX, one per line.
haproxy_up() {
  haproxy_servers "$1" "$2" | awk -F'\t' -v p="${3:-.}" '$2 == "UP" && $1 ~ p {print $1}'
}
