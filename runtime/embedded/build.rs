//! Prepares what the firmware embeds, in `OUT_DIR`: the model (`model.slim`), the first N MNIST test images and
//! their labels (`images.bin`, `labels.bin`), the board's linker script (`memory.x`) and `config.rs` with the exact
//! arena size the model needs (computed by the host build of the runtime, so the static arena is never too small
//! and never larger than needed).
//!
//! Environment (run.sh sets these):
//!   SLIMNET_MODEL   the .slim file to embed (default: models/lenet-300-100.slim)
//!   SLIMNET_BOARD   lm3s6965evb (default), mps2-an385 or mps2-an386
//!   SLIMNET_IMAGES  how many test images to embed (default: as many as the board's flash holds beside the model)
//!   SLIMNET_DATA    directory with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (default: ../../data/mnist)
//!   SLIMNET_VERIFY_EVERY  inferences between two `Model::verify` calls (default 100; 0: never)
//!   SLIMNET_FLIP_BIT      a bit of the model to flip after the first inference (fault injection: the model then
//!                   runs from a RAM copy, and the next verify must report the fault)
//!   SLIMNET_PREPARE 1: prepare the model at start-up (`Model::prepare_int8`: the sparse operators' streams
//!                   decoded once into a static of exactly `prepared_len_int8` bytes; integer path only)
//!   SLIMNET_INPUTS  an .npy file of int8 input tensors [N, model input shape…] to run instead of MNIST images
//!                   (tensor mode: the firmware prints every output byte; integer-only builds)
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Flash kept free for code when the image count is chosen automatically: the integer-only firmware's code and
/// constants are ~81 KB at opt-level 3 since the prepared sparse kernels (issue 15; 65 KB before them), so 80 KB
/// no longer left room for them on the LM3S6965 (the link overflowed by 1,556 bytes).
const CODE_RESERVE: usize = 96 * 1024;

/// RAM the linker keeps free for the stack: its measured high-water mark is 11.8 KB with a prepared model
/// (LeNet-5 on the Cortex-M3), 9.3 KB without. Without the check a model whose statics left less ran into them
/// silently (a Cortex-M3 has no stack guard): LeNet-5 prepared on the LM3S6965 predicted class 0 for every image.
const STACK_RESERVE: usize = 12 * 1024;

struct Board {
    name: &'static str,
    flash: usize,
    ram: usize,
    ram_origin: u32,
}

const BOARDS: [Board; 4] = [
    // TI Stellaris LM3S6965: Cortex-M3, 256 KB flash, 64 KB SRAM.
    Board {
        name: "lm3s6965evb",
        flash: 256 * 1024,
        ram: 64 * 1024,
        ram_origin: 0x2000_0000,
    },
    // ARM MPS2 AN385 (Cortex-M3), AN386 (Cortex-M4F) and AN500 (Cortex-M7): 4 MB SSRAM for code, 4 MB SSRAM for
    // data.
    Board {
        name: "mps2-an385",
        flash: 4096 * 1024,
        ram: 4096 * 1024,
        ram_origin: 0x2000_0000,
    },
    Board {
        name: "mps2-an386",
        flash: 4096 * 1024,
        ram: 4096 * 1024,
        ram_origin: 0x2000_0000,
    },
    Board {
        name: "mps2-an500",
        flash: 4096 * 1024,
        ram: 4096 * 1024,
        ram_origin: 0x2000_0000,
    },
];

fn fail(msg: String) -> ! {
    eprintln!("slimnet-firmware build: {msg}");
    std::process::exit(1)
}

fn gunzip(path: &Path) -> Vec<u8> {
    let file = fs::File::open(path).unwrap_or_else(|e| fail(format!("{}: {e}", path.display())));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| fail(format!("{}: not a gzip file: {e}", path.display())));
    out
}

