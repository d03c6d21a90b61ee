#!/usr/bin/env bash
# Peak memory (max RSS) and wall time of `nanocl apply --dry-run=client` on the 1,000-object
# manifest the decode benchmark writes. Prints each run and the median of 7.
set -euo pipefail
cd "$(dirname "$0")/.."
input=target/bench/objects-1000.yaml
bin=target/release/nanocl
[[ -f $input ]] || { echo "bench-decode-memory: $input missing: run the decode benchmark first" >&2; exit 1; }
cargo build -q --release -p nanocl-cli
runs=()
for i in 1 2 3 4 5 6 7; do
  line=$(/usr/bin/time -f '%e %M' "$bin" apply --dry-run=client -f "$input" 2>&1 >/dev/null | tail -n 1)
  echo "run $i: ${line%% *} s, ${line##* } KiB max RSS"
  runs+=("$line")
done
printf '%s\n' "${runs[@]}" | sort -n -k2 | awk '{a[NR]=$2} END {printf "median max RSS: %d KiB (%.1f MiB)\n", a[4], a[4]/1024}'
printf '%s\n' "${runs[@]}" | sort -n -k1 | awk '{a[NR]=$1} END {printf "median wall time (whole CLI process, 1,000 objects): %.3f s\n", a[4]}'
