#!/usr/bin/env bash
# Instructions per inference, counted by callgrind (repeatable, unlike time): runtime/examples/infer is run with
# N = 1 and N = 11 inferences on the first MNIST test image; (I11 − I1) / 10 is one inference. For files with
# Huffman-coded streams, also with the streams decoded into the arena (`arena`) instead of on the fly.
#   bash bench/instructions.sh MODEL.slim [MODEL.slim ...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p slimnet-runtime --example infer --features arena-decoding
exe=target/release/examples/infer
img=$(mktemp)
python3 -c "import gzip,sys; d=gzip.open('data/mnist/t10k-images-idx3-ubyte.gz').read(); sys.stdout.buffer.write(d[16:16+784])" > "$img"
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$exe" "$@" < "$img" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
for m in "$@"; do
  for path in f32 int8 "f32 arena" "int8 arena"; do
    extra=${path/f32/}
    # The arena mode only differs for Huffman-coded sparse layers.
    case "$path" in *arena*) ./target/release/slimnet info "$m" | grep -c Huffman >/dev/null || continue ;; esac
    if ! a=$(count "$m" 1 $extra) || [ -z "$a" ]; then continue; fi
    b=$(count "$m" 11 $extra)
    echo "$m $path $(( (b - a) / 10 )) instructions per inference"
  done
done
rm -f "$img"
