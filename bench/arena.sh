#!/usr/bin/env bash
# Arena of each int8 TFLite fixture: TFLite Micro's (the `tflite-micro` interpreter's RecordingMicroAllocator:
# head = tensors, tail = per-operator data) against slimnet's planned arena for the same model imported, and
# slimnet's model structure (the Model's tables, which is where slimnet keeps what TFLM's tail holds).
#   PYTHON=venv/bin/python bash bench/arena.sh        (a venv with tflite-micro, e.g. ../shared/peers/tf/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
cargo build -q --release
f=compress/tests/fixtures/tflite
echo "| fixture | TFLM head (tensors) B | TFLM tail B | TFLM total B | slimnet arena B | ratio to TFLM total | slimnet .slim B |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for m in ds_cnn resnet dsnet autoencoder lenet5; do
  tflm=$("$py" - "$f/$m.int8.tflite" <<'PY' 2>&1 | grep RecordingMicroAllocator
import sys
from tflite_micro.python.tflite_micro import runtime
runtime.Interpreter.from_file(sys.argv[1]).print_allocations()
PY
)
  total=$(echo "$tflm" | sed -n 's/.*allocation total \([0-9]*\) bytes.*/\1/p')
  head=$(echo "$tflm" | sed -n 's/.*allocation head \([0-9]*\) bytes.*/\1/p')
  tail=$(echo "$tflm" | sed -n 's/.*allocation tail \([0-9]*\) bytes.*/\1/p')
  out=$(mktemp --suffix=.slim)
  json=$(./target/release/slimnet import "$f/$m.int8.tflite" --out "$out" --json)
  arena=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["arena_bytes_int8"])')
  bytes=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
  rm -f "$out"
  echo "| $m | $head | $tail | $total | $arena | $(python3 -c "print(f'{$arena/$total:.2f}')") | $bytes |"
done
