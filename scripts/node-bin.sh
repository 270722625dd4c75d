#!/usr/bin/env bash
# Prints the bin/ folder of a Node.js >= 22.19 (effect 4 needs it). Uses the node on PATH when it is new enough,
# otherwise installs Node 24 from the npm package `node@24` into the git-ignored .tools/ (once) and prints its bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
ok() { "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null; }
if command -v node >/dev/null && ok node; then dirname "$(command -v node)"; exit 0; fi
local_bin="$PWD/.tools/node_modules/node/bin"
if [ ! -x "$local_bin/node" ] || ! ok "$local_bin/node"; then
  echo "node on PATH is $(node --version 2>/dev/null || echo missing); installing Node 24 into .tools/" >&2
  npm install --prefix .tools --no-audit --no-fund --loglevel=error node@24 >&2
fi
ok "$local_bin/node" || { echo "could not install Node 24 into .tools/" >&2; exit 1; }
echo "$local_bin"
