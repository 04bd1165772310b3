//! Runs the embedded `.slim` model on the embedded MNIST test images through the slimnet runtime's public API,
//! with a static arena of exactly the size the model needs, and prints through semihosting:
//!
//! ```text
//! slimnet-firmware board=lm3s6965evb path=int8
//! model_bytes=16500 arena_bytes=1084 images=251
//! predictions=7210414959...
//! correct=248/251 accuracy_centi=9880
//! stack_bytes=1234
//! ```
//!
//! then exits with status 0 (1 on any error). No floating point is formatted: the accuracy is printed in
//! hundredths of a percent, so the integer-only image holds no float code at all. `slimnet_infer` and
//! `slimnet_infer_done` bracket each inference for the instruction counter (`run.sh --count`).
//!
//! Every `VERIFY_EVERY` inferences the firmware re-checks the model's bytes (`Model::verify`, bracketed by
//! `slimnet_verify` / `slimnet_verify_done` for `run.sh --count-verify`); a detected fault is reported as
//! `fault_detected=… region_offset=… region_len=…` and ends the run with status 1 (a device would reload that
//! region from a second copy). `run.sh --flip-bit B` injects one: the model runs from a RAM copy whose bit B is
//! flipped after the first inference.
#![no_std]
#![no_main]

use core::arch::asm;
use core::ptr::{addr_of, addr_of_mut};
use slimnet_runtime::Model;

mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}
use config::{
    ARENA_BYTES, BOARD, FLIP_BIT, IMAGES, INPUT, MODEL_RAM_BYTES, OUTPUT, PREPARED_BYTES, TENSORS,
    VERIFY_EVERY,
};

static MODEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.slim"));
static IMAGE_DATA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images.bin"));
static LABELS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/labels.bin"));

/// The runtime's working memory: a static, sized by build.rs from the model (`Model::arena_len*`).
static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];

/// The sparse operators' prepared forms (`run.sh --prepare`: `Model::prepare_int8` at start-up); empty otherwise.
static mut PREPARED: [u8; PREPARED_BYTES] = [0; PREPARED_BYTES];

/// The model's RAM copy when a fault is injected (`FLIP_BIT`); empty otherwise.
static mut MODEL_RAM: [u8; MODEL_RAM_BYTES] = [0; MODEL_RAM_BYTES];

/// The loaded model (its tables of tensors and operators), a static too: `Model::load` fills it in place.
/// (Initialized data: its 8 KB initial image sits in flash and is copied at reset. Built at run time instead, the model passed through
/// the stack twice, since Rust does not construct return values in place.)
static mut MODEL_SLOT: Model<'static> = Model::EMPTY;

/// Value the unused stack is painted with, to find its high-water mark afterwards.
const PAINT: u32 = 0x5A5A_5A5A;

unsafe extern "C" {
    static mut __sbss: u32;
    static mut __ebss: u32;
    static mut __sdata: u32;
    static mut __edata: u32;
    static __sidata: u32;
    static mut __stack_limit: u32;
    static __stack_top: u32;
}

fn semihost(op: u32, arg: u32) -> u32 {
    let r: u32;
    // SAFETY: the semihosting trap; QEMU reads the argument block and does not touch our memory otherwise.
    unsafe { asm!("bkpt 0xAB", inout("r0") op => r, in("r1") arg) };
    r
}

/// Semihosting output, buffered by line (SYS_WRITE0 prints a NUL-terminated string).
struct Out {
    buf: [u8; 128],
    len: usize,
}

impl Out {
    const fn new() -> Self {
        Out {
            buf: [0; 128],
            len: 0,
        }
    }
    fn byte(&mut self, b: u8) {
        if self.len == self.buf.len() - 1 {
            self.flush();
        }
        self.buf[self.len] = b;
        self.len += 1;
        if b == b'\n' {
            self.flush();
        }
    }
    fn str(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            self.byte(b);
        }
        self
    }
    /// Decimal, without core::fmt (its machinery is kilobytes of code a device image does not need).
    fn num(&mut self, mut v: usize) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut n = 0;
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for &d in digits[..n].iter().rev() {
            self.byte(d);
        }
        self
    }
    fn flush(&mut self) {
        self.buf[self.len] = 0;
        semihost(0x04, self.buf.as_ptr() as u32);
        self.len = 0;
    }
}

/// SYS_EXIT: ADP_Stopped_ApplicationExit ends QEMU with status 0; RunTimeErrorUnknown with status 1.
fn exit(ok: bool) -> ! {
    semihost(0x18, if ok { 0x2_0026 } else { 0x2_0023 });
    loop {}
}

fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer register.
    unsafe { asm!("mov {}, sp", out(reg) sp) };
    sp
}

