#!/usr/bin/env bash
# The load harness's native agents and backends (load/native/*.c) need a C compiler, libc's headers and OpenSSL's
# libcrypto (the agent's SCRAM and md5 logins in mode postgres-pooled). Nothing is installed when they are already
# there; without them, `make load` runs the Node agents and backends (load/README.md "Native agents and backends").
# Mode postgres-pooled also needs PostgreSQL 15's server (scripts/install-test-deps.sh installs it for the specs).
if command -v "${CC:-cc}" >/dev/null 2>&1 && [[ -e /usr/include/stdio.h && -e /usr/include/sys/epoll.h &&
  -e /usr/include/openssl/evp.h ]]; then
  exit 0
fi
exec bash "$(dirname "$0")/apt-ensure.sh" install-load-deps gcc libc6-dev libssl-dev
