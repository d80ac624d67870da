#!/usr/bin/env bash
# Starts the zfs-fuse daemon if it is not running (needs root). Idempotent: prints
# "running <pid>" when a daemon already answers, "started <pid>" when this script started it.
# The daemon is left running on purpose: several test runs and helpers share it.
set -euo pipefail
pidfile="${1:-/run/manatee-zfs-fuse.pid}"

if pid=$(pgrep -x zfs-fuse | head -n1) && [ -n "$pid" ]; then
  echo "running $pid"
  exit 0
fi
command -v zfs-fuse >/dev/null 2>&1 || { echo "zfs-fuse is not installed (apt-get install zfs-fuse)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "zfs-fuse must be started as root" >&2; exit 1; }
mkdir -p "$(dirname "$pidfile")"
# A pidfile left by a killed daemon makes zfs-fuse exit 1 without a word: none runs (checked above).
rm -f "$pidfile"
# Its output goes to a log, not to our caller's pipes (which would stay open as long as it runs).
zfs-fuse --pidfile "$pidfile" </dev/null >>/tmp/manatee-zfs-fuse.log 2>&1
# The daemon forks; wait until it answers (zpool list exits 0 once its socket is up).
for _ in $(seq 1 100); do
  if zpool list >/dev/null 2>&1; then
    echo "started $(cat "$pidfile" 2>/dev/null || pgrep -x zfs-fuse | head -n1)"
    exit 0
  fi
  sleep 0.1
done
echo "zfs-fuse did not answer within 10 s" >&2
exit 1
