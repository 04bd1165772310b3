#!/usr/bin/env bash
# Code size of the integer-only runtime for a Cortex-M4 (thumbv7em-none-eabihf), per operator: the runtime built
# as an rlib with Debian's rustc-web (../shared/embedded/setup.sh), release profile, one codegen unit, then the
# .text symbols of its object grouped by module (ops::NAME for each operator; the loader, planner and streams
# apart). Generic code is counted where it is instantiated, which for the kernels is their operator's module.
#   bash bench/code_size.sh [features] [--no-default-features]        (default: integer-only, with `prepare`)
set -euo pipefail
cd "$(dirname "$0")/.."
features=${1:-integer-only} defaults=${2:-}
out=target/code-size
(cd runtime && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=../$out \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 /usr/bin/cargo build -q --release -Zbuild-std=core \
  --target thumbv7em-none-eabihf --features "$features" $defaults)
rlib=$(ls $out/thumbv7em-none-eabihf/release/libslimnet_runtime.rlib)
tmp=$(mktemp -d)
(cd "$tmp" && ar x "$OLDPWD/$rlib")
arm-none-eabi-nm --size-sort -S -C "$tmp"/*.o 2>/dev/null | awk '$3 ~ /^[tTwW]$/' | python3 -c '
import sys, re, collections
sizes = collections.Counter()
for line in sys.stdin:
    parts = line.split(None, 3)
    if len(parts) < 4: continue
    size, name = int(parts[1], 16), parts[3].strip()
    m = re.search(r"slimnet_runtime::(ops::[a-z0-9_]+|[a-z0-9_]+)", name)
    sizes[m.group(1) if m else "other (core, compiler builtins)"] += size
total = sum(sizes.values())
print("| module | .text bytes |")
print("| --- | ---: |")
for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]):
    print(f"| {k} | {v:,} |")
print(f"| **total** | **{total:,}** |")
'
rm -rf "$tmp"
