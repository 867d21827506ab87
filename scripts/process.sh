# shellcheck shell=bash
# Process checks shared by scripts/topology and scripts/lib.sh.

# pid_alive PID: the process exists and is not a zombie. Nothing here reaps daemons, so a
# stopped daemon can linger as a zombie; for a stop or a fault that counts as gone.
pid_alive() { [ -r "/proc/$1/stat" ] && ! awk '{ exit ($3 == "Z") ? 0 : 1 }' "/proc/$1/stat" 2>/dev/null; }
