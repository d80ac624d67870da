#!/usr/bin/env bash
# Builds build/manatee-tls-relay, the TLS relay of zfs backup streams (src/backup/relay/), from C
# against the system's OpenSSL. Run by tools/install-deps.sh (so by `npm test`) and `npm run build`.
# Without it, Manatee's relay is socat (src/backup/tls-relay.ts: defaultRelayProgram).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/src/backup/relay/manatee-tls-relay.c"
out="$root/build/manatee-tls-relay"
if [ -x "$out" ] && [ "$out" -nt "$src" ]; then
  exit 0
fi
mkdir -p "$root/build"
cc -O2 -Wall -Wextra -Werror -o "$out.tmp" "$src" -lssl -lcrypto
mv "$out.tmp" "$out"
echo "build-tls-relay: built $out"
