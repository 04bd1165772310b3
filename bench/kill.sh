#!/usr/bin/env bash
# kill -9 at random moments of train, compress, import and export (issue 17): after each kill the output must be
# absent or a complete, valid file (`slimnet info` accepts it); after the next successful run no temporary file
# (.NAME.tmp-PID) may remain; and a training killed after a checkpoint, then resumed, must write the same bytes
# as an uninterrupted run.
#   bench/kill.sh [KILLS_PER_COMMAND]      (default 25; uses target/release/slimnet and the bundled MNIST)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-25}
bin=$PWD/target/release/slimnet
[ -x "$bin" ] || cargo build -q --release
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
train=(train --model mlp:128 --epochs 3 --train-limit 6000 --val 1000 -q)
"$bin" "${train[@]}" --out "$work/m.safetensors" >/dev/null
compress=(compress "$work/m.safetensors" --train-limit 6000 --val 1000 --retrain-epochs 1 --final-epochs 1
          --finetune-epochs 1 -q)
tflite=compress/tests/fixtures/tflite/resnet.int8.tflite
# Seconds one uninterrupted run takes, to spread the kills over it.
seconds() { local t0; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $t0" | bc; }
kills() { # name out cmd...
  local name=$1 out=$2; shift 2
  local t; t=$(seconds "$@"); rm -f "$out"
  local absent=0 valid=0 partial=0 finished=0
  for i in $(seq "$n"); do
    rm -f "$out"
    local d; d=$(python3 -c "import random; print(random.uniform(0, $t * 1.1))")
    "$@" >/dev/null 2>&1 & local pid=$!
    sleep "$d"; if kill -9 "$pid" 2>/dev/null; then :; else finished=$((finished + 1)); fi
    wait "$pid" 2>/dev/null || true
    if [ ! -e "$out" ]; then absent=$((absent + 1))
    elif "$bin" info "$out" >/dev/null 2>&1; then valid=$((valid + 1))
    else partial=$((partial + 1)); fi
  done
  local left; left=$(find "$work" -name '.*.tmp-*' | wc -l)
  "$@" >/dev/null 2>&1
  local stray; stray=$(find "$work" -name '.*.tmp-*' | wc -l)
  printf '%-8s run %5.2f s  kills %3d: no file %3d, valid file %3d, PARTIAL %d (ended before the kill: %d); temporaries left by the kills %d, after the next run %d\n' \
    "$name" "$t" "$n" "$absent" "$valid" "$partial" "$finished" "$left" "$stray"
}
kills train "$work/t.safetensors" "$bin" "${train[@]}" --out "$work/t.safetensors"
kills compress "$work/c.slim" "$bin" "${compress[@]}" --out "$work/c.slim"
kills import "$work/i.slim" "$bin" import "$tflite" --out "$work/i.slim"
kills export "$work/e.slim" "$bin" export "$work/m.safetensors" --out "$work/e.slim"
# Resume after a kill that follows the first checkpoint: byte-identical to the uninterrupted model.
same=0
for i in $(seq 5); do
  rm -f "$work/r.safetensors" "$work/r.safetensors.ckpt"
  "$bin" "${train[@]}" --out "$work/r.safetensors" & pid=$!
  while [ ! -e "$work/r.safetensors.ckpt" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
  kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  "$bin" "${train[@]}" --out "$work/r.safetensors" --resume >/dev/null
  cmp -s "$work/r.safetensors" "$work/m.safetensors" && same=$((same + 1))
done
echo "resume after kill -9: $same of 5 byte-identical to the uninterrupted run"
