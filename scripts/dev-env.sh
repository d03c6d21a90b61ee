#!/usr/bin/env bash
# Prepare (and inspect) a local development/test environment for nanocl:
# a running Docker daemon, a dedicated loopback-only etcd, and offline-built
# busybox images. Idempotent: rerunning `up` only confirms what is already there.
#
# Usage: scripts/dev-env.sh up|down|status|env|--help
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$SCRIPT_DIR")"
readonly SCRIPT_DIR REPO
readonly STATE_DIR="${NANOCL_DEV_STATE:-$REPO/target/dev-env}"
readonly ENV_FILE="$STATE_DIR/env"

# libprotobuf-dev holds protoc's well-known types (google/protobuf/*.proto), which the build of
# etcd-client imports; it is only a Recommends of protobuf-compiler, and we skip those.
# pebble: a test ACME server (and its mock DNS, pebble-challtestsrv) for the proxy's ACME test.
# chromium, chromium-driver: the dashboard test drives a real headless browser over WebDriver.
# python3-kubernetes: the kubectl test also lists and watches with the Python client.
readonly PACKAGES=(docker.io etcd-server etcd-client protobuf-compiler libprotobuf-dev busybox-static time git pebble chromium chromium-driver python3-kubernetes)
# The peers `make bench` measures the proxy against, and its load generator.
readonly BENCH_PACKAGES=(wrk nginx haproxy curl docker-compose)

readonly DOCKER_SOCK=/var/run/docker.sock
readonly DOCKER_HOST_URL="unix://$DOCKER_SOCK"
readonly DOCKER_PIDFILE=/var/run/docker.pid
# pid file of the containerd that dockerd spawns itself (no --containerd)
readonly CONTAINERD_PIDFILE=/var/run/docker/containerd/containerd.pid
readonly DOCKERD_LOG="$STATE_DIR/dockerd.log"
readonly DOCKER_WAIT=60

readonly ETCD_NAME=nanocl-dev
readonly ETCD_ENDPOINT=127.0.0.1:23790
readonly ETCD_CLIENT_URL="http://$ETCD_ENDPOINT"
readonly ETCD_PEER_URL=http://127.0.0.1:23800
readonly ETCD_DATA_DIR="$STATE_DIR/etcd-data"
readonly ETCD_LOG="$STATE_DIR/etcd.log"
readonly ETCD_PIDFILE="$STATE_DIR/etcd.pid"
readonly ETCD_WAIT=30

readonly TEST_IMAGE=nanocl-test/busybox:latest
readonly EXAMPLE_IMAGE=busybox:stable
readonly IMAGE_LABEL=io.nanocl.dev-image=true

# Prefer Debian's client: /usr/local/bin/docker may be a newer, different client.
if [[ -x /usr/bin/docker ]]; then
  DOCKER=/usr/bin/docker
else
  DOCKER="$(command -v docker || true)"
fi

TMP_DIR=""
POLICY_RC_D=/usr/sbin/policy-rc.d
readonly POLICY_MARKER='# dev-env.sh: temporary, blocks service starts during apt-get install'
POLICY_CREATED=0

say() { printf 'dev-env: %s\n' "$*"; }
warn() { printf 'dev-env: warning: %s\n' "$*" >&2; }
die() { printf 'dev-env: error: %s\n' "$*" >&2; exit 1; }

cleanup() {
  if ((POLICY_CREATED)); then
    rm -f -- "$POLICY_RC_D"
  fi
  if [[ -n "$TMP_DIR" && -d "$TMP_DIR" ]]; then
    rm -rf -- "$TMP_DIR"
  fi
}
trap cleanup EXIT

