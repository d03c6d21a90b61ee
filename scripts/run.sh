#!/usr/bin/env bash
# `make run`: nanocld on the embedded store in the foreground, with examples/ applied once it
# answers. Ctrl-C stops it (state is kept in target/run/ for the next run).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release
state=${NANOCL_RUN_STATE:-target/run}
mkdir -p "$state"
if [[ -n "${NANOCL_HOST:-}" ]]; then
  socket=${NANOCL_HOST#unix://}
else
  socket=$(if [[ $(id -u) == 0 ]]; then echo /run/nanocl/nanocl.sock; else echo "${XDG_RUNTIME_DIR:-/tmp}/nanocl/nanocl.sock"; fi)
fi
export NANOCL_HOST="unix://$socket"

echo "run: starting nanocld (store: embedded:$state/store.redb, socket: $socket)"
NANOCL_LOG="${NANOCL_LOG:-warn,nanocld=info}" "$bin/nanocld" --state-dir "$state" --listen "unix://$socket" &
daemon=$!
# The proxy runs in a process of its own that outlives nanocld's restarts; `make run` stops
# it too when it stops.
stop_all() {
  kill -TERM $daemon 2>/dev/null || true
  wait $daemon 2>/dev/null || true
  if [[ -f $state/proxy.pid ]]; then kill -TERM "$(cat "$state/proxy.pid")" 2>/dev/null || true; fi
}
trap stop_all INT TERM EXIT

for _ in $(seq 1 200); do
  [[ -S $socket ]] && "$bin/nanocl" get namespaces -o name >/dev/null 2>&1 && break
  kill -0 $daemon 2>/dev/null || { echo "run: nanocld exited; see the messages above" >&2; exit 1; }
  sleep 0.05
done

echo "run: applying examples/ and waiting until everything is Ready"
"$bin/nanocl" apply -R -f examples/ --wait --timeout 3m
cat <<MSG

run: nanocld is running in the foreground (Ctrl-C stops it). In another shell:
  export NANOCL_HOST=$NANOCL_HOST
  $bin/nanocl get cargoes -A -o wide
  $bin/nanocl get nodes -o wide           # this host, registered by nanocld
  $bin/nanocl get replicas -A -o wide     # every replica and the node it is placed on
  curl http://127.0.0.1:18080/cgi-bin/index    # the web cargo asks the backend cargo
  curl -H 'Host: backend.localhost' http://127.0.0.1:18088/   # through the proxy (examples/getting-started/05-proxy.yaml)
  docker rm -f \$(docker ps -q --filter label=io.nanocl.namespace=getting-started --filter label=io.nanocl.cargo=backend | head -1)   # and watch it come back
  $bin/nanocl -n getting-started scale cargo backend --replicas 4
  $bin/nanocl -n getting-started describe cargo web
  $bin/nanocl diff -R -f examples/        # exit 1 after the scale: the files say 2
  $bin/nanocl watch examples/gitops/deploy -v   # edit a file there and save: synced within ~0.5 s
  # GitOps: examples/gitops/README.md walks through ci-deploy.sh on a git repository of your own
MSG
wait $daemon
