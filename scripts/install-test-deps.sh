#!/usr/bin/env bash
# Installs the Debian packages that the conformance specs' local servers need.
# haproxy: the PROXY protocol spec puts a real HAProxy in front of polyproxy.
# Idempotent: naming an already-installed package to apt-get would upgrade it,
# so only the missing ones are asked for, and the package lists are refreshed
# only when something has to be installed.
set -euo pipefail

packages=(postgresql postgresql-contrib mariadb-server redis-server openssl haproxy)

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

echo "install-test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