usage() {
  cat <<EOF
Usage: scripts/dev-env.sh <command>

Commands:
  up       install missing Debian packages, start dockerd and a test etcd
           ($ETCD_ENDPOINT), build offline busybox images ($TEST_IMAGE,
           $EXAMPLE_IMAGE) and write $ENV_FILE
  down     stop the etcd started by 'up' (dockerd is left running)
  bench-tools
           install what 'make bench' compares against and drives load with
           (${BENCH_PACKAGES[*]}); starts none of them
  status   report the state of docker, etcd and the images
  env      print the env file written by 'up'
  --help   show this help

State directory: \${NANOCL_DEV_STATE:-<repo>/target/dev-env} (now: $STATE_DIR)
EOF
}

# --- helpers -----------------------------------------------------------------

# True if $1 is a live (non-zombie) process.
pid_alive() {
  local pid="$1" state
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/stat" ]] || return 1
  state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ "$state" != Z && "$state" != X ]]
}

pid_comm() { cat "/proc/$1/comm" 2>/dev/null || true; }
pid_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }
read_pidfile() {
  if [[ -r "$1" ]]; then tr -dc '0-9' <"$1" || true; fi
}

docker_cli() { "$DOCKER" -H "$DOCKER_HOST_URL" "$@"; }

docker_up() {
  [[ -n "$DOCKER" ]] || return 1
  timeout 10 "$DOCKER" -H "$DOCKER_HOST_URL" info >/dev/null 2>&1
}

etcd_healthy() {
  command -v etcdctl >/dev/null 2>&1 || return 1
  ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_ENDPOINT" \
    --dial-timeout=2s --command-timeout=3s endpoint health >/dev/null 2>&1
}

image_exists() { docker_cli image inspect "$1" >/dev/null 2>&1; }

# Print the log lines written after line $2 (the tail, at most 30).
log_tail() {
  local log="$1" from="${2:-0}"
  [[ -f "$log" ]] || return 0
  tail -n "+$((from + 1))" "$log" | tail -n 30 | sed 's/^/    /' >&2
}

log_lines() { if [[ -f "$1" ]]; then wc -l <"$1"; else echo 0; fi; }

# --- step 1: packages ----------------------------------------------------------

ensure_packages() {
  command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script expects Debian 12"
  local missing=() pkg status
  local wanted=("$@")
  # A guard left behind by an interrupted earlier run.
  if [[ -f "$POLICY_RC_D" ]] && grep -qxF "$POLICY_MARKER" "$POLICY_RC_D" 2>/dev/null; then
    if ((EUID == 0)); then
      say "packages: removing leftover $POLICY_RC_D from an interrupted run"
      rm -f -- "$POLICY_RC_D"
    fi
  fi
  for pkg in "${wanted[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    say "packages: all present (${wanted[*]})"
    return 0
  fi
  if ((EUID != 0)); then
    die "missing packages: ${missing[*]}; run as root or install them: apt-get install ${missing[*]}"
  fi
  say "packages: installing ${missing[*]}"
  # Keep package maintainer scripts from starting dockerd/etcd as system
  # services: this script starts them itself (no init system is assumed).
  if [[ ! -e "$POLICY_RC_D" ]]; then
    printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARKER" >"$POLICY_RC_D"
    chmod 755 "$POLICY_RC_D"
    POLICY_CREATED=1
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends "${missing[@]}"
  if ((POLICY_CREATED)); then
    rm -f -- "$POLICY_RC_D"
    POLICY_CREATED=0
  fi
  say "packages: installed ${missing[*]}"
}

# --- step 2: docker ------------------------------------------------------------

# Remove /var/run/docker.pid if it does not belong to a live dockerd, and the
# pid file of dockerd's own containerd if that process is gone or a zombie
# (dockerd only checks kill(pid, 0), which a zombie passes; it then waits for
# a containerd that never answers and gives up).
# Returns 1 if a live dockerd owns /var/run/docker.pid.
clear_stale_docker_pidfile() {
  local pid
  if [[ -e "$DOCKER_PIDFILE" ]]; then
    pid="$(read_pidfile "$DOCKER_PIDFILE")"
    if [[ -n "$pid" ]] && pid_alive "$pid" && [[ "$(pid_comm "$pid")" == dockerd ]]; then
      return 1
    fi
    say "docker: removing stale $DOCKER_PIDFILE (pid ${pid:-?} is not a running dockerd)"
    rm -f -- "$DOCKER_PIDFILE"
  fi
  if [[ -e "$CONTAINERD_PIDFILE" ]]; then
    pid="$(read_pidfile "$CONTAINERD_PIDFILE")"
    if [[ -z "$pid" ]] || ! pid_alive "$pid" || [[ "$(pid_comm "$pid")" != containerd ]]; then
      say "docker: removing stale $CONTAINERD_PIDFILE (pid ${pid:-?} is not a running containerd)"
      rm -f -- "$CONTAINERD_PIDFILE"
    fi
  fi
  return 0
}

