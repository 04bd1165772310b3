#!/usr/bin/env bash
# Instructions per inference, counted by callgrind (repeatable, unlike time): runtime/examples/infer is run with
# N = 1 and N = 11 inferences on the first MNIST test image; (I11 − I1) / 10 is one inference. For files with
# Huffman-coded streams, also with the streams decoded into the arena (`arena`) instead of on the fly.
#   bash bench/instructions.sh MODEL.slim [MODEL.slim ...]
# With NO_SIMD=1 the example is built with LLVM's loop and SLP vectorizers off, which stands for a core without SIMD
# (a Cortex-M3 has none) better than the x86-64 baseline, whose SSE2 the compiler uses freely.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${NO_SIMD:-0}" = 1 ]; then
  export RUSTFLAGS="-C llvm-args=-vectorize-loops=false -C llvm-args=-vectorize-slp=false"
  export CARGO_TARGET_DIR=target/no-simd
fi
cargo build --release -q -p slimnet-runtime --example infer --features arena-decoding
exe=${CARGO_TARGET_DIR:-target}/release/examples/infer
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
