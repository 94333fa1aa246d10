#!/usr/bin/env bash
# Megatron conversion and shard reading against the sequential read rate of the same disk,
# measured in the same run. Each round drops the page cache (needs root) before each command,
# and runs, in turn: dd read of the .bin; two plain copies of it with dd (through the page cache,
# and with O_DIRECT writes; both fsync'd): what a conversion, which writes as many bytes as it
# reads, could hope for; rewarm convert megatron; dd read of the shard; every window of the shard
# read in order through rewarm's data loader (`rewarm bench --read-only`, process start included).
# The disk of a cloud VM changes speed from minute to minute, so rounds interleave the commands
# and the medians are compared.
# Usage, from the repository root after scripts/setup.sh:
#   bench/convert.sh [path/to/rewarm] [rounds]      (default build/src/rewarm, 5 rounds)
# BENCH_DIR (default data/bench_megatron) holds the 1 GiB dataset and must be on the disk to test.
set -euo pipefail
cd "$(dirname "$0")/.."
rewarm=$(realpath "${1:-build/src/rewarm}")
rounds=${2:-5}
dir=${BENCH_DIR:-data/bench_megatron}
mkdir -p "$dir"
if [[ ! -f $dir/pile.idx ]]; then
  echo "writing a 1 GiB Pythia-layout dataset to $dir/pile.{bin,idx}"
  /usr/bin/python3 -c "import sys; sys.path.insert(0, 'tests/python'); import megatron_format as m; m.write_pythia_like('$dir/pile', 262016)"
fi
cat >"$dir/read.toml" <<TOML
[model]
preset = "pythia-14m"
[data]
seq_len = 2048
micro_batch = 1
global_batch = 1
shuffle = false
[[data.train]]
path = "pile.h5"
[schedule]
total_steps = 1
TOML
cd "$dir"
if [[ $(id -u) != 0 ]]; then
  echo "bench/convert.sh: dropping the page cache needs root; run as root for cold-cache numbers" >&2
  exit 1
fi
cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }
ms() {  # milliseconds that a command takes, from a cold page cache
  cold
  local s e
  s=$(date +%s%N)
  "$@" >/dev/null 2>&1
  e=$(date +%s%N)
  echo $(((e - s) / 1000000))
}
bytes=$(stat -L -c %s pile.bin)
echo "== $(date -u '+%F %H:%M') UTC, $(uname -n), $(nproc) cores; $rewarm; $rounds rounds; .bin $bytes bytes on $(df --output=source . | tail -1)"
printf '%-6s %10s %10s %10s %10s %10s %10s\n' round dd-read copy direct-copy convert dd-shard loader
table=$(mktemp)
for r in $(seq "$rounds"); do
  a=$(ms dd if=pile.bin of=/dev/null bs=16M)
  b=$(ms dd if=pile.bin of=copy.bin bs=16M conv=fsync)
  rm -f copy.bin  # every command writes a new file: replacing one would time the deletion too
  c=$(ms dd if=pile.bin of=copy.bin bs=16M oflag=direct conv=fsync)
  rm -f copy.bin pile.h5
  d=$(ms "$rewarm" convert megatron pile --out pile.h5 --quiet)
  e=$(ms dd if=pile.h5 of=/dev/null bs=16M)
  f=$(ms "$rewarm" bench read.toml --read-only)
  printf '%-6s %7s ms %7s ms %7s ms %7s ms %7s ms %7s ms\n' "$r" "$a" "$b" "$c" "$d" "$e" "$f"
  echo "$a $b $c $d $e $f" >>"$table"
done
# medians, and rates as a share of the median dd read rate
awk -v bytes="$bytes" -v n="$rounds" '
  { for (i = 1; i <= 6; ++i) v[i, NR] = $i }
  END {
    split("dd-read copy direct-copy convert dd-shard loader", name, " ")
    for (i = 1; i <= 6; ++i) {
      for (j = 1; j <= n; ++j) s[j] = v[i, j]
      for (j = 1; j <= n; ++j) for (k = j + 1; k <= n; ++k) if (s[k] < s[j]) { t = s[j]; s[j] = s[k]; s[k] = t }
      med[i] = (n % 2) ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
    }
    printf "medians:\n"
    for (i = 1; i <= 6; ++i)
      printf "%-11s %5d ms %6.2f GB/s = %3.0f%% of dd read\n", name[i], med[i], bytes / med[i] / 1e6, 100 * med[1] / med[i]
    for (j = 1; j <= n; ++j) s[j] = v[1, j] / v[4, j]  # the disk drifts: also compare within each round
    for (j = 1; j <= n; ++j) for (k = j + 1; k <= n; ++k) if (s[k] < s[j]) { t = s[j]; s[j] = s[k]; s[k] = t }
    printf "convert rate / dd read rate of the same round: median %.0f%%, range %.0f%%-%.0f%%\n",
      100 * ((n % 2) ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2), 100 * s[1], 100 * s[n]
  }' "$table"
rm -f "$table" copy.bin
