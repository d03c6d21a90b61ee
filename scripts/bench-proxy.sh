#!/usr/bin/env bash
# The node proxy side by side with nginx and HAProxy (Debian's packages), in one run, each
# proxying the same three replicas of a cargo (busybox httpd, a one-line page), driven by wrk
# on loopback with keep-alive: requests per second and p50/p99 latency at 1 and 64
# connections, BENCH_PROXY_RUNS runs each (interleaved), the median and the spread; then the
# time from `nanocl apply` of a new route to the proxy serving it (median of 7).
#
# Everything it starts (nanocld on its own embedded store and socket, its proxy process,
# nginx, haproxy, the namespace's containers and network) carries the run's prefix and is removed at the end.
# Needs: make dev-env, `scripts/dev-env.sh bench-tools` (wrk, nginx, haproxy, curl) and
# target/release binaries (`make bench` does all three).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release
DURATION=${BENCH_PROXY_DURATION:-8s}
RUNS=${BENCH_PROXY_RUNS:-3}
DOCKER=/usr/bin/docker
IMAGE=${NANOCL_TEST_IMAGE:-nanocl-test/busybox:latest}

say() { printf 'bench-proxy: %s\n' "$*"; }
die() { printf 'bench-proxy: error: %s\n' "$*" >&2; exit 1; }

for tool in wrk nginx haproxy curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run scripts/dev-env.sh bench-tools"
done
[[ -x $bin/nanocld && -x $bin/nanocl ]] || die "no release binaries: cargo build --release -p nanocl-cli -p nanocl-controller"

work=$(mktemp -d /tmp/nanocl-bench-proxy.XXXXXX)
ns="bench-proxy-$$"
export NANOCL_HOST="unix://$work/nanocl.sock"
daemon=""

cleanup() {
  set +e
  if [[ -n $daemon ]] && kill -0 "$daemon" 2>/dev/null; then
    "$bin/nanocl" delete namespace "$ns" --wait --timeout 60s >/dev/null 2>&1
    kill -TERM "$daemon" 2>/dev/null
    wait "$daemon" 2>/dev/null
  fi
  for pidfile in "$work/nginx.pid" "$work/haproxy.pid" "$work/state/proxy.pid"; do
    [[ -f $pidfile ]] && kill -TERM "$(cat "$pidfile")" 2>/dev/null
  done
  # Whatever the namespace still has (nanocld stopped midway): only ours, by its label.
  local ids
  ids=$($DOCKER ps -aq --filter "label=io.nanocl.namespace=$ns")
  [[ -n $ids ]] && $DOCKER rm -f $ids >/dev/null
  ids=$($DOCKER network ls -q --filter "label=io.nanocl.namespace=$ns")
  [[ -n $ids ]] && $DOCKER network rm $ids >/dev/null
  rm -rf -- "$work"
}
trap cleanup EXIT

# A port nothing listens on (loopback).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}
p_nanocl=$(free_port)
p_nginx=$(free_port)
p_haproxy=$(free_port)

say "nanocld on its own store ($work), namespace $ns"
NANOCL_LOG=${NANOCL_LOG:-info} "$bin/nanocld" --state-dir "$work/state" --listen "$NANOCL_HOST" \
  >"$work/nanocld.log" 2>&1 &
daemon=$!
for _ in $(seq 1 200); do
  "$bin/nanocl" get namespaces -o name >/dev/null 2>&1 && break
  kill -0 "$daemon" 2>/dev/null || { tail -20 "$work/nanocld.log" >&2; die "nanocld exited"; }
  sleep 0.05
done

rule() {
  # $1: extra http routes (flow-style lines)
  cat <<YAML
apiVersion: nanocl.io/v1
kind: ProxyRule
metadata: {name: front, namespace: $ns}
spec:
  cluster: dev
  listeners: [{port: $p_nanocl}]
  http:
    - {host: bench.test, cargo: web, port: 8080}
$1
YAML
}
cat >"$work/web.yaml" <<YAML
apiVersion: nanocl.io/v1
kind: Namespace
metadata: {name: $ns}
---
apiVersion: nanocl.io/v1
kind: Cluster
metadata: {name: dev, namespace: $ns}
---
apiVersion: nanocl.io/v1
kind: Cargo
metadata: {name: web, namespace: $ns}
spec:
  cluster: dev
  replicas: 3
  container:
    image: $IMAGE
    command: [sh, -c, 'mkdir -p /www && echo hello from \$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www']
---
$(rule "")
YAML
"$bin/nanocl" apply -f "$work/web.yaml" --wait --timeout 2m >/dev/null
for _ in $(seq 1 200); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.test' "http://127.0.0.1:$p_nanocl/") == 200 ]] && break
  sleep 0.05
done

mapfile -t backends < <($DOCKER ps -q --filter "label=io.nanocl.namespace=$ns" --filter "label=io.nanocl.cargo=web" |
  xargs $DOCKER inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}')
