#!/usr/bin/env bash
# Flat against sharp: trains LeNet-300-100 twice, with small (32) and large (2048) mini-batches (Keskar et al. 2017:
# large batches tend to sharper minima), then measures both with `slimnet sensitivity` (flatness, noise, pruning)
# and compresses both with the default preset. Prints one markdown table: does the flatter model compress
# further at the same accuracy? Everything lands in $OUT (default target/flat-vs-sharp).
#   bash bench/flat_vs_sharp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-target/flat-vs-sharp}
mkdir -p "$out"
cargo build -q --release
bin=./target/release/slimnet
for b in 32 2048; do
  [ -f "$out/b$b.safetensors" ] || $bin train --model lenet-300-100 --batch-size "$b" --epochs 10 \
    --out "$out/b$b.safetensors" --metrics "$out/b$b-train.json" -q
  $bin sensitivity "$out/b$b.safetensors" --analyses noise,prune,flatness --repeats 2 \
    --plots "$out/plots-b$b" --json -q > "$out/b$b-sensitivity.json"
  $bin compress "$out/b$b.safetensors" --out "$out/b$b.slim" --report "$out/b$b-compress.json" -q > /dev/null
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print("| mini-batch | test accuracy | ε-sharpness (model, %) | top Hessian eigenvalue (model) | noise σ = 0.5 (model) | pruned 90 % (model, no retraining) | compressed bytes | compressed accuracy | lost |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for b in (32, 2048):
    s = json.load(open(f"{out}/b{b}-sensitivity.json"))
    c = json.load(open(f"{out}/b{b}-compress.json"))
    flat = next(f for f in s["flatness"] if f["target"] == "model")
    def acc(kind, x):
        curve = next(k for k in s["curves"] if k["analysis"] == kind and k["target"] == "model")
        p = min(curve["points"], key=lambda p: abs(p["x"] - x))
        return f'{100 * p["accuracy"]["mean"]:.2f} %' + (f' ±{100 * p["accuracy"]["std"]:.2f}' if p["draws"] > 1 else "")
    print(f'| {b} | {100 * s["accuracy"]:.2f} % | {flat["sharpness"]:.3f} | {flat["top_eigenvalue"]:.3f} | '
          f'{acc("noise-additive", 0.5)} | {acc("prune", 0.9)} | {c["bytes"]} | {100 * c["accuracy"]:.2f} % | '
          f'{100 * (c["baseline_accuracy"] - c["accuracy"]):.2f} pt |')
PY