fn env(key: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={key}");
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let model_path =
        env("SLIMNET_MODEL").map_or_else(|| here.join("models/lenet-300-100.slim"), PathBuf::from);
    let data = env("SLIMNET_DATA").map_or_else(|| here.join("../../data/mnist"), PathBuf::from);
    let board_name = env("SLIMNET_BOARD").unwrap_or_else(|| "lm3s6965evb".into());
    let board = BOARDS
        .iter()
        .find(|b| b.name == board_name)
        .unwrap_or_else(|| {
            fail(format!(
                "unknown board {board_name:?} (lm3s6965evb, mps2-an385, mps2-an386, mps2-an500)"
            ))
        });
    println!("cargo:rerun-if-changed={}", model_path.display());
    println!("cargo:rerun-if-changed=build.rs");

    let model =
        fs::read(&model_path).unwrap_or_else(|e| fail(format!("{}: {e}", model_path.display())));
    let m = slimnet_runtime::Model::from_bytes(&model)
        .unwrap_or_else(|e| fail(format!("{}: {e}", model_path.display())));
    let f32_path = std::env::var_os("CARGO_FEATURE_F32").is_some();
    if f32_path && !m.has_f32() || !f32_path && !m.has_integer() {
        let path = if f32_path { "f32" } else { "integer" };
        fail(format!(
            "{}: the model has no {path} path",
            model_path.display()
        ));
    }
    let (arena, prepared) = if f32_path {
        (m.arena_len(), 0)
    } else {
        prepared_arena(&model, &model_path)
    };
    let extra = format!("{}{}", fault_config(model.len()), prepared_config(prepared));
    let input = m.input_len();
    if let Some(inputs) = env("SLIMNET_INPUTS") {
        return tensor_mode(&out, board, (&model, &m, &extra), Path::new(&inputs), arena);
    }

    let images = gunzip(&data.join("t10k-images-idx3-ubyte.gz"));
    let labels = gunzip(&data.join("t10k-labels-idx1-ubyte.gz"));
    if images.len() < 16 || labels.len() < 8 {
        fail(format!("{}: truncated IDX files", data.display()));
    }
    let available = (images.len() - 16) / input.max(1);
    let fit = board.flash.saturating_sub(CODE_RESERVE + model.len()) / (input + 1);
    let count = match env("SLIMNET_IMAGES") {
        Some(n) => n
            .parse::<usize>()
            .unwrap_or_else(|_| fail(format!("SLIMNET_IMAGES={n:?} is not a count"))),
        None => fit,
    }
    .min(available)
    .min(labels.len() - 8);
    fs::write(out.join("model.slim"), &model).unwrap();
    fs::write(out.join("images.bin"), &images[16..16 + count * input]).unwrap();
    fs::write(out.join("labels.bin"), &labels[8..8 + count]).unwrap();
    fs::write(
        out.join("config.rs"),
        format!(
            "/// Arena bytes the embedded model needs on the path this firmware runs.\n\
             pub const ARENA_BYTES: usize = {arena};\n\
             /// Pixels per image.\npub const INPUT: usize = {input};\n\
             /// Embedded test images.\npub const IMAGES: usize = {count};\n\
             /// The board this image is linked for.\npub const BOARD: &str = \"{}\";\n\
             /// Tensor mode: int8 tensors in, every output byte printed.\npub const TENSORS: bool = false;\n\
             /// Output elements.\npub const OUTPUT: usize = {};\n{}",
            board.name,
            m.output_len(),
            extra
        ),
    )
    .unwrap();
    linker_script(&out, board);
}

/// The integer path's (arena bytes, prepared bytes): with SLIMNET_PREPARE=1 the model is prepared here on the
/// host as the firmware will prepare it, so that the arena is planned for the prepared kernels.
fn prepared_arena(model: &[u8], path: &Path) -> (usize, usize) {
    let mut m = slimnet_runtime::Model::from_bytes(model)
        .unwrap_or_else(|e| fail(format!("{}: {e}", path.display())));
    if env("SLIMNET_PREPARE").as_deref() != Some("1") {
        return (m.arena_len_int8(), 0);
    }
    let n = m.prepared_len_int8();
    if n == 0 {
        fail(format!(
            "{}: SLIMNET_PREPARE: no operator has a prepared form (dense or zstd-coded weights)",
            path.display()
        ));
    }
    let mut memory = vec![0u8; n];
    m.prepare_int8(&mut memory)
        .unwrap_or_else(|e| fail(format!("{}: {e}", path.display())));
    (m.arena_len_int8(), n)
}

/// The prepared memory's constant.
fn prepared_config(bytes: usize) -> String {
    format!(
        "/// Bytes of the model's prepared forms (`Model::prepare_int8` at start-up; 0: run from the streams).
         pub const PREPARED_BYTES: usize = {bytes};
"
    )
}

/// The run-time fault check's constants: how often the firmware verifies the model, and the injected fault.
fn fault_config(model_len: usize) -> String {
    let number = |key: &str, default: Option<usize>| match env(key) {
        Some(v) => Some(
            v.parse::<usize>()
                .unwrap_or_else(|_| fail(format!("{key}={v:?} is not a number"))),
        ),
        None => default,
    };
    let every = number("SLIMNET_VERIFY_EVERY", Some(100)).unwrap_or(100);
    let flip = number("SLIMNET_FLIP_BIT", None);
    if flip.is_some_and(|b| b >= model_len * 8) {
        fail(format!(
            "SLIMNET_FLIP_BIT: the model has {} bits",
            model_len * 8
        ));
    }
    format!(
        "/// Inferences between two `Model::verify` calls (0: never).\npub const VERIFY_EVERY: usize = {every};\n\
         /// The model bit flipped after the first inference (fault injection), if any.\n\
         pub const FLIP_BIT: Option<usize> = {flip:?};\n\
         /// Bytes of the RAM copy the model runs from when a fault is injected.\n\
         pub const MODEL_RAM_BYTES: usize = {};\n",
        if flip.is_some() { model_len } else { 0 }
    )
}

