#!/usr/bin/env bash
# Installs the Debian packages the benchmarks in bench/ drive: pgbench (postgresql-contrib / postgresql-client),
# the baselines (PgBouncer, HAProxy, nginx with its dynamic `stream` module for the TCP scenario), the HTTP load
# generator (wrk) and mysqlslap (mariadb-client) for the MySQL scenario of bench/run.ts.
exec bash "$(dirname "$0")/apt-ensure.sh" install-bench-deps \
  pgbouncer haproxy nginx libnginx-mod-stream wrk postgresql-contrib postgresql-client mariadb-client
