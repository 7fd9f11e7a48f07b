#!/bin/bash
# zstd --patch-from's peak RSS and time, creating and applying, as runtime/offsite/deltas.ts and
# delta-apply.ts run it: a random file of N MiB with 0.5% of its 4 KiB blocks rewritten.
#   bash bench/delta-memory.sh [DIR] [SIZES_MIB...]     (figures: bench/DELTAS.md)
set -euo pipefail
dir=${1:-/var/tmp/pv-delta-memory}
shift || true
sizes=("${@:-100 200 400}")
mkdir -p "$dir" && cd "$dir"
for mb in ${sizes[*]}; do
  head -c "${mb}M" /dev/urandom >old
  cp old new
  blocks=$((mb * 256))
  for _ in $(seq $((blocks / 200))); do
    head -c 4096 /dev/urandom | dd of=new bs=4096 seek=$(( (RANDOM * 32768 + RANDOM) % blocks )) conv=notrunc status=none
  done
  long=$(python3 -c "import math; print(max(10, math.ceil(math.log2($mb * 1048576))))")
  c=$({ /usr/bin/time -f '%M KiB %e s' zstd -q -f -3 --long="$long" --patch-from=old -o p new; } 2>&1)
  a=$({ /usr/bin/time -f '%M KiB %e s' zstd -d -q -f --long=31 --patch-from=old -o out p; } 2>&1)
  cmp out new
  echo "$mb MiB: patch $(stat -c %s p) bytes; create $c; apply $a"
done
rm -f old new p out