# Wait for the docker API; $1 = pid to watch (stop waiting if it dies).
wait_docker() {
  local pid="$1" deadline=$((SECONDS + DOCKER_WAIT))
  while ((SECONDS < deadline)); do
    docker_up && return 0
    pid_alive "$pid" || return 1
    sleep 1
  done
  docker_up
}

ensure_docker() {
  [[ -n "$DOCKER" ]] || die "no docker client found (expected /usr/bin/docker from docker.io)"
  if docker_up; then
    say "docker: daemon answering on $DOCKER_SOCK (client $DOCKER)"
    return 0
  fi
  if ((EUID != 0)); then
    if [[ -S "$DOCKER_SOCK" && ! -w "$DOCKER_SOCK" ]]; then
      die "docker: no permission on $DOCKER_SOCK (join the docker group or run as root)"
    fi
    die "docker: no daemon on $DOCKER_SOCK and not root, cannot start dockerd (rerun as root)"
  fi
  command -v dockerd >/dev/null 2>&1 || die "docker: dockerd not found (package docker.io)"

  local pid attempt from
  if ! clear_stale_docker_pidfile; then
    pid="$(read_pidfile "$DOCKER_PIDFILE")"
    say "docker: dockerd (pid $pid) is running but not answering yet, waiting up to ${DOCKER_WAIT}s"
    if wait_docker "$pid"; then
      say "docker: daemon ready (pid $pid)"
      return 0
    fi
    log_tail "$DOCKERD_LOG"
    die "docker: dockerd pid $pid does not answer on $DOCKER_SOCK; stop it and rerun"
  fi

  mkdir -p -- "$STATE_DIR"
  for attempt in 1 2; do
    from="$(log_lines "$DOCKERD_LOG")"
    printf '=== dev-env: starting dockerd at %s ===\n' "$(date -Is)" >>"$DOCKERD_LOG"
    from=$((from + 1))
    say "docker: starting dockerd (log: $DOCKERD_LOG)"
    # setsid+nohup: own session, survives this script; fd 9 (our lock) closed.
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
    pid=$!
    if wait_docker "$pid"; then
      say "docker: daemon ready (pid $pid)"
      return 0
    fi
    if ((attempt == 1)) && ! pid_alive "$pid" \
      && grep -qiE 'pid file found|failed to start containerd' \
        < <(tail -n "+$((from + 1))" "$DOCKERD_LOG"); then
      sleep 1
      if clear_stale_docker_pidfile; then
        say "docker: dockerd tripped over a stale pid file, retrying once"
        continue
      fi
    fi
    break
  done
  warn "docker: last lines of $DOCKERD_LOG:"
  log_tail "$DOCKERD_LOG" "$from"
  if pid_alive "$pid"; then
    die "docker: dockerd (pid $pid) did not answer within ${DOCKER_WAIT}s"
  fi
  die "docker: dockerd exited during startup"
}

# --- step 3: etcd --------------------------------------------------------------

# GOARCH of the etcd binary (via the Debian architecture, else uname -m).
go_arch() {
  local arch
  arch="$(dpkg --print-architecture 2>/dev/null || uname -m)"
  case "$arch" in
    amd64 | x86_64) echo amd64 ;;
    arm64 | aarch64) echo arm64 ;;
    armhf | armel | arm*) echo arm ;;
    i386 | i?86) echo 386 ;;
    ppc64el | ppc64le) echo ppc64le ;;
    mips64el | mips64) echo mips64le ;;
    loong64 | loongarch64) echo loong64 ;;
    *) echo "$arch" ;;
  esac
}

