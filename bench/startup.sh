#!/usr/bin/env bash
# Start-up of each plugin, beside the peer every user already runs: `kubectl version --client`.
# For each: the binary's size, the mean wall time of `--help` (hyperfine, 10 warm-ups, 100 runs,
# no shell), the ratio to kubectl's, and the peak RSS (GNU time, the largest of 10 runs).
#
#   bench/startup.sh [DIR]     # DIR: the binaries (default: dev/release's glibc-2.17 build)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/x86_64-unknown-linux-gnu/release}
command -v hyperfine >/dev/null 2>&1 || { echo "bench/startup.sh: hyperfine is missing (sudo apt-get install hyperfine)" >&2; exit 1; }
kubectl=$(command -v kubectl)
json=$(mktemp)
trap 'rm -f "$json"' EXIT
commands=("$kubectl version --client")
for p in cphealth etcdsnap webhookguard apftop; do commands+=("$dir/kubectl-$p --help"); done
hyperfine -N --warmup 10 --runs 100 --export-json "$json" "${commands[@]}" >/dev/null 2>&1
peak_rss() { local max=0 kib; for _ in $(seq 10); do kib=$(/usr/bin/time -f %M $1 2>&1 >/dev/null | tail -n 1); [ "$kib" -gt "$max" ] && max=$kib; done; echo "$max"; }
python3 - "$json" <<'PY' > "$json.rows"
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("\t".join([r["command"], str(r["mean"] * 1000), str(r["stddev"] * 1000)]))
PY
base=$(head -n 1 "$json.rows" | cut -f2)
printf '%-34s %9s %14s %9s %9s\n' command "size" "start-up (ms)" "vs kubectl" "peak RSS"
while IFS=$'\t' read -r cmd mean sd; do
  bin=${cmd%% *}
  size=$(( $(stat -L -c %s "$bin") / 1024 ))
  ratio=$(python3 -c "print(f'{$mean/$base:.3f}')")
  printf '%-34s %6s KiB %7.2f ± %.2f %9s %5s MiB\n' "$(basename "$bin") ${cmd#* }" "$size" "$mean" "$sd" "$ratio" \
    "$(python3 -c "print(f'{$(peak_rss "$cmd")/1024:.1f}')")"
done < "$json.rows"
rm -f "$json.rows"
