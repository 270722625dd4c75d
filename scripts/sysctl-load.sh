#!/usr/bin/env bash
# Kernel settings for the load harness (load/): apply them, and put the old values back afterwards.
#   scripts/sysctl-load.sh apply   [STATE]   raise the settings below; saves the old values in STATE first
#   scripts/sysctl-load.sh restore [STATE]   write back the values saved in STATE, then remove STATE
#   scripts/sysctl-load.sh show              print the current values
# STATE defaults to /tmp/polyproxy-sysctl-load.state. `apply` only ever widens a setting (a value already higher is
# kept), prints every change as "key: old -> new", and never overwrites a STATE file that already exists, so a
# second `apply` before `restore` still restores the values from before the first one. Needs root.
set -euo pipefail

action=${1:-show}
state=${2:-/tmp/polyproxy-sysctl-load.state}

# key and wanted value. ip_local_port_range: more ephemeral ports per (source, destination) pair;
# somaxconn/tcp_max_syn_backlog: accept queues that absorb a fast ramp; nr_open/file-max: room for many processes
# holding 20,000 descriptors each.
wanted=(
  "fs.nr_open=1048576"
  "fs.file-max=4194304"
  "net.ipv4.ip_local_port_range=10000 65535"
  "net.core.somaxconn=65535"
  "net.ipv4.tcp_max_syn_backlog=65535"
)

path_of() { echo "/proc/sys/${1//.//}"; }
get() { tr -s '\t ' '  ' <"$(path_of "$1")"; }
put() { printf '%s\n' "$2" >"$(path_of "$1")"; }

case "$action" in
  show)
    for kv in "${wanted[@]}"; do
      key=${kv%%=*}
      echo "$key = $(get "$key")"
    done
    ;;
  apply)
    [[ $(id -u) == 0 ]] || { echo "sysctl-load: apply needs root" >&2; exit 1; }
    fresh=0
    if [[ ! -e $state ]]; then
      fresh=1
      : >"$state"
    fi
    changed=0
    for kv in "${wanted[@]}"; do
      key=${kv%%=*}
      want=${kv#*=}
      old=$(get "$key")
      if [[ $key == net.ipv4.ip_local_port_range ]]; then
        read -r olo ohi <<<"$old"
        read -r wlo whi <<<"$want"
        new="$((olo < wlo ? olo : wlo)) $((ohi > whi ? ohi : whi))"
      else
        new=$((old > want ? old : want))
      fi
      if [[ $new != "$old" ]]; then
        put "$key" "$new"
        [[ $fresh == 1 ]] && echo "$key=$old" >>"$state"
        echo "sysctl-load: $key: $old -> $new"
        changed=1
      fi
    done
    [[ $changed == 1 ]] || echo "sysctl-load: nothing to change"
    ;;
  restore)
    if [[ ! -e $state ]]; then
      echo "sysctl-load: no saved values in $state: nothing to restore"
      exit 0
    fi
    while IFS= read -r kv; do
      [[ -n $kv ]] || continue
      key=${kv%%=*}
      old=${kv#*=}
      now=$(get "$key")
      put "$key" "$old"
      echo "sysctl-load: $key: $now -> $old (restored)"
    done <"$state"
    rm -f "$state"
    ;;
  *)
    echo "usage: $0 apply|restore [STATE] | show" >&2
    exit 2
    ;;
esac
