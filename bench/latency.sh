#!/usr/bin/env bash
# Batch-1 latency, side by side in one run: slimnet's runtime (`slimnet bench`, one thread; the default build and a
# build for this CPU, -C target-cpu=native, as firmware is compiled for its exact core) against LiteRT (int8 with
# XNNPACK, and f32) and ONNX Runtime (f32 and int8 QDQ) on the same weights, plus each peer's cost on a trivial
# model. Rounds alternate the stacks so that load from other jobs hits all of them alike.
#
#   bash bench/latency.sh MODEL.safetensors [ROUNDS] [TF_PYTHON] [TORCH_PYTHON] [COMPRESSED.slim]
# TF_PYTHON needs tensorflow-cpu==2.21.0 and ai-edge-litert==2.3.0; TORCH_PYTHON torch==2.15.0, onnx==1.23.2,
# onnxscript==0.7.2, onnxruntime==1.32.0 (defaults: /tmp/tfvenv/bin/python, /tmp/torchvenv/bin/python; `-` leaves
# ONNX Runtime out). COMPRESSED.slim (e.g. the compressed file of the same network) joins the slimnet rows as
# `compressed/...`.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; rounds="${2:-3}"; tfpy="${3:-/tmp/tfvenv/bin/python}"; torchpy="${4:-/tmp/torchvenv/bin/python}"
compressed="${5:-}"
cargo build --release -q
RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=target/native cargo build --release -q
out=$(mktemp -d)
for enc in f32 int8; do ./target/release/slimnet export "$model" --encoding "$enc" --out "$out/m-$enc.slim" >/dev/null; done
encodings="f32 int8"
if [ -n "$compressed" ]; then cp "$compressed" "$out/m-compressed.slim"; encodings="$encodings compressed"; fi
for r in $(seq "$rounds"); do
  for build in release native; do
    exe=target/release/slimnet; [ "$build" = native ] && exe=target/native/release/slimnet
    for enc in $encodings; do
      # The compressed file also on random pixels: the worst case of the prepared kernel that skips inputs at
      # their zero point (the other rows cycle through the first 100 test images).
      inputs="images"; [ "$enc" = compressed ] && inputs="images noise"
      for source in $inputs; do
        flag=""; tag="$enc"; [ "$source" = noise ] && flag="--noise" && tag="$enc-noise"
        "$exe" --threads 1 bench "$out/m-$enc.slim" --json --runs 3000 --repeats 3 $flag | python3 -c "
import json,sys; d=json.load(sys.stdin)
for p in d['paths']: print(json.dumps({'stack':'slimnet-$build','variant':'$tag/'+p['path'],'latency_us':p['latency_us'],'arena_bytes':p['arena_bytes'],'bytes':d['bytes'],'round':$r}))"
      done
    done
  done
  "$tfpy" bench/peer_latency.py --stack litert --model "$model" 2>/dev/null | grep '^{' | python3 -c "import json,sys
for l in sys.stdin: d=json.loads(l); d['round']=$r; print(json.dumps(d))"
  [ "$torchpy" = - ] || "$torchpy" bench/peer_latency.py --stack ort --model "$model" 2>/dev/null | grep '^{' | python3 -c "import json,sys
for l in sys.stdin: d=json.loads(l); d['round']=$r; print(json.dumps(d))"
done | tee "$out/all.jsonl"
python3 - "$out/all.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for r in rows:
    med.setdefault((r["stack"].split()[0], r["variant"]), []).append(r["latency_us"])
med = {k: statistics.median(v) for k, v in med.items()}
lit, lit0 = med[("litert", "int8")], med[("litert", "trivial-int8")]
ort0 = med.get(("onnxruntime", "trivial-identity"))
print("\nmedian of rounds, µs per image:")
for k, v in sorted(med.items()):
    print(f"  {k[0]:<16} {k[1]:<22} {v:9.2f}")
for build in ["slimnet-release", "slimnet-native"]:
    ours = med[(build, "int8/integer-only")]
    print(f"{build} integer-only / LiteRT int8: raw {ours/lit:.2f}x, LiteRT minus its call overhead ({lit0:.2f} µs): {ours/(lit-lit0):.2f}x")
    for key in [k for k in med if k[0] == build and k[1].startswith("compressed")]:
        print(f"{build} {key[1]} / LiteRT int8: raw {med[key]/lit:.2f}x, LiteRT minus its call overhead: {med[key]/(lit-lit0):.2f}x")
    if ort0 is not None:
        f = med[(build, "f32/f32")]
        print(f"{build} f32 / ORT f32: raw {f/med[('onnxruntime','f32')]:.2f}x, ORT minus its overhead ({ort0:.2f} µs): {f/(med[('onnxruntime','f32')]-ort0):.2f}x")
PY
rm -rf "$out"
