#!/usr/bin/env bash
# The load harness's native agents and backends (load/native/*.c) need a C compiler and libc's headers. Nothing is
# installed when a compiler that can build them is already there; without one, `make load` runs the Node agents and
# backends (load/README.md "Native agents and backends").
if command -v "${CC:-cc}" >/dev/null 2>&1 && [[ -e /usr/include/stdio.h && -e /usr/include/sys/epoll.h ]]; then
  exit 0
fi
exec bash "$(dirname "$0")/apt-ensure.sh" install-load-deps gcc libc6-dev