/// The int8 tensors of an .npy file (version 1 or 2 header, dtype int8, C order): (count, bytes).
fn npy_int8(path: &Path, per_sample: usize) -> (usize, Vec<u8>) {
    let bytes = fs::read(path).unwrap_or_else(|e| fail(format!("{}: {e}", path.display())));
    let bad = |what: &str| fail(format!("{}: {what}", path.display()));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bad("not an .npy file");
    }
    let (len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = String::from_utf8_lossy(
        bytes
            .get(start..start + len)
            .unwrap_or_else(|| bad("truncated")),
    );
    if !header.contains("'|i1'") || header.contains("'fortran_order': True") {
        bad("expected a C-order int8 array");
    }
    let data = bytes[start + len..].to_vec();
    if per_sample == 0 || data.len() % per_sample != 0 {
        bad("its size is not a whole number of the model's inputs");
    }
    (data.len() / per_sample, data)
}

/// Tensor mode: the .npy's int8 tensors are the firmware's inputs.
fn tensor_mode(
    out: &Path,
    board: &Board,
    (model, m, extra): (&[u8], &slimnet_runtime::Model, &str),
    inputs: &Path,
    arena: usize,
) {
    if std::env::var_os("CARGO_FEATURE_F32").is_some() {
        fail("SLIMNET_INPUTS runs int8 tensors: build without the f32 feature".into());
    }
    println!("cargo:rerun-if-changed={}", inputs.display());
    let (count, data) = npy_int8(inputs, m.input_len());
    fs::write(out.join("model.slim"), model).unwrap();
    fs::write(out.join("images.bin"), &data).unwrap();
    fs::write(out.join("labels.bin"), []).unwrap();
    fs::write(
        out.join("config.rs"),
        format!(
            "/// Arena bytes the embedded model needs on the path this firmware runs.\n\
             pub const ARENA_BYTES: usize = {arena};\n\
             /// Elements per input tensor.\npub const INPUT: usize = {};\n\
             /// Embedded input tensors.\npub const IMAGES: usize = {count};\n\
             /// The board this image is linked for.\npub const BOARD: &str = \"{}\";\n\
             /// Tensor mode: int8 tensors in, every output byte printed.\npub const TENSORS: bool = true;\n\
             /// Output elements.\npub const OUTPUT: usize = {};\n{}",
            m.input_len(),
            board.name,
            m.output_len(),
            extra
        ),
    )
    .unwrap();
    linker_script(out, board);
}

/// The board's linker script, and the link arguments that use it.
fn linker_script(out: &Path, board: &Board) {
    // Vector table (initial SP, reset, then the fault handlers), code and constants in flash, statics in RAM.
    // The stack grows down from the top of RAM towards the end of .bss (`__stack_limit`).
    let script = format!(
        "MEMORY {{ FLASH : ORIGIN = 0x00000000, LENGTH = {flash}  RAM : ORIGIN = {ram_origin:#x}, LENGTH = {ram} }}
ENTRY(reset);
SECTIONS {{
  .vector_table ORIGIN(FLASH) : {{
    LONG(ORIGIN(RAM) + LENGTH(RAM)); LONG(reset | 1);
    LONG(fault | 1); LONG(fault | 1); LONG(fault | 1); LONG(fault | 1); LONG(fault | 1);
  }} > FLASH
  .text : {{ *(.text .text.*); }} > FLASH
  .rodata : ALIGN(4) {{ *(.rodata .rodata.*); . = ALIGN(4); }} > FLASH
  .data : ALIGN(4) {{ __sdata = .; *(.data .data.*); . = ALIGN(4); __edata = .; }} > RAM AT > FLASH
  __sidata = LOADADDR(.data);
  .bss (NOLOAD) : ALIGN(4) {{ __sbss = .; *(.bss .bss.*); . = ALIGN(4); __ebss = .; }} > RAM
  __stack_limit = __ebss;
  __stack_top = ORIGIN(RAM) + LENGTH(RAM);
  /DISCARD/ : {{ *(.ARM.exidx .ARM.exidx.* .ARM.extab.*); }}
}}
ASSERT(__stack_top - __stack_limit >= {stack}, \"slimnet-firmware: the statics (model copy, arena, prepared memory) leave less than {stack} bytes of RAM for the stack on {board}\");
",
        flash = board.flash,
        ram = board.ram,
        ram_origin = board.ram_origin,
        stack = STACK_RESERVE,
        board = board.name,
    );
    fs::write(out.join("memory.x"), script).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg=-Tmemory.x");
}
