#!/usr/bin/env bash
# Three nanocl hosts on this machine, to try several hosts without several machines:
# three Docker daemons of their own (each with its own socket, data root, exec root, pid file
# and bridge, no iptables), a three-member etcd on loopback ports, and one nanocld per daemon,
# all under target/three-hosts/. Everything stays on loopback; nothing of the host's own
# Docker is touched.
#
#   bash scripts/three-hosts.sh up      # start (after `make build`); prints how to reach each host
#   bash scripts/three-hosts.sh status  # what runs
#   bash scripts/three-hosts.sh down    # stop everything and remove the bridges (state is kept)
#   bash scripts/three-hosts.sh clean   # down, then remove the state
#
# Needs root (dockerd and bridges), the Debian packages `make dev-env` installs, and the test
# image (`make dev-env` builds it), which is copied into each daemon: no registry is asked.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/target/three-hosts
bin=$PWD/target/release
docker_cli=/usr/bin/docker
image=${NANOCL_TEST_IMAGE:-nanocl-test/busybox:latest}
hosts=(0 1 2)
# Loopback ports of the etcd members (client, peer).
etcd_client=(23810 23811 23812)
etcd_peer=(23820 23821 23822)

say() { echo "three-hosts: $*"; }
die() { echo "three-hosts: error: $*" >&2; exit 1; }

bridge() { echo "ncl3h$1"; }
sock() { echo "$root/docker$1/docker.sock"; }
nanocl_sock() { echo "$root/nanocld$1/nanocl.sock"; }
alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

store_url() {
  local eps=()
  for i in "${hosts[@]}"; do eps+=("127.0.0.1:${etcd_client[$i]}"); done
  (IFS=,; echo "etcd://${eps[*]}")
}

wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what did not come up within ${secs}s"
}

