#!/usr/bin/env bash
# Builds the C firmware (main.c + the runtime's C API as a static library) for the emulated Cortex-M3 and runs it
# under QEMU. Needs ../../../../shared/embedded/setup.sh's toolchain, arm-none-eabi-gcc and python3.
#   runtime/embedded/c/run.sh [--model FILE.slim] [--images N]
# Prints the firmware's output (the same lines as the Rust firmware), then flash/RAM figures from the ELF.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
model=$here/../models/lenet-300-100.slim images=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$(realpath "$2"); shift 2 ;;
    --images) images=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
out=$root/target/firmware/c
mkdir -p "$out"
command -v arm-none-eabi-gcc >/dev/null || { echo "run.sh: arm-none-eabi-gcc missing (apt install gcc-arm-none-eabi)" >&2; exit 1; }

# The runtime's C API for the Cortex-M3, integer-only (no FPU), built with Debian's rustc-web.
(cd "$here" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo build -q --release \
  --target thumbv7m-none-eabi --features integer-only --target-dir "$out/rust")
lib=$out/rust/thumbv7m-none-eabi/release/libslimnet_capi_device.a

# The model and the first N test images (as many as fit in the 256 KB flash beside 96 KB of code, by default: the
# runtime's code and constants are ~81 KB since issue 15's prepared kernels).
python3 - "$model" "$root/data/mnist" "$out" "$images" <<'PY'
import gzip, os, shutil, sys
model, data, out, n = sys.argv[1:5]
shutil.copyfile(model, os.path.join(out, "model.slim"))
images = gzip.open(os.path.join(data, "t10k-images-idx3-ubyte.gz")).read()[16:]
labels = gzip.open(os.path.join(data, "t10k-labels-idx1-ubyte.gz")).read()[8:]
fit = (256 * 1024 - 96 * 1024 - os.path.getsize(model)) // 785
n = min(int(n) if n else fit, len(labels))
open(os.path.join(out, "images.bin"), "wb").write(images[: n * 784])
open(os.path.join(out, "labels.bin"), "wb").write(labels[:n])
PY

elf=$out/slimnet-firmware-c.elf
arm-none-eabi-gcc -mcpu=cortex-m3 -mthumb -O2 -std=c11 -Wall -Wextra -Werror -ffreestanding -nostdlib \
  -ffunction-sections -fdata-sections -DBOARD='"lm3s6965evb"' -I"$here/../../include" -Wa,-I"$out" \
  -T "$here/link.ld" -Wl,--gc-sections,-z,noexecstack "$here/main.c" "$here/data.S" "$lib" -lgcc -o "$elf"

qemu=(qemu-system-arm -machine lm3s6965evb -cpu cortex-m3 -nographic -monitor none -serial none
      -semihosting-config enable=on,target=native -kernel "$elf")
timeout 600 "${qemu[@]}" > "$out/qemu.out" 2>&1 || { cat "$out/qemu.out" >&2; echo "run.sh: the C firmware failed" >&2; exit 1; }
grep -v -e '^insncount:' -e '^Timer with period zero' "$out/qemu.out"
arm-none-eabi-size -A "$elf" | awk '
  $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" || $1 == ".data" {flash += $2}
  $1 == ".text" {text = $2} $1 == ".bss" || $1 == ".data" {ram += $2}
  END {printf "flash_bytes=%d text_bytes=%d static_ram_bytes=%d\n", flash, text, ram}'
floats=$(arm-none-eabi-nm "$elf" | grep -cE '__aeabi_[fd]|__(add|sub|mul|div)[sd]f3' || true)
echo "soft_float_symbols=$floats"
