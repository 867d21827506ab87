# shellcheck shell=bash
# Process checks shared by scripts/topology and scripts/lib.sh.

# pid_alive PID: the process exists and is not a zombie. Nothing here reaps daemons, so a
# stopped daemon can linger as a zombie; for a stop or a fault that counts as gone.
# One read of /proc/PID/stat: a check then a read let a zombie reaped in between read as
# alive (the read's failure was taken for "not a zombie"), and stop_pid died on a process
# that had stopped. The state is the field after the name's last ')': a name may hold
# spaces and parentheses.
pid_alive() {
  local stat
  case "$1" in ''|*[!0-9]*) return 1 ;; esac
  { read -r stat < "/proc/$1/stat"; } 2>/dev/null || return 1
  stat="${stat##*) }"
  case "${stat%% *}" in Z|X|'') return 1 ;; *) return 0 ;; esac
}

# pid_runs PID WORD: the process is alive and WORD is one of its arguments (`serve`,
# `gateway`): a PID kept in a file is still the command it was for, whatever the binary's
# name (a check of the name `payments` left a DEMO_BIN under another name running).
pid_runs() {
  pid_alive "$1" || return 1
  tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q " $2 "
}
