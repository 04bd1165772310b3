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
# --json: the kernels' comparison (issue 15), one JSON object per row: slimnet dense int8 and compressed (default
# presets) LeNets and the imported int8 `.tflite` fixtures (compress/tests/fixtures/tflite: DS-CNN, ResNet, a
# depthwise net, an autoencoder, LeNet-5) on the integer path of the Cortex-M3, M4F and M7; CMSIS-NN's dense int8
# harness (../shared/peers/cmsis-nn, -O3, built here from its sources into $CMSIS_WORK; it needs
# libnewlib-arm-none-eabi) on the LeNets; TFLM with CMSIS-NN (../shared/peers/tflm, built once into $TFLM_WORK
# with its build.sh, 20–30 minutes; rows skipped when not built) on the same `.tflite` files, M3 and M4F (the peer
# has no M7 build). Instruction counts are exact and repeatable; they are not cycles: cycles_estimate weighs the
# executed instruction mix by the core's manual (bench/cycles.py; M3 and M4 only, null on the M7).
# flash_bytes is code + model data (no images, no start-up code). The "prepared" rows run the same compressed
# files prepared at start-up (Model::prepare_int8): prepared_bytes more RAM, the streams decoded once.
fixtures=compress/tests/fixtures/tflite
insnprof=target/firmware/libinsnprof.so
cycles() { # ELF BOARD START_SYMBOL STOP_SYMBOL → the cycles estimate (or null on the M7)
  local elf=$1 board=$2 core cpu
  case $board in mps2-an385) core=m3 cpu=cortex-m3 ;; mps2-an386) core=m4 cpu=cortex-m4 ;; *) echo null; return ;; esac
  [ -f "$insnprof" ] || gcc -shared -fPIC -O2 -o "$insnprof" bench/insnprof/insnprof.c
  local at; at() { arm-none-eabi-nm "$elf" | awk -v s="$1" '$3 == s {print "0x" $1}'; }
  local prof; prof=$(mktemp)
  timeout 900 qemu-system-arm -machine "$board" -cpu "$cpu" -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$elf" \
    -plugin "$insnprof,start=$(at "$3"),stop=$(at "$4"),out=$prof" > /dev/null 2>&1 || true
  arm-none-eabi-objdump -d --no-show-raw-insn "$elf" > "$prof.dis"
  python3 bench/cycles.py "$prof.dis" "$prof" "$core" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cycles_estimate_per_inference"])'
  rm -f "$prof" "$prof.dis"
}
slimnet_row() { # MODEL ENCODING FILE [INPUTS.npy EXPECTED.npy] (PREPARE=1: run.sh --prepare)
  local model=$1 enc=$2 file=$3 inputs=${4:-} expected=${5:-} board core target out args est
  for board in mps2-an385 mps2-an386 mps2-an500; do
    case $board in mps2-an385) core=cortex-m3 target=thumbv7m-none-eabi ;; mps2-an386) core=cortex-m4 target=thumbv7em-none-eabihf ;;
      *) core=cortex-m7 target=thumbv7em-none-eabihf ;; esac
    args=(--board $board --integer --model "$file" --count)
    if [ -n "$inputs" ]; then args+=(--inputs "$inputs"); else args+=(--images 10); fi
    [ "${PREPARE:-}" = 1 ] && args+=(--prepare)
    out=$(bash runtime/embedded/run.sh "${args[@]}")
    est=$(cycles target/firmware/$board-opt3/$target/release/slimnet-firmware $board slimnet_infer slimnet_infer_done)
    echo "$out" | python3 -c "
import json, sys
f = dict(kv.split('=', 1) for line in sys.stdin for kv in line.split() if '=' in kv)
check = f.get('correct')
if '$expected':
    b = open('$expected', 'rb').read(); n = int.from_bytes(b[8:10], 'little')
    check = 'outputs equal TFLM' if bytes.fromhex(f['outputs']) == b[10 + n:] else 'outputs differ from TFLM'
