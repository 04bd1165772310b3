#!/usr/bin/env bash
# Code size of the runtime built as a static library with opt-level = "z" (profile `size`): the .text of the
# runtime's own object files (the C API included; the Rust standard library objects the archive also carries
# for the host are excluded: a firmware links core only). Also prints arena bytes of the given .slim files.
#   bash bench/footprint.sh [MODEL.slim ...]
set -euo pipefail
cd "$(dirname "$0")/.."
for features in capi "capi,integer-only"; do
  CARGO_TARGET_DIR=target/size cargo rustc -q -p slimnet-runtime --profile size --features "$features" --crate-type staticlib
  lib=target/size/size/libslimnet_runtime.a
  text=$(ar t "$lib" | grep -E '^slimnet_runtime' | while read -r o; do
           ar p "$lib" "$o" > /tmp/slimnet-obj.o
           size -A /tmp/slimnet-obj.o | awk '$1 ~ /^\.text/ {s+=$2} END {print s+0}'
         done | awk '{s+=$1} END {print s}')
  echo "features=$features: .text of the runtime objects = $text bytes"
done
for m in "$@"; do
  ./target/release/slimnet info "$m" --json | python3 -c "import json,sys; d=json.load(sys.stdin); print(sys.argv[1], 'arena f32', d['arena_bytes_f32'], 'arena int8', d['arena_bytes_int8'])" "$m"
done
