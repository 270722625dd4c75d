#!/usr/bin/env bash
# Installs the Debian packages the benchmarks in bench/ drive: pgbench (postgresql-contrib / postgresql-client),
# the baselines (PgBouncer, HAProxy, nginx with its dynamic `stream` module for the TCP scenario; nginx is also the
# HTTP origin), the HTTP load generator (wrk), mysqlslap (mariadb-client), and what bench/native's C load generator
# and TLS origin are built with (gcc, OpenSSL's headers: libssl-dev).
exec bash "$(dirname "$0")/apt-ensure.sh" install-bench-deps \
  pgbouncer haproxy nginx libnginx-mod-stream wrk postgresql-contrib postgresql-client mariadb-client gcc libc6-dev \
  libssl-dev