/// Zeroes .bss, copies .data, enables the FPU where there is one, then runs `main` on the same stack.
#[unsafe(no_mangle)]
pub extern "C" fn reset() -> ! {
    // SAFETY: runs once, before anything reads a static; the symbols come from the linker script.
    unsafe {
        let mut p = addr_of_mut!(__sbss);
        while p < addr_of_mut!(__ebss) {
            p.write_volatile(0);
            p = p.add(1);
        }
        let (mut d, mut s) = (addr_of_mut!(__sdata), addr_of!(__sidata));
        while d < addr_of_mut!(__edata) {
            d.write_volatile(s.read());
            d = d.add(1);
            s = s.add(1);
        }
        #[cfg(target_abi = "eabihf")]
        {
            // CPACR: full access to coprocessors 10 and 11 (the FPU), before any floating-point instruction.
            let cpacr = 0xE000_ED88 as *mut u32;
            cpacr.write_volatile(cpacr.read_volatile() | 0xF << 20);
            asm!("dsb", "isb");
        }
    }
    paint_stack();
    main()
}

/// Paints the free stack below the current frame, leaving a margin for this function's own frame.
#[inline(never)]
fn paint_stack() {
    let below = stack_pointer() - 64;
    let mut p = addr_of_mut!(__stack_limit) as usize;
    while p < below {
        // SAFETY: [__stack_limit, sp − 64) is unused stack memory, word-aligned.
        unsafe { (p as *mut u32).write_volatile(PAINT) };
        p += 4;
    }
}

/// Bytes of stack ever used: from the top down to the lowest word no longer holding the paint.
fn stack_high_water() -> usize {
    let mut p = addr_of!(__stack_limit) as usize;
    let top = addr_of!(__stack_top) as usize;
    // SAFETY: reads words inside the stack region.
    while p < top && unsafe { (p as *const u32).read_volatile() } == PAINT {
        p += 4;
    }
    top - p
}

/// One inference: the class the model predicts for `pixels` (in tensor mode: the int8 output tensor of the int8
/// input tensor `pixels`, written to `out`). Out of line so that its address and the next marker's bracket
/// exactly one inference for the instruction counter.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "Rust" fn slimnet_infer(
    model: &Model,
    pixels: &[u8],
    arena: &mut [u8],
    out: &mut [i8],
) -> slimnet_runtime::Result<usize> {
    if TENSORS {
        let mut x = [0i8; INPUT];
        x.iter_mut().zip(pixels).for_each(|(d, &s)| *d = s as i8);
        model.run_int8(&x, arena, out)?;
        return Ok(0);
    }
    let _ = out;
    #[cfg(feature = "f32")]
    return model.predict_u8(pixels, arena);
    #[cfg(not(feature = "f32"))]
    return model.predict_int8(pixels, arena);
}

/// Tensor mode: runs every embedded input tensor and prints all output bytes as hex (`outputs=…`), then exits.
fn tensors(out: &mut Out, model: &Model<'static>, arena: &mut [u8]) -> ! {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.str("outputs=");
    let mut y = [0i8; OUTPUT];
    for (i, x) in IMAGE_DATA.chunks_exact(INPUT).enumerate() {
        let r = slimnet_infer(model, x, arena, &mut y);
        slimnet_infer_done();
        if r.is_err() {
            out.str("\nerror: inference failed\n");
            exit(false)
        }
        check_model(out, model, i + 1);
        for &v in &y {
            out.byte(HEX[usize::from(v as u8 >> 4)]);
            out.byte(HEX[usize::from(v as u8 & 15)]);
        }
    }
    out.str("\nstack_bytes=").num(stack_high_water()).str("\n");
    exit(true)
}

/// The bytes the model runs from: the flash image, or its RAM copy when a fault is to be injected.
fn model_bytes() -> &'static [u8] {
    if FLIP_BIT.is_none() {
        return MODEL;
    }
    // SAFETY: single-threaded start-up, before any reference to MODEL_RAM exists; the copy is the same length.
    unsafe {
        let ram = &mut *addr_of_mut!(MODEL_RAM);
        ram.copy_from_slice(MODEL);
        &*addr_of!(MODEL_RAM)
    }
}

/// The injected fault: flips `FLIP_BIT` of the RAM copy the model was loaded from.
fn inject_fault() {
    if let Some(bit) = FLIP_BIT {
        // SAFETY: in bounds (build.rs checks the bit against the model's length). The model holds a shared
        // reference to these bytes, which Rust assumes never change: this write *is* the memory fault being
        // simulated, as a cosmic ray would cause it. Volatile, so it is not elided; the runtime reads the bytes
        // only through bounds-checked reads, and `verify` must catch the change.
        unsafe {
            let p = addr_of_mut!(MODEL_RAM).cast::<u8>().add(bit / 8);
            p.write_volatile(p.read_volatile() ^ (1 << (bit % 8)));
        }
    }
}

