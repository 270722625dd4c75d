#!/usr/bin/env bash
# The Debian packages that the conformance specs' local servers need (PostgreSQL, MariaDB, Redis, openssl for the
# test certificates, HAProxy, which the PROXY protocol spec puts in front of polyproxy, and Chromium, which the admin
# dashboard spec drives through playwright-core), gcc with libc's headers, which spec/load/native.spec.ts builds
# the load harness's native agent and backend with, testssl.sh, which spec/conformance/tls-profile.spec.ts runs
# against the TLS listeners, and strace, which spec/cli/tcp-keepalive.spec.ts reads the proxy's setsockopt calls with.
exec bash "$(dirname "$0")/apt-ensure.sh" install-test-deps \
  postgresql postgresql-contrib mariadb-server redis-server openssl haproxy chromium gcc libc6-dev testssl.sh strace