up() {
  [[ $(id -u) == 0 ]] || die "needs root (dockerd and bridges)"
  [[ -x $bin/nanocld && -x $bin/nanocl ]] || die "no release build: run \`make build\` first"
  command -v etcd >/dev/null || die "etcd is missing: run \`make dev-env\`"
  "$docker_cli" image inspect "$image" >/dev/null 2>&1 || die "the test image $image is missing: run \`make dev-env\`"
  mkdir -p "$root"
  local cluster=()
  for i in "${hosts[@]}"; do cluster+=("m$i=http://127.0.0.1:${etcd_peer[$i]}"); done
  cluster=$(IFS=,; echo "${cluster[*]}")
  for i in "${hosts[@]}"; do
    local dir=$root/etcd$i
    mkdir -p "$dir"
    if alive "$dir/pid"; then continue; fi
    etcd --name "m$i" --data-dir "$dir/data" \
      --listen-client-urls "http://127.0.0.1:${etcd_client[$i]}" \
      --advertise-client-urls "http://127.0.0.1:${etcd_client[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${etcd_peer[$i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${etcd_peer[$i]}" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
  done
  for i in "${hosts[@]}"; do
    wait_for "etcd member m$i" 60 env ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:${etcd_client[$i]}" endpoint health
  done
  say "etcd: three members on 127.0.0.1:${etcd_client[0]},${etcd_client[1]},${etcd_client[2]}"
  for i in "${hosts[@]}"; do
    local dir=$root/docker$i br
    br=$(bridge "$i")
    mkdir -p "$dir"
    if ! ip link show "$br" >/dev/null 2>&1; then
      ip link add "$br" type bridge
      ip addr add "10.214.$i.1/24" dev "$br"
      ip link set "$br" up
    fi
    if ! alive "$dir/docker.pid"; then
      dockerd --host "unix://$(sock "$i")" --data-root "$dir/data" --exec-root "$dir/exec" \
        --pidfile "$dir/docker.pid" --bridge "$br" --iptables=false --ip-masq=false \
        >"$dir/log" 2>&1 &
    fi
    wait_for "dockerd $i" 60 "$docker_cli" -H "unix://$(sock "$i")" info
    if ! "$docker_cli" -H "unix://$(sock "$i")" image inspect "$image" >/dev/null 2>&1; then
      "$docker_cli" save "$image" | "$docker_cli" -H "unix://$(sock "$i")" load -q >/dev/null
    fi
  done
  say "docker: three daemons, sockets $root/docker{0,1,2}/docker.sock"
  local store
  store=$(store_url)
  for i in "${hosts[@]}"; do
    local dir=$root/nanocld$i
    mkdir -p "$dir"
    if alive "$dir/pid"; then continue; fi
    DOCKER_HOST="unix://$(sock "$i")" NANOCL_LOG="${NANOCL_LOG:-info}" "$bin/nanocld" \
      --store "$store" --node "host-$i" --node-label "index=$i" \
      --node-address "127.0.0.$((i + 2))" \
      --state-dir "$dir/state" --listen "unix://$(nanocl_sock "$i")" \
      --listen "tcp://127.0.0.1:$((23830 + i))" --secrets-key "$root/secrets.key" \
      >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
  done
  for i in "${hosts[@]}"; do
    wait_for "nanocld $i" 60 env NANOCL_HOST="unix://$(nanocl_sock "$i")" "$bin/nanocl" get namespaces -o name
  done
  # The outcome, checked the way a user would: every node Ready, as any host serves it.
  for i in "${hosts[@]}"; do
    wait_for "node host-$i Ready" 60 bash -c \
      "NANOCL_HOST=unix://$(nanocl_sock 0) $bin/nanocl get node host-$i | grep -q ' Ready '"
  done
  NANOCL_HOST="unix://$(nanocl_sock 0)" "$bin/nanocl" get nodes -o wide
  cat <<MSG

three-hosts: up. Each host's nanocld (any of them answers for all):
  export NANOCL_HOST=unix://$(nanocl_sock 0)     # or nanocld1, nanocld2
  $bin/nanocl get nodes -o wide
  $bin/nanocl apply -R -f examples/getting-started # then: nanocl get replicas -A -o wide
  $bin/nanocl drain node host-1                   # its replicas move; uncordon to undo
  curl -s --unix-socket $(nanocl_sock 0) http://x/metrics | grep leading   # who leads
  kill -9 \$(cat $root/nanocld0/pid)                                       # and watch the lead move
Logs: $root/*/log.  Stop: bash scripts/three-hosts.sh down
MSG
}

stop_pid() { # pidfile
  alive "$1" || return 0
  local pid; pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
}

down() {
  for i in "${hosts[@]}"; do stop_pid "$root/nanocld$i/pid"; stop_pid "$root/nanocld$i/state/proxy.pid"; done
  for i in "${hosts[@]}"; do
    local s; s=$(sock "$i")
    if [[ -S $s ]] && "$docker_cli" -H "unix://$s" info >/dev/null 2>&1; then
      # What nanocl made there (labelled), and the networks whose bridges live in the host's
      # kernel: removed with their daemon.
      local ids; ids=$("$docker_cli" -H "unix://$s" ps -aq --filter label=io.nanocl.managed=true)
      [[ -z $ids ]] || "$docker_cli" -H "unix://$s" rm -f $ids >/dev/null
      local nets; nets=$("$docker_cli" -H "unix://$s" network ls -q --filter label=io.nanocl.managed=true)
      [[ -z $nets ]] || "$docker_cli" -H "unix://$s" network rm $nets >/dev/null
    fi
    stop_pid "$root/docker$i/docker.pid"
    ip link del "$(bridge "$i")" 2>/dev/null || true
  done
  for i in "${hosts[@]}"; do stop_pid "$root/etcd$i/pid"; done
  say "down"
}

status() {
  for i in "${hosts[@]}"; do
    local e=down d=down n=down
    alive "$root/etcd$i/pid" && e=up
    alive "$root/docker$i/docker.pid" && d=up
    alive "$root/nanocld$i/pid" && n=up
    echo "host-$i: etcd m$i $e, dockerd $d, nanocld $n"
  done
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  clean) down; rm -rf "$root"; say "state removed" ;;
  *) echo "usage: bash scripts/three-hosts.sh up|status|down|clean" >&2; exit 2 ;;
esac
