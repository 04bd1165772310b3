#!/usr/bin/env bash
# Training speed, slimnet against PyTorch, side by side in one run: the two stacks alternate epoch blocks per
# model so that load from other jobs on this shared machine hits both alike. Same data (55,000 images), batch 64,
# Adam 1e-3, 2 threads. Prints one JSON line per (stack, model, round) and a summary of median s/epoch and ratio.
#
#   bash bench/train_speed.sh [PYTHON_WITH_TORCH] [ROUNDS]
# PYTHON_WITH_TORCH defaults to /tmp/torchvenv/bin/python (pip install torch==2.15.0 numpy into a venv).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-/tmp/torchvenv/bin/python}"
rounds="${2:-3}"
cargo build --release -q
out=$(mktemp -d)
for r in $(seq "$rounds"); do
  for m in lenet-300-100 lenet-5; do
    ./target/release/slimnet --threads 2 train --model "$m" --epochs 1 --val 5000 --schedule constant \
      --out "$out/$m.safetensors" --metrics "$out/$m-$r.json" -q >/dev/null
    python3 -c "import json,sys; h=json.load(open('$out/$m-$r.json')); print(json.dumps({'stack':'slimnet','model':'$m','round':$r,'epoch_seconds':[e['seconds'] for e in h]}))"
    "$py" bench/torch_epoch.py --model "$m" --epochs 1 --threads 2 | python3 -c "import json,sys; d=json.load(sys.stdin); d['round']=$r; print(json.dumps(d))"
  done
done | tee "$out/all.jsonl"
python3 - "$out/all.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for m in ["lenet-300-100", "lenet-5"]:
    s = statistics.median(x for r in rows if r["model"] == m and r["stack"] == "slimnet" for x in r["epoch_seconds"])
    t = statistics.median(x for r in rows if r["model"] == m and r["stack"].startswith("pytorch") for x in r["epoch_seconds"])
    print(f"{m}: slimnet {s:.2f} s/epoch, pytorch {t:.2f} s/epoch, slimnet/pytorch = {s/t:.2f}x")
PY
rm -rf "$out"
