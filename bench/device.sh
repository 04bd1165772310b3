#!/usr/bin/env bash
# Device figures for BENCHMARKS.md: the firmware (runtime/embedded) on emulated Cortex-M cores, per model encoding:
# flash, RAM (static: arena + model table; stack high-water mark), instructions per inference (QEMU plugin, exact),
# accuracy on the first N test images. Needs ../shared/embedded/setup.sh's toolchain and arm-none-eabi-gcc.
#   bash bench/device.sh            # the Markdown table below
#   bash bench/device.sh --json     # the kernels' comparison: one JSON object per row (see json_rows)
# The dense int8 and bit-packed variants are made from the trained models in out/ (slimnet train / pipeline) with
#   slimnet compress out/lenet-300-100.safetensors --skip prune,cluster --out target/firmware/models/mlp-dense-int8.slim
#   slimnet compress out/lenet-300-100.safetensors --coder packed --out target/firmware/models/mlp-packed.slim
#   slimnet compress out/lenet-5.safetensors --skip prune,cluster --out target/firmware/models/cnn-dense-int8.slim
# (made here when missing and out/ has the trained models; rows whose file is missing are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
models=target/firmware/models
mkdir -p "$models"
make_variant() { # file source args...
  local file=$1 source=$2; shift 2
  [ -f "$file" ] || [ ! -f "$source" ] || ./target/release/slimnet compress "$source" "$@" --out "$file" -q >/dev/null
}
cargo build -q --release
[ "${1:-}" = --json ] && json=1 || json=0
make_variant $models/mlp-dense-int8.slim out/lenet-300-100.safetensors --skip prune,cluster
make_variant $models/mlp-packed.slim out/lenet-300-100.safetensors --coder packed
make_variant $models/cnn-dense-int8.slim out/lenet-5.safetensors --skip prune,cluster
mlp=runtime/embedded/models/lenet-300-100.slim cnn=runtime/embedded/models/lenet-5.slim
# --json: slimnet dense int8 and compressed (default presets) on the integer path of the Cortex-M3, M4F and M7,
# beside CMSIS-NN's dense int8 harness (../shared/peers/cmsis-nn, -O3, built here from its sources into
# $CMSIS_WORK; it needs libnewlib-arm-none-eabi) on the same cores. Instruction counts are exact and repeatable;
# they are not cycles. flash_bytes is code + model data (no images, no start-up code).
json_rows() {
  local board core model enc file out
  for model in lenet-300-100 lenet-5; do
    for enc in "dense int8" "sparse, Huffman (default)"; do
      case "$model/$enc" in
        lenet-300-100/dense*) file=$models/mlp-dense-int8.slim ;; lenet-300-100/*) file=$mlp ;;
        lenet-5/dense*) file=$models/cnn-dense-int8.slim ;; *) file=$cnn ;;
      esac
      [ -f "$file" ] || { echo "device.sh: no $file (train into out/ first)" >&2; continue; }
      for board in mps2-an385 mps2-an386 mps2-an500; do
        case $board in mps2-an385) core=cortex-m3 ;; mps2-an386) core=cortex-m4 ;; *) core=cortex-m7 ;; esac
        out=$(bash runtime/embedded/run.sh --board $board --integer --model "$file" --images 10 --count)
        echo "$out" | python3 -c "
import json, sys
f = dict(kv.split('=', 1) for line in sys.stdin for kv in line.split() if '=' in kv)
print(json.dumps({'model': '$model', 'encoding': '$enc', 'core': '$core', 'board': '$board', 'path': 'int8',
    'stack': 'slimnet', 'instructions_per_inference': int(f['instructions_per_inference']),
    'flash_bytes': int(f['model_bytes']) + int(f['text_bytes']), 'model_bytes': int(f['model_bytes']),
    'text_bytes': int(f['text_bytes']), 'arena_bytes': int(f['arena_bytes']), 'correct': f['correct']}))"
      done
    done
  done
  local work=${CMSIS_WORK:-/tmp/slimnet-cmsis-nn}
  WORK=$work MODELS="mlp lenet5" CORES="m3 m4 m7" OPTS=O3 bash ../shared/peers/cmsis-nn/run.sh >&2
  python3 - "$work/results.tsv" <<'PY'
import csv, json, sys
names = {"mlp": "lenet-300-100", "lenet5": "lenet-5"}
cores = {"m3": "cortex-m3", "m4": "cortex-m4", "m7": "cortex-m7"}
# Model data the harness embeds (its README): weights + biases (+ conv multipliers/shifts).
data = {"mlp": 266200 + 1640, "lenet5": 430500 + 2320 + 560}
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    if r["model"] in names and r["core"] in cores and r["opt"] == "-O3":
        print(json.dumps({"model": names[r["model"]], "encoding": "dense int8", "core": cores[r["core"]],
            "board": r["machine"], "path": "int8", "stack": "cmsis-nn",
            "instructions_per_inference": round(float(r["instructions"])),
            "flash_bytes": data[r["model"]] + int(r["kernel_bytes"]) + int(r["libc_bytes"]) + int(r["infer_bytes"]),
            "model_bytes": data[r["model"]], "text_bytes": int(r["kernel_bytes"]) + int(r["libc_bytes"]) + int(r["infer_bytes"]),
            "arena_bytes": int(r["scratch"]) + int(r["activations"]), "correct": r["check"]}))
PY
}
if [ "$json" = 1 ]; then json_rows; exit 0; fi
# flash B: everything in flash (vector table, code, model, images); "without images": code + model + constants.
echo "| model | encoding | board (core) | path | opt | model B | flash B | without images B | .text B | static RAM B | arena B | stack B | instructions / inference | accuracy |"
echo "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
row() { # name encoding board model images [opt-level]
  local name=$1 enc=$2 board=$3 model=$4 n=$5 opt=${6:-3}
  [ -f "$model" ] || { echo "| $name | $enc | $board | (no $model) |"; return; }
  local out; out=$(bash runtime/embedded/run.sh --board "$board" --model "$model" --images "$n" --count --opt "$opt")
  get() { echo "$out" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
  local core=M3; [ "$board" = mps2-an386 ] && core=M4F
  local flash images; flash=$(get flash_bytes); images=$(get correct); images=${images#*/}
  echo "| $name | $enc | $board ($core) | $(get path) | $opt | $(get model_bytes) | $flash | $((flash - images * 785)) | $(get text_bytes) | $(get static_ram_bytes) | $(get arena_bytes) | $(get stack_bytes) | $(get instructions_per_inference) | $(get correct) |"
}
row LeNet-300-100 "dense int8" mps2-an385 $models/mlp-dense-int8.slim 250
row LeNet-300-100 "sparse, bit-packed" lm3s6965evb $models/mlp-packed.slim 250
row LeNet-300-100 "sparse, Huffman (default)" lm3s6965evb $mlp 250
row LeNet-300-100 "sparse, Huffman (default)" lm3s6965evb $mlp 250 s
row LeNet-300-100 "sparse, Huffman (default)" mps2-an386 $mlp 250
row LeNet-5 "dense int8" mps2-an385 $models/cnn-dense-int8.slim 240
row LeNet-5 "sparse, Huffman (default)" lm3s6965evb $cnn 240
row LeNet-5 "sparse, Huffman (default)" mps2-an386 $cnn 240
c=$(bash runtime/embedded/c/run.sh --images 250)
getc() { echo "$c" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
cflash=$(getc flash_bytes)
echo "| LeNet-300-100 | sparse, Huffman (default), C firmware | lm3s6965evb (M3) | int8 | 3 (Rust), -O2 (C) | $(getc model_bytes) | $cflash | $((cflash - 250 * 785)) | $(getc text_bytes) | $(getc static_ram_bytes) | $(getc arena_bytes) | $(getc stack_bytes) | — | $(getc correct) |"
