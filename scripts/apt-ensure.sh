#!/usr/bin/env bash
# Usage: apt-ensure.sh LABEL PACKAGE... — installs the Debian packages that are missing, and nothing else.
# Idempotent and fast when all are there: naming an already-installed package to apt-get would upgrade it, so only
# the missing ones are asked for, and the package lists are refreshed only when something has to be installed.
set -euo pipefail

label=$1
shift
missing=()
for pkg in "$@"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

sudo=()
[[ $(id -u) -ne 0 ]] && sudo=(sudo)
echo "$label: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