# True if the etcd pid file points to the etcd this script started.
our_etcd_pid() {
  local pid
  pid="$(read_pidfile "$ETCD_PIDFILE")"
  [[ -n "$pid" ]] && pid_alive "$pid" || return 1
  [[ "$(pid_comm "$pid")" == etcd && "$(pid_cmdline "$pid")" == *"$ETCD_DATA_DIR"* ]] || return 1
  echo "$pid"
}

wait_etcd() {
  local pid="$1" deadline=$((SECONDS + ETCD_WAIT))
  while ((SECONDS < deadline)); do
    etcd_healthy && return 0
    pid_alive "$pid" || return 1
    sleep 1
  done
  etcd_healthy
}

ensure_etcd() {
  command -v etcdctl >/dev/null 2>&1 || die "etcd: etcdctl not found (package etcd-client)"
  local pid from
  if etcd_healthy; then
    if pid="$(our_etcd_pid)"; then
      say "etcd: healthy on $ETCD_ENDPOINT (pid $pid)"
    else
      say "etcd: healthy on $ETCD_ENDPOINT (not started by this script, reusing)"
    fi
    return 0
  fi
  command -v etcd >/dev/null 2>&1 || die "etcd: etcd not found (package etcd-server)"
  mkdir -p -- "$STATE_DIR"

  if pid="$(our_etcd_pid)"; then
    say "etcd: pid $pid running but not healthy yet, waiting up to ${ETCD_WAIT}s"
    if wait_etcd "$pid"; then
      say "etcd: healthy on $ETCD_ENDPOINT (pid $pid)"
      return 0
    fi
    log_tail "$ETCD_LOG"
    die "etcd: pid $pid is not healthy; run 'scripts/dev-env.sh down' and retry"
  fi
  if [[ -e "$ETCD_PIDFILE" ]]; then
    say "etcd: removing stale pid file $ETCD_PIDFILE"
    rm -f -- "$ETCD_PIDFILE"
  fi

  local arch
  arch="$(go_arch)"
  if [[ "$arch" != amd64 && "$arch" != ppc64le && -z "${ETCD_UNSUPPORTED_ARCH:-}" ]]; then
    say "etcd: setting ETCD_UNSUPPORTED_ARCH=$arch"
    export ETCD_UNSUPPORTED_ARCH="$arch"
  fi

  mkdir -p -- "$ETCD_DATA_DIR"
  chmod 700 "$ETCD_DATA_DIR"
  from="$(log_lines "$ETCD_LOG")"
  printf '=== dev-env: starting etcd at %s ===\n' "$(date -Is)" >>"$ETCD_LOG"
  from=$((from + 1))
  say "etcd: starting $ETCD_NAME on $ETCD_CLIENT_URL (log: $ETCD_LOG)"
  setsid nohup etcd \
    --name "$ETCD_NAME" \
    --data-dir "$ETCD_DATA_DIR" \
    --listen-client-urls "$ETCD_CLIENT_URL" \
    --advertise-client-urls "$ETCD_CLIENT_URL" \
    --listen-peer-urls "$ETCD_PEER_URL" \
    --initial-advertise-peer-urls "$ETCD_PEER_URL" \
    --initial-cluster "$ETCD_NAME=$ETCD_PEER_URL" \
    >>"$ETCD_LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$ETCD_PIDFILE"
  if wait_etcd "$pid"; then
    say "etcd: healthy on $ETCD_ENDPOINT (pid $pid)"
    return 0
  fi
  warn "etcd: last lines of $ETCD_LOG:"
  log_tail "$ETCD_LOG" "$from"
  if pid_alive "$pid"; then
    die "etcd: pid $pid not healthy within ${ETCD_WAIT}s"
  fi
  rm -f -- "$ETCD_PIDFILE"
  die "etcd: exited during startup"
}