print(json.dumps({'model': '$model', 'encoding': '$enc', 'core': '$core', 'board': '$board', 'path': 'int8',
    'stack': 'slimnet', 'instructions_per_inference': int(f['instructions_per_inference']),
    'cycles_estimate': json.loads('$est'),
    'flash_bytes': int(f['model_bytes']) + int(f['text_bytes']), 'model_bytes': int(f['model_bytes']),
    'text_bytes': int(f['text_bytes']), 'arena_bytes': int(f['arena_bytes']),
    'prepared_bytes': int(f.get('prepared_bytes', 0)), 'correct': check}))"
  done
}
json_rows() {
  local model enc file fam work tflm core
  slimnet_row lenet-300-100 "dense int8" $models/mlp-dense-int8.slim
  slimnet_row lenet-300-100 "sparse, Huffman (default)" $mlp
  slimnet_row lenet-5 "dense int8" $models/cnn-dense-int8.slim
  slimnet_row lenet-5 "sparse, Huffman (default)" $cnn
  PREPARE=1 slimnet_row lenet-300-100 "sparse, Huffman (default), prepared" $mlp
  PREPARE=1 slimnet_row lenet-5 "sparse, Huffman (default), prepared" $cnn
  local imported; imported=$(mktemp -d)
  for fam in ds_cnn resnet dsnet autoencoder lenet5; do
    ./target/release/slimnet import $fixtures/$fam.int8.tflite --out "$imported/$fam.slim" >&2
    slimnet_row "$fam.int8.tflite" "dense int8 (imported)" "$imported/$fam.slim" \
      $fixtures/$fam.int8.input.npy $fixtures/$fam.int8.output.npy
  done
  work=${CMSIS_WORK:-/tmp/slimnet-cmsis-nn}
  WORK=$work MODELS="mlp lenet5" CORES="m3 m4 m7" OPTS=O3 bash ../shared/peers/cmsis-nn/run.sh >&2
  local r; for r in mlp-m3:mps2-an385 mlp-m4:mps2-an386 mlp-m7:mps2-an500 lenet5-m3:mps2-an385 lenet5-m4:mps2-an386 \
    lenet5-m7:mps2-an500; do
    echo "${r%%:*} $(cycles "$work/fw/${r%%:*}-O3/fw.elf" "${r#*:}" infer infer_done)"
  done > "$work/cycles.txt"
  python3 - "$work/results.tsv" "$work/cycles.txt" <<'PY'
import csv, json, sys
names = {"mlp": "lenet-300-100", "lenet5": "lenet-5"}
cores = {"m3": "cortex-m3", "m4": "cortex-m4", "m7": "cortex-m7"}
cycles = {l.split()[0]: json.loads(l.split()[1]) for l in open(sys.argv[2])}
# Model data the harness embeds (its README): weights + biases (+ conv multipliers/shifts).
data = {"mlp": 266200 + 1640, "lenet5": 430500 + 2320 + 560}
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    if r["model"] in names and r["core"] in cores and r["opt"] == "-O3":
        print(json.dumps({"model": names[r["model"]], "encoding": "dense int8", "core": cores[r["core"]],
            "board": r["machine"], "path": "int8", "stack": "cmsis-nn",
            "instructions_per_inference": round(float(r["instructions"])),
            "cycles_estimate": cycles.get(r["model"] + "-" + r["core"]),
            "flash_bytes": data[r["model"]] + int(r["kernel_bytes"]) + int(r["libc_bytes"]) + int(r["infer_bytes"]),
            "model_bytes": data[r["model"]], "text_bytes": int(r["kernel_bytes"]) + int(r["libc_bytes"]) + int(r["infer_bytes"]),
            "arena_bytes": int(r["scratch"]) + int(r["activations"]), "correct": r["check"]}))
PY
  tflm=${TFLM_WORK:-/tmp/slimnet-tflm}
  if [ ! -f "$tflm/build/lib/m4-cmsis_nn/libtensorflow-microlite.a" ]; then
    echo "device.sh: no TFLM build in $tflm (cp -r ../shared/peers/tflm \$TFLM_WORK && \$TFLM_WORK/build.sh): TFLM rows skipped" >&2
  else
    for fam in ds_cnn resnet dsnet autoencoder lenet5; do
      for core in m3 m4; do
        [ -f "$tflm/build/lib/$core-cmsis_nn/libtensorflow-microlite.a" ] || {
          echo "device.sh: TFLM for $core not built in $tflm: its rows skipped" >&2; continue; }
        local line board; board=mps2-an386; [ $core = m3 ] && board=mps2-an385
        line=$(PYTHON=${TFLM_PYTHON:-target/venv-tflm/bin/python} REGISTRATION=generic \
          WORK="$tflm/build/fw/$fam-$core" bash "$tflm/run.sh" "$(realpath $fixtures/$fam.int8.tflite)" $core cmsis_nn)
        est=$(cycles "$tflm/build/fw/$fam-$core/fw.elf" $board infer infer_done)
        echo "$line" | python3 -c "
import json, sys
t = json.load(sys.stdin)
print(json.dumps({'model': '$fam.int8.tflite', 'encoding': 'dense int8', 'core': 'cortex-$core', 'board': '$board',
    'path': 'int8', 'stack': 'tflm + cmsis-nn', 'instructions_per_inference': round(t['instructions_per_inference']),
    'cycles_estimate': json.loads('$est'), 'flash_bytes': t['text_bytes'] + t['rodata_bytes'] + t['model_bytes'],
    'model_bytes': t['model_bytes'], 'text_bytes': t['text_bytes'] + t['rodata_bytes'],
    'arena_bytes': t['arena_used_bytes'], 'correct': 'outputs equal the TFLM reference' if t['outputs_match_reference'] else 'outputs differ'}))"
      done
    done
  fi
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
row LeNet-300-100 "sparse, bit-packed" lm3s6965evb $models/mlp-packed.slim 200
row LeNet-300-100 "sparse, Huffman (default)" lm3s6965evb $mlp 200
row LeNet-300-100 "sparse, Huffman (default)" lm3s6965evb $mlp 200 s
row LeNet-300-100 "sparse, Huffman (default)" mps2-an386 $mlp 250
row LeNet-5 "dense int8" mps2-an385 $models/cnn-dense-int8.slim 240
row LeNet-5 "sparse, Huffman (default)" lm3s6965evb $cnn 200
row LeNet-5 "sparse, Huffman (default)" mps2-an386 $cnn 240
c=$(bash runtime/embedded/c/run.sh --images 200)
getc() { echo "$c" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
cflash=$(getc flash_bytes)
echo "| LeNet-300-100 | sparse, Huffman (default), C firmware | lm3s6965evb (M3) | int8 | 3 (Rust), -O2 (C) | $(getc model_bytes) | $cflash | $((cflash - 200 * 785)) | $(getc text_bytes) | $(getc static_ram_bytes) | $(getc arena_bytes) | $(getc stack_bytes) | — | $(getc correct) |"
