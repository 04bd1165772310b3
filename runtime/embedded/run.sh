#!/usr/bin/env bash
# Builds the firmware with Debian's toolchain (../../../shared/embedded/setup.sh) and runs it under QEMU.
#   runtime/embedded/run.sh [--board lm3s6965evb|mps2-an385|mps2-an386|mps2-an500] [--model FILE.slim] [--images N]
#                           [--count | --count-load | --count-verify] [--opt 3|s|z] [--integer] [--inputs X.npy]
#                           [--verify-every N] [--flip-bit B] [--prepare]
# lm3s6965evb and mps2-an385 are Cortex-M3 (thumbv7m-none-eabi, integer-only path); mps2-an386 is a Cortex-M4F
# (thumbv7em-none-eabihf, f32 path), mps2-an500 a Cortex-M7 (the same target and path). --count adds exact
# instruction counts (QEMU plugin, insncount.c) per inference.
# --count-load counts the instructions of loading the model (Model::load: validation and arena planning) instead.
# --count-verify counts one Model::verify (the run-time re-check of the model's bytes, every --verify-every N
# inferences, default 100); --flip-bit B flips bit B of the model (a RAM copy) after the first inference, so that
# the next verify reports the fault (fault_detected=…) and the firmware exits with status 1.
# --integer runs the integer-only path on the Cortex-M4F and M7 too; --inputs X.npy runs int8 input tensors instead of
# MNIST images (tensor mode, e.g. an imported .tflite model) and prints every output byte as hex (outputs=…).
# --prepare prepares the model at start-up (Model::prepare_int8: the sparse operators' streams decoded once into a
# static of prepared_bytes=…; the integer path then runs them from it; counted by --count-load).
# Prints the firmware's output, then flash/RAM figures from the linked ELF; exits non-zero if anything fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
board=lm3s6965evb model="" images="" count=0 opt=3 integer=0 inputs="" marks=infer every="" flip="" prepare=""
while [ $# -gt 0 ]; do
  case "$1" in
    --board) board=$2; shift 2 ;;
    --model) model=$(realpath "$2"); shift 2 ;;
    --images) images=$2; shift 2 ;;
    --count) count=1; shift ;;
    --count-load) count=1 marks=load; shift ;;
    --count-verify) count=1 marks=verify; shift ;;
    --verify-every) every=$2; shift 2 ;;
    --flip-bit) flip=$2; shift 2 ;;
    --opt) opt=$2; shift 2 ;;
    --integer) integer=1; shift ;;
    --prepare) prepare=1; shift ;;
    --inputs) inputs=$(realpath "$2"); shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$board" in
  lm3s6965evb) target=thumbv7m-none-eabi cpu=cortex-m3 features=integer-only ;;
  mps2-an385) target=thumbv7m-none-eabi cpu=cortex-m3 features=integer-only ;;
  mps2-an386) target=thumbv7em-none-eabihf cpu=cortex-m4 features=f32 ;;
  mps2-an500) target=thumbv7em-none-eabihf cpu=cortex-m7 features=f32 ;;
  *) echo "run.sh: unknown board $board" >&2; exit 2 ;;
esac
[ "$integer" = 1 ] && features=integer-only
[ -n "$prepare" ] && features="$features,prepare"
cd "$here"
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_PROFILE_RELEASE_OPT_LEVEL=$opt
export SLIMNET_BOARD=$board SLIMNET_MODEL=$model SLIMNET_IMAGES=$images SLIMNET_INPUTS=$inputs
export SLIMNET_VERIFY_EVERY=$every SLIMNET_FLIP_BIT=$flip SLIMNET_PREPARE=$prepare
target_dir=$here/../../target/firmware/$board-opt$opt
/usr/bin/cargo build -q --release --target "$target" --features "$features" --target-dir "$target_dir"
elf=$target_dir/$target/release/slimnet-firmware
qemu=(qemu-system-arm -machine "$board" -cpu "$cpu" -nographic -monitor none -serial none
      -semihosting-config enable=on,target=native -kernel "$elf")
if [ "$count" = 1 ]; then
  plugin=$target_dir/libinsncount.so
  [ -f "$plugin" ] || gcc -shared -fPIC -O2 -o "$plugin" "$here/../../../shared/embedded/insncount/insncount.c"
  addr() { nm "$elf" | awk -v s="$1" '$3 == s {print "0x" $1}'; }
  qemu+=(-icount shift=0 -plugin "$plugin,start=$(addr slimnet_$marks),stop=$(addr slimnet_${marks}_done)")
fi
timeout 600 "${qemu[@]}" > "$target_dir/qemu.out" 2>&1 || { cat "$target_dir/qemu.out" >&2; echo "run.sh: the firmware failed on $board" >&2; exit 1; }
grep -v -e '^insncount:' -e '^Timer with period zero' "$target_dir/qemu.out"
if [ "$count" = 1 ]; then
  sed -n 's/insncount: total=\([0-9]*\) region=\([0-9]*\) regions=\([0-9]*\)/instructions_total=\1 instructions_per_inference=\2\/\3/p' "$target_dir/qemu.out" \
    | awk -F'[=/ ]' -v m="$marks" '{printf "instructions_total=%s instructions_per_%s=%d\n", $2, (m == "infer" ? "inference" : m), $4 / $5}'
fi
# Flash: everything loaded into it (vector table, code, constants with model and images, .data's initial values).
size -A "$elf" | awk '
  $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" || $1 == ".data" {flash += $2}
  $1 == ".text" {text = $2} $1 == ".bss" || $1 == ".data" {ram += $2}
  END {printf "flash_bytes=%d text_bytes=%d static_ram_bytes=%d\n", flash, text, ram}'
if [ "$features" = integer-only ]; then
  floats=$(nm "$elf" | grep -cE '__aeabi_[fd]|__(add|sub|mul|div)[sd]f3' || true)
  echo "soft_float_symbols=$floats"
fi