# --- step 4: images --------------------------------------------------------------

busybox_binary() {
  local bb=/bin/busybox owner ldd_out
  [[ -x "$bb" ]] || die "images: $bb not found (package busybox-static)"
  owner="$(dpkg-query -S "$bb" 2>/dev/null | cut -d: -f1 || true)"
  if ldd_out="$(ldd "$bb" 2>&1)"; then
    # ldd succeeded: dynamically linked
    [[ "$owner" == busybox-static ]] \
      || die "images: $bb is dynamically linked and not from busybox-static (owner: ${owner:-unknown}); install busybox-static"
    warn "images: $bb looks dynamic to ldd but belongs to busybox-static; using it"
  elif [[ "$ldd_out" != *"not a dynamic executable"* && "$ldd_out" != *"statically linked"* \
    && "$owner" != busybox-static ]]; then
    die "images: cannot verify $bb is static (ldd: $ldd_out)"
  fi
  echo "$bb"
}

ensure_images() {
  local missing=() name
  for name in "$TEST_IMAGE" "$EXAMPLE_IMAGE"; do
    if image_exists "$name"; then
      say "images: $name present, leaving it as is"
    else
      missing+=("$name")
    fi
  done
  ((${#missing[@]} > 0)) || return 0

  local bb rootfs applet version count=0
  bb="$(busybox_binary)"
  version="$("$bb" 2>/dev/null | head -n 1 | cut -d' ' -f1-2 || true)"
  mkdir -p -- "$STATE_DIR"
  TMP_DIR="$(mktemp -d "$STATE_DIR/rootfs.XXXXXX")"
  rootfs="$TMP_DIR/rootfs"
  say "images: building busybox rootfs from $bb (${version:-unknown version})"
  mkdir -p -- "$rootfs"/{bin,etc,root,var/www,tmp,dev,proc,sys}
  chmod 1777 "$rootfs/tmp"
  chmod 700 "$rootfs/root"
  cp -- "$bb" "$rootfs/bin/busybox"
  chmod 755 "$rootfs/bin/busybox"
  while IFS= read -r applet; do
    [[ -n "$applet" && "$applet" != busybox && "$applet" != */* ]] || continue
    ln -sf busybox "$rootfs/bin/$applet"
    count=$((count + 1))
  done < <("$bb" --list)
  [[ -e "$rootfs/bin/sh" ]] || die "images: busybox has no sh applet"
  cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
  say "images: rootfs has $count applets; importing as ${missing[0]}"
  tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -cf - . \
    | docker_cli import \
      --change 'CMD ["sh"]' \
      --change 'ENV PATH=/bin' \
      --change "LABEL $IMAGE_LABEL" \
      - "${missing[0]}" >/dev/null
  say "images: created ${missing[0]}"
  for name in "${missing[@]:1}"; do
    docker_cli tag "${missing[0]}" "$name"
    say "images: created $name"
  done
}

# --- step 5: env file --------------------------------------------------------------

write_env() {
  mkdir -p -- "$STATE_DIR"
  local tmp="$ENV_FILE.tmp.$$"
  cat >"$tmp" <<EOF
NANOCL_TEST_ETCD=$ETCD_ENDPOINT
NANOCL_TEST_IMAGE=$TEST_IMAGE
NANOCL_EXAMPLE_IMAGE=$EXAMPLE_IMAGE
DOCKER_HOST=$DOCKER_HOST_URL
EOF
  if [[ -f "$ENV_FILE" ]] && cmp -s "$tmp" "$ENV_FILE"; then
    rm -f -- "$tmp"
    say "env: $ENV_FILE up to date"
  else
    mv -f -- "$tmp" "$ENV_FILE"
    say "env: wrote $ENV_FILE"
  fi
  cat -- "$ENV_FILE"
}

take_lock() {
  mkdir -p -- "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
    say "waiting for another dev-env.sh run to finish"
    flock 9
  fi
}

# --- step 6: verify the outcome ------------------------------------------------------

# Check what the build and the tests need, the way they use it; every failed check names the
# missing piece and the fix. An install step that silently did nothing (a package that was
# present on one machine only) fails here, not in the middle of `cargo build`.
verify_outcome() {
  local failed=0 tmp name
  mkdir -p -- "$STATE_DIR"
  tmp="$(mktemp -d "$STATE_DIR/verify.XXXXXX")"
  if ! command -v protoc >/dev/null 2>&1; then
    warn "check: protoc not found (package protobuf-compiler): apt-get install protobuf-compiler"
    failed=$((failed + 1))
  else
    printf '%s\n' 'syntax = "proto3";' 'package nanocl.devenv;' \
      'import "google/protobuf/descriptor.proto";' \
      'message Check { google.protobuf.FileDescriptorProto file = 1; }' >"$tmp/check.proto"
    if ! protoc --proto_path="$tmp" --descriptor_set_out="$tmp/check.pb" "$tmp/check.proto" \
      >"$tmp/protoc.log" 2>&1; then
      warn "check: protoc cannot compile a file that imports google/protobuf/descriptor.proto (the well-known types, package libprotobuf-dev): apt-get install libprotobuf-dev"
      sed 's/^/    /' "$tmp/protoc.log" >&2
      failed=$((failed + 1))
    fi
  fi
  if ! docker_up; then
    warn "check: dockerd does not answer on $DOCKER_SOCK (log: $DOCKERD_LOG); rerun: scripts/dev-env.sh up"
    failed=$((failed + 1))
  else
    for name in "$TEST_IMAGE" "$EXAMPLE_IMAGE"; do
      if ! image_exists "$name"; then
        warn "check: image $name is missing; rerun: scripts/dev-env.sh up"
        failed=$((failed + 1))
      elif ! timeout 60 "$DOCKER" -H "$DOCKER_HOST_URL" run --rm --network none \
        --label io.nanocl.dev-env-check=true "$name" true >/dev/null 2>"$tmp/run.log"; then
        warn "check: image $name does not run (docker run --rm $name true failed):"
        sed 's/^/    /' "$tmp/run.log" >&2
        failed=$((failed + 1))
      fi
    done
  fi
  if ! etcd_healthy; then
    warn "check: etcd is not healthy on $ETCD_ENDPOINT (log: $ETCD_LOG); run: scripts/dev-env.sh down; scripts/dev-env.sh up"
    failed=$((failed + 1))
  fi
  # `time` is a shell keyword: the benchmarks need the program, /usr/bin/time.
  for name in /usr/bin/git:git /usr/bin/time:time /bin/busybox:busybox-static /usr/bin/pebble:pebble /usr/bin/pebble-challtestsrv:pebble /usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver; do
    if [[ ! -x "${name%%:*}" ]]; then
      warn "check: ${name%%:*} not found (package ${name#*:}): apt-get install ${name#*:}"
      failed=$((failed + 1))
    fi
  done
  rm -rf -- "$tmp"
  if ((failed > 0)); then
    die "$failed check(s) failed: the environment is not ready"
  fi
  say "checks passed: protoc with the well-known types, dockerd, images run, etcd healthy, git, time, pebble, chromium"
}

# --- commands --------------------------------------------------------------------

cmd_up() {
  ensure_packages "${PACKAGES[@]}"
  # Packages may just have been installed.
  if [[ -z "$DOCKER" ]]; then
    if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER="$(command -v docker || true)"; fi
  fi
  take_lock
  say "state dir: $STATE_DIR"
  ensure_docker
  ensure_etcd
  ensure_images
  write_env
  verify_outcome
  say "ready (load with: set -a; . $ENV_FILE; set +a)"
}

cmd_bench_tools() {
  ensure_packages "${BENCH_PACKAGES[@]}"
  local tool failed=0
  for tool in wrk nginx haproxy curl docker-compose; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      warn "check: $tool not found after installing ${BENCH_PACKAGES[*]}"
      failed=$((failed + 1))
    fi
  done
  ((failed == 0)) || die "$failed benchmark tool(s) missing"
  say "bench tools ready: wrk, nginx, haproxy, curl, docker-compose (none of them is started here)"
}

cmd_down() {
  if [[ ! -d "$STATE_DIR" ]]; then
    say "etcd: no state dir ($STATE_DIR), nothing to stop"
  else
    take_lock
    local pid i
    if pid="$(our_etcd_pid)"; then
      say "etcd: stopping pid $pid"
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 20; i++)); do
        pid_alive "$pid" || break
        sleep 0.5
      done
      if pid_alive "$pid"; then
        say "etcd: pid $pid still running, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
      rm -f -- "$ETCD_PIDFILE"
      say "etcd: stopped (data kept in $ETCD_DATA_DIR)"
    else
      if [[ -e "$ETCD_PIDFILE" ]]; then
        say "etcd: removing stale pid file $ETCD_PIDFILE"
        rm -f -- "$ETCD_PIDFILE"
      fi
      if etcd_healthy; then
        say "etcd: an etcd answers on $ETCD_ENDPOINT but was not started by this script; leaving it"
      else
        say "etcd: not running"
      fi
    fi
  fi
  local dpid
  dpid="$(read_pidfile "$DOCKER_PIDFILE")"
  if docker_up; then
    say "docker: leaving dockerd running${dpid:+ (pid $dpid)}"
  else
    say "docker: dockerd not running (left alone)"
  fi
}

cmd_status() {
  local problems=0 pid name label
  say "state dir: $STATE_DIR"
  if docker_up; then
    pid="$(read_pidfile "$DOCKER_PIDFILE")"
    say "docker: up on $DOCKER_SOCK${pid:+ (pid $pid)}, server $(docker_cli version --format '{{.Server.Version}}' 2>/dev/null || echo '?'), storage driver $(docker_cli info --format '{{.Driver}}' 2>/dev/null || echo '?'), client $DOCKER"
  else
    say "docker: DOWN (no answer on $DOCKER_SOCK)"
    problems=$((problems + 1))
  fi
  if etcd_healthy; then
    if pid="$(our_etcd_pid)"; then
      say "etcd: healthy on $ETCD_ENDPOINT (pid $pid, started by dev-env)"
    else
      say "etcd: healthy on $ETCD_ENDPOINT (not started by dev-env)"
    fi
  else
    say "etcd: DOWN (no healthy etcd on $ETCD_ENDPOINT)"
    problems=$((problems + 1))
  fi
  for name in "$TEST_IMAGE" "$EXAMPLE_IMAGE"; do
    if ! docker_up; then
      say "image $name: unknown (docker down)"
    elif image_exists "$name"; then
      label="$(docker_cli image inspect -f '{{index .Config.Labels "io.nanocl.dev-image"}}' "$name" 2>/dev/null || true)"
      if [[ "$label" == true ]]; then
        say "image $name: present (dev-env busybox)"
      else
        say "image $name: present (not built by dev-env)"
      fi
    else
      say "image $name: MISSING"
      problems=$((problems + 1))
    fi
  done
  if [[ -f "$ENV_FILE" ]]; then
    say "env file: $ENV_FILE"
  else
    say "env file: MISSING ($ENV_FILE)"
    problems=$((problems + 1))
  fi
  if ((problems > 0)); then
    say "not ready ($problems problem(s)); run: scripts/dev-env.sh up"
    return 1
  fi
  say "ready"
}

cmd_env() {
  [[ -f "$ENV_FILE" ]] || die "no env file at $ENV_FILE; run: scripts/dev-env.sh up"
  cat -- "$ENV_FILE"
}

main() {
  if (($# != 1)); then
    usage >&2
    exit 2
  fi
  case "$1" in
    up) cmd_up ;;
    down) cmd_down ;;
    bench-tools) cmd_bench_tools ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h | --help | help) usage ;;
    *)
      printf 'dev-env: unknown command: %s\n' "$1" >&2
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