((${#backends[@]} == 3)) || die "expected 3 replicas, found ${#backends[@]}"
say "replicas: ${backends[*]} (port 8080)"

mkdir -p "$work/nginx"
{
  echo "worker_processes auto; pid $work/nginx.pid; error_log $work/nginx/error.log;"
  echo "events { worker_connections 4096; }"
  echo "http { access_log $work/nginx/access.log;"
  echo "  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;"
  echo "  upstream web {"
  for b in "${backends[@]}"; do echo "    server $b:8080;"; done
  echo "  }"
  echo "  server { listen 127.0.0.1:$p_nginx; location / { proxy_pass http://web; } }"
  echo "}"
} >"$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work/nginx" -e "$work/nginx/error.log"

{
  echo "global"
  echo "  nbthread 2"
  echo "defaults"
  echo "  mode http"
  echo "  timeout connect 2s"
  echo "  timeout client 30s"
  echo "  timeout server 30s"
  echo "frontend front"
  echo "  bind 127.0.0.1:$p_haproxy"
  echo "  default_backend web"
  echo "backend web"
  echo "  balance roundrobin"
  i=0
  for b in "${backends[@]}"; do i=$((i + 1)); echo "  server s$i $b:8080"; done
} >"$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -D -p "$work/haproxy.pid"

for p in "$p_nginx" "$p_haproxy"; do
  for _ in $(seq 1 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/") == 200 ]] && break
    sleep 0.05
  done
done

# wrk's latency in ms from "50%   1.23ms".
to_ms() {
  awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 } printf "%.3f", v }'
}

results="$work/results"
: >"$results"
run_wrk() {
  # $1 name, $2 port, $3 connections
  local threads=1 out rps p50 p99 errors
  (($3 > 1)) && threads=2
  out=$(wrk -t"$threads" -c"$3" -d"$DURATION" --latency -H 'Host: bench.test' "http://127.0.0.1:$2/" 2>&1)
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out" | to_ms)
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out" | to_ms)
  errors=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
  echo "$1 $3 $rps $p50 $p99 $errors" >>"$results"
  printf '  %-8s c=%-3s %10s req/s  p50 %8s ms  p99 %8s ms  errors %s\n' "$1" "$3" "$rps" "$p50" "$p99" "$errors"
}

say "wrk, $DURATION per run, $RUNS runs, keep-alive, loopback (2 threads at 64 connections)"
for run in $(seq 1 "$RUNS"); do
  say "run $run"
  for c in 1 64; do
    run_wrk nanocl "$p_nanocl" "$c"
    run_wrk nginx "$p_nginx" "$c"
    run_wrk haproxy "$p_haproxy" "$c"
  done
done

echo
say "medians of $RUNS runs (spread: min-max of req/s)"
printf '| %-8s | %-5s | %12s | %15s | %9s | %9s | %s |\n' proxy conns "req/s" "req/s spread" "p50 ms" "p99 ms" errors
printf '|%s|\n' "----------|-------|--------------|-----------------|-----------|-----------|--------"
for c in 1 64; do
  for name in nanocl nginx haproxy; do
    awk -v n="$name" -v c="$c" '
      $1 == n && $2 == c { r[++k] = $3; a[k] = $4; b[k] = $5; e += $6 }
      function median(x, m,   i, j, t) {
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
        return (m % 2) ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
      }
      END {
        lo = r[1]; hi = r[1]; for (i = 1; i <= k; i++) { if (r[i] < lo) lo = r[i]; if (r[i] > hi) hi = r[i] }
        printf "| %-8s | %-5s | %12.0f | %7.0f-%-7.0f | %9.3f | %9.3f | %s |\n", n, c, median(r, k), lo, hi, median(a, k), median(b, k), e
      }' "$results"
  done
done
for c in 1 64; do
  awk -v c="$c" '
    $2 == c { r[$1] = r[$1] " " $3; p[$1] = p[$1] " " $5 }
    function median(s,   x, m, i, j, t) {
      m = split(s, x, " ")
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (x[j] + 0 < x[i] + 0) { t = x[i]; x[i] = x[j]; x[j] = t }
      return (m % 2) ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
    }
    END {
      printf "c=%s: nanocl/nginx throughput %.2fx, p99 %.2fx; nanocl/haproxy throughput %.2fx, p99 %.2fx\n", c,
        median(r["nanocl"]) / median(r["nginx"]), median(p["nanocl"]) / median(p["nginx"]),
        median(r["nanocl"]) / median(r["haproxy"]), median(p["nanocl"]) / median(p["haproxy"])
    }' "$results"
done

echo
say "route change: nanocl apply of a new host until the proxy serves it (7 times)"
times=()
for i in 1 2 3 4 5 6 7; do
  rule "    - {host: r$i.test, cargo: web, port: 8080}" >"$work/rule.yaml"
  [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Host: r$i.test" "http://127.0.0.1:$p_nanocl/") == 404 ]] ||
    die "r$i.test is served before its route is applied"
  start=$(date +%s%N)
  "$bin/nanocl" apply -f "$work/rule.yaml" >/dev/null
  applied=$(date +%s%N)
  until [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Host: r$i.test" "http://127.0.0.1:$p_nanocl/") == 200 ]]; do
    (($(date +%s%N) - start < 10000000000)) || die "r$i.test not served 10 s after its apply"
  done
  done_at=$(date +%s%N)
  ms=$(((done_at - start) / 1000000))
  times+=("$ms")
  printf '  run %s: %s ms (apply returned after %s ms)\n' "$i" "$ms" "$(((applied - start) / 1000000))"
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {printf "median route change, apply to served: %d ms (min %d, max %d; curl polls every few ms)\n", a[4], a[1], a[NR]}'
