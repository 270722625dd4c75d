#!/usr/bin/env bash
# Installs the Debian packages the benchmarks in bench/ drive: pgbench (postgresql-contrib / postgresql-client),
# the baselines (PgBouncer, HAProxy, nginx) and the HTTP load generator (wrk).
# Idempotent, like install-test-deps.sh: naming an already-installed package to apt-get would upgrade it,
# so only the missing ones are asked for, and the package lists are refreshed only when something is missing.
set -euo pipefail

packages=(pgbouncer haproxy nginx wrk postgresql-contrib postgresql-client)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  sudo=(sudo)
else
  sudo=()
fi

echo "install-bench-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
