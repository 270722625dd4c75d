#!/usr/bin/env bash
# Installs the Debian packages the benchmarks in bench/ drive: pgbench (postgresql-contrib / postgresql-client),
# the baselines (PgBouncer, HAProxy, nginx with its dynamic `stream` module for the TCP scenario; nginx is also the
# HTTP origin), the HTTP load generator (wrk), mysqlslap (mariadb-client), Postfix's smtp-source and smtp-sink (the
# smtp scenario's C generator and sink, shipped in `postfix` itself), and what bench/native's C load generator
# and TLS origin are built with (gcc, OpenSSL's headers: libssl-dev).
set -euo pipefail
packages=(pgbouncer haproxy nginx libnginx-mod-stream wrk postgresql-contrib postgresql-client mariadb-client gcc
  libc6-dev libssl-dev)
installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]; }
# Postfix and exim4 exclude each other in Debian: installing postfix would remove a machine's exim4, so it is left out
# then (the smtp scenario says what is missing). Otherwise debconf is told "No configuration" first: the install asks
# nothing and writes no main.cf, so no Postfix daemon runs (policy-rc.d keeps every daemon from starting here anyway).
if installed exim4-base; then
  echo "install-bench-deps: exim4 is installed, so postfix (smtp-source, smtp-sink) is not: the smtp scenario needs it" >&2
else
  if ! installed postfix; then
    sudo=()
    [[ $(id -u) -ne 0 ]] && sudo=(sudo)
    echo "postfix postfix/main_mailer_type select No configuration" | "${sudo[@]}" debconf-set-selections
  fi
  packages+=(postfix)
fi
exec bash "$(dirname "$0")/apt-ensure.sh" install-bench-deps "${packages[@]}"
