#!/usr/bin/env bash
# Installs the Debian packages that Manatee's tests and dev cluster need, when they are missing.
# Runs as the `pretest` step of `npm test`, so a fresh machine needs nothing but Node and npm.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
have zfs-fuse || need+=(zfs-fuse)
have iptables || need+=(iptables)
have ip || need+=(iproute2)
have etcd || need+=(etcd-server)
have etcdctl || need+=(etcd-client)
have psql || need+=(postgresql-client-15)
have runuser || need+=(util-linux)
have socat || need+=(socat)  # the TLS relay of zfs backup streams when manatee-tls-relay is not built (src/backup/tls-relay.ts)
# manatee-tls-relay, the TLS relay of zfs backup streams, is built from C (tools/build-tls-relay.sh).
have cc || need+=(gcc libc6-dev)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
[ -x /usr/bin/chromium ] || need+=(chromium)  # the status page's browser test (large: only when missing)

build_relay() { bash "$(dirname "$0")/build-tls-relay.sh"; }

if [ "${#need[@]}" -eq 0 ]; then
  echo "install-deps: all Debian packages present"
  build_relay
  exit 0
fi

echo "install-deps: installing ${need[*]}"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif have sudo; then
  SUDO=(sudo)
else
  echo "install-deps: missing packages ${need[*]} and not root (no sudo); install them and rerun" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "install-deps: done"
build_relay