/// Loads (validates and plans) the embedded model: out of line so that `run.sh --count-load` can count it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "Rust" fn slimnet_load(model: &mut Model<'static>) -> slimnet_runtime::Result<()> {
    model.load(model_bytes())?;
    if PREPARED_BYTES > 0 {
        // SAFETY: called once, at start-up, before any other reference to PREPARED exists; the model keeps the
        // only one.
        model.prepare_int8(unsafe { &mut *addr_of_mut!(PREPARED) })?;
    }
    Ok(())
}

/// Re-checks the model's bytes: out of line so that `run.sh --count-verify` can count it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "Rust" fn slimnet_verify(model: &Model<'static>) -> slimnet_runtime::Result<()> {
    model.verify()
}

/// Marks the end of a verify for the instruction counter.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn slimnet_verify_done() {
    // SAFETY: an empty barrier that keeps the function distinct (three nops: not folded into the other markers).
    unsafe { asm!("nop", "nop", "nop") };
}

/// After inference `done` (counted from 1): verifies the model every `VERIFY_EVERY` inferences (and injects the
/// configured fault after the first), reporting a fault and stopping.
fn check_model(out: &mut Out, model: &Model<'static>, done: usize) {
    if done == 1 {
        inject_fault();
    }
    if VERIFY_EVERY == 0 || done % VERIFY_EVERY != 0 {
        return;
    }
    let verified = slimnet_verify(model);
    slimnet_verify_done();
    if let Err(slimnet_runtime::Error::Fault { offset, len, .. }) = verified {
        out.str("\nfault_detected=").num(done);
        out.str(" region_offset=")
            .num(offset)
            .str(" region_len=")
            .num(len)
            .str("\n");
        exit(false)
    } else if verified.is_err() {
        out.str("\nerror: verify failed\n");
        exit(false)
    }
}

/// Marks the end of loading for the instruction counter.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn slimnet_load_done() {
    // SAFETY: an empty barrier that keeps the function (and its address) distinct: two nops, so that the linker
    // does not fold it into `slimnet_infer_done` (one nop).
    unsafe { asm!("nop", "nop") };
}

/// Marks the end of one inference for the instruction counter.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn slimnet_infer_done() {
    // SAFETY: an empty barrier that keeps the function (and its address) distinct.
    unsafe { asm!("nop") };
}

fn main() -> ! {
    let mut out = Out::new();
    let path = if cfg!(feature = "f32") { "f32" } else { "int8" };
    out.str("slimnet-firmware board=")
        .str(BOARD)
        .str(" path=")
        .str(path)
        .str("\n");
    // SAFETY: the only references to the model slot and the arena, taken once.
    let (model, arena) = unsafe { (&mut *addr_of_mut!(MODEL_SLOT), &mut *addr_of_mut!(ARENA)) };
    // Validated and filled in place: the model table never passes through the stack.
    let loaded = slimnet_load(model);
    slimnet_load_done();
    if loaded.is_err() {
        out.str("error: the embedded model does not load\n");
        exit(false)
    }
    out.str("model_bytes=")
        .num(MODEL.len())
        .str(" arena_bytes=")
        .num(arena.len());
    if PREPARED_BYTES > 0 {
        out.str(" prepared_bytes=").num(PREPARED_BYTES);
    }
    out.str(" images=").num(IMAGES);
    out.str(" verify_every=").num(VERIFY_EVERY).str("\n");
    if TENSORS {
        tensors(&mut out, model, arena);
    }
    out.str("predictions=");
    let mut correct = 0usize;
    let mut none = [0i8; 0];
    for (i, (image, &label)) in IMAGE_DATA.chunks_exact(INPUT).zip(LABELS).enumerate() {
        let class = slimnet_infer(model, image, arena, &mut none);
        slimnet_infer_done();
        check_model(&mut out, model, i + 1);
        match class {
            Ok(c) => {
                correct += usize::from(c == usize::from(label));
                out.byte(b'0' + (c % 10) as u8);
            }
            Err(_) => {
                out.str("\nerror: inference failed\n");
                exit(false)
            }
        }
    }
    out.str("\ncorrect=").num(correct).str("/").num(IMAGES);
    out.str(" accuracy_centi=")
        .num(correct * 10_000 / IMAGES.max(1))
        .str("\n");
    out.str("stack_bytes=").num(stack_high_water()).str("\n");
    exit(true)
}

/// Faults end the run with an error instead of hanging QEMU.
#[unsafe(no_mangle)]
pub extern "C" fn fault() -> ! {
    Out::new().str("fault\n");
    exit(false)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    Out::new().str("panic\n");
    exit(false)
}
