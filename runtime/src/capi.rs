//! The C API (feature `capi`), declared in `include/slimnet.h`. The only module with `unsafe` code: it turns C
//! pointers into slices after checking them for null, and stores a validated [`Model`] in storage the caller
//! provides (no allocation). Every function returns `SLIMNET_OK` (0) or a negative error code; nothing panics.

use crate::{Error, Model};
use core::ffi::c_char;
use core::mem::{align_of, size_of};

/// Success.
pub const SLIMNET_OK: i32 = 0;
/// A null pointer or a bad argument.
pub const SLIMNET_E_ARGUMENT: i32 = -1;
/// `Error::Truncated`.
pub const SLIMNET_E_TRUNCATED: i32 = -2;
/// `Error::BadMagic`.
pub const SLIMNET_E_BAD_MAGIC: i32 = -3;
/// `Error::UnsupportedVersion`.
pub const SLIMNET_E_VERSION: i32 = -4;
/// `Error::ChecksumMismatch`.
pub const SLIMNET_E_CHECKSUM: i32 = -5;
/// `Error::BadSection`.
pub const SLIMNET_E_SECTION: i32 = -6;
/// `Error::InvalidValue`.
pub const SLIMNET_E_VALUE: i32 = -7;
/// `Error::ShapeMismatch`.
pub const SLIMNET_E_SHAPE: i32 = -8;
/// `Error::Overflow`.
pub const SLIMNET_E_OVERFLOW: i32 = -9;
/// `Error::CorruptStream`.
pub const SLIMNET_E_STREAM: i32 = -10;
/// `Error::PathUnavailable`.
pub const SLIMNET_E_PATH: i32 = -11;
/// `Error::BufferTooSmall`.
pub const SLIMNET_E_BUFFER: i32 = -12;
/// Model storage too small or misaligned.
pub const SLIMNET_E_STORAGE: i32 = -13;
/// `Error::Fault`: `slimnet_verify` found the model's bytes changed since load.
pub const SLIMNET_E_FAULT: i32 = -14;

fn code(e: Error) -> i32 {
    match e {
        Error::Truncated { .. } | Error::LengthMismatch { .. } => SLIMNET_E_TRUNCATED,
        Error::BadMagic => SLIMNET_E_BAD_MAGIC,
        Error::UnsupportedVersion(_) => SLIMNET_E_VERSION,
        Error::ChecksumMismatch { .. } => SLIMNET_E_CHECKSUM,
        Error::BadSection { .. } => SLIMNET_E_SECTION,
        Error::InvalidValue { .. } => SLIMNET_E_VALUE,
        Error::ShapeMismatch { .. } => SLIMNET_E_SHAPE,
        Error::Overflow => SLIMNET_E_OVERFLOW,
        Error::CorruptStream { .. } => SLIMNET_E_STREAM,
        Error::PathUnavailable => SLIMNET_E_PATH,
        Error::BufferTooSmall { .. } => SLIMNET_E_BUFFER,
        Error::Fault { .. } => SLIMNET_E_FAULT,
    }
}

/// A static, NUL-terminated message for an error code.
#[unsafe(no_mangle)]
pub extern "C" fn slimnet_error_message(code: i32) -> *const c_char {
    let msg: &'static [u8] = match code {
        SLIMNET_OK => b"ok\0",
        SLIMNET_E_ARGUMENT => b"null pointer or bad argument\0",
        SLIMNET_E_TRUNCATED => b"truncated file\0",
        SLIMNET_E_BAD_MAGIC => b"not a .slim file (bad magic)\0",
        SLIMNET_E_VERSION => b"unsupported .slim version\0",
        SLIMNET_E_CHECKSUM => b"checksum mismatch\0",
        SLIMNET_E_SECTION => b"bad section table\0",
        SLIMNET_E_VALUE => b"invalid field value\0",
        SLIMNET_E_SHAPE => b"layer shape mismatch\0",
        SLIMNET_E_OVERFLOW => b"size overflow\0",
        SLIMNET_E_STREAM => b"corrupt sparse stream\0",
        SLIMNET_E_PATH => b"numeric path not available in this model\0",
        SLIMNET_E_BUFFER => b"buffer too small\0",
        SLIMNET_E_STORAGE => b"model storage too small or misaligned\0",
        SLIMNET_E_FAULT => b"the model's bytes changed since load (memory fault)\0",
        _ => b"unknown error code\0",
    };
    msg.as_ptr().cast()
}

/// Bytes of storage `slimnet_model_load` needs.
#[unsafe(no_mangle)]
pub extern "C" fn slimnet_model_storage_size() -> usize {
    size_of::<Model<'static>>()
}

/// Alignment that storage must have.
#[unsafe(no_mangle)]
pub extern "C" fn slimnet_model_storage_align() -> usize {
    align_of::<Model<'static>>()
}

/// Validates the blob without keeping anything.
///
/// # Safety
/// `blob` must point to `len` readable bytes (or be null, which is an error).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_validate(blob: *const u8, len: usize) -> i32 {
    if blob.is_null() {
        return SLIMNET_E_ARGUMENT;
    }
    // SAFETY: non-null, and the caller guarantees `len` readable bytes.
    let bytes = unsafe { core::slice::from_raw_parts(blob, len) };
    match Model::from_bytes(bytes) {
        Ok(_) => SLIMNET_OK,
        Err(e) => code(e),
    }
}

/// Validates `blob` and stores the model in `storage` (`storage_len` bytes, aligned to
/// `slimnet_model_storage_align()`). The blob must outlive every use of the model.
///
/// # Safety
/// `blob` must point to `len` readable bytes and `storage` to `storage_len` writable bytes, both live for as long
/// as the model is used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_model_load(
    storage: *mut u8,
    storage_len: usize,
    blob: *const u8,
    len: usize,
) -> i32 {
    if storage.is_null() || blob.is_null() {
        return SLIMNET_E_ARGUMENT;
    }
    if storage_len < size_of::<Model<'static>>()
        || (storage as usize) & (align_of::<Model<'static>>() - 1) != 0
    {
        return SLIMNET_E_STORAGE;
    }
    // SAFETY: non-null, and the caller guarantees `len` readable bytes that outlive the model.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(blob, len) };
    // Filled in place (Model::load), so that no copy of the model passes through the caller's stack.
    // SAFETY: storage is non-null, large enough and aligned for a Model (checked above); it is initialized by the
    // write before the reference is made.
    let model = unsafe {
        let slot = storage.cast::<Model<'static>>();
        slot.write(Model::EMPTY);
        &mut *slot
    };
    match model.load(bytes) {
        Ok(()) => SLIMNET_OK,
        Err(e) => code(e),
    }
}

/// # Safety
/// `model` must be null or storage filled by a successful `slimnet_model_load`.
unsafe fn model<'a>(model: *const u8) -> Option<&'a Model<'static>> {
    if model.is_null() || (model as usize) & (align_of::<Model<'static>>() - 1) != 0 {
        return None;
    }
    // SAFETY: the caller passes storage initialized by slimnet_model_load.
    Some(unsafe { &*model.cast::<Model<'static>>() })
}

/// Re-checks the loaded model's bytes (`Model::verify`): `SLIMNET_OK`, or `SLIMNET_E_FAULT` with the file range
/// that holds the change in `*fault_offset` and `*fault_len` (either pointer may be null) — reload that range from
/// a good copy and call it again. Allocates nothing; callable between inferences.
///
/// # Safety
/// `model` must come from `slimnet_model_load`, its blob still mapped; the out-pointers null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_verify(
    model: *const u8,
    fault_offset: *mut usize,
    fault_len: *mut usize,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    let Some(m) = (unsafe { self::model(model) }) else {
        return SLIMNET_E_ARGUMENT;
    };
    match m.verify() {
        Ok(()) => SLIMNET_OK,
        Err(e) => {
            if let Error::Fault { offset, len, .. } = e {
                // SAFETY: each pointer is null (skipped) or writable, as the caller guarantees.
                unsafe {
                    if !fault_offset.is_null() {
                        fault_offset.write(offset);
                    }
                    if !fault_len.is_null() {
                        fault_len.write(len);
                    }
                }
            }
            code(e)
        }
    }
}

/// Scratch bytes needed: `integer` = 0 for the f32 path, 1 for the integer-only path.
///
/// # Safety
/// `model` must come from `slimnet_model_load`; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_arena_len(model: *const u8, integer: i32, out: *mut usize) -> i32 {
    // SAFETY: forwarded caller guarantees.
    let (Some(m), false) = (unsafe { self::model(model) }, out.is_null()) else {
        return SLIMNET_E_ARGUMENT;
    };
    let n = if integer != 0 {
        m.arena_len_int8()
    } else {
        arena_f32(m)
    };
    // SAFETY: non-null and writable per the contract.
    unsafe { out.write(n) };
    SLIMNET_OK
}

/// Exact bytes `slimnet_prepare` needs (`Model::prepared_len_int8`; 0: nothing to prepare).
///
/// # Safety
/// `model` must come from `slimnet_model_load`; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_prepared_len(model: *const u8, out: *mut usize) -> i32 {
    // SAFETY: forwarded caller guarantees.
    let (Some(m), false) = (unsafe { self::model(model) }, out.is_null()) else {
        return SLIMNET_E_ARGUMENT;
    };
    // SAFETY: non-null and writable per the contract.
    unsafe { out.write(m.prepared_len_int8()) };
    SLIMNET_OK
}

/// Prepares the loaded model (`Model::prepare_int8`): its sparse operators' streams decoded once into `memory`
/// (`len` bytes, at least `slimnet_prepared_len`), which the integer path then runs from. Query
/// `slimnet_arena_len` again afterwards: the arena's size changes.
///
/// # Safety
/// `model` must come from `slimnet_model_load` and not be in use by another call; `memory` must point to `len`
/// writable bytes that stay live, and untouched by the caller, for as long as the model is used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_prepare(model: *mut u8, memory: *mut u8, len: usize) -> i32 {
    if model.is_null()
        || memory.is_null()
        || (model as usize) & (align_of::<Model<'static>>() - 1) != 0
    {
        return SLIMNET_E_ARGUMENT;
    }
    // SAFETY: storage initialized by slimnet_model_load, not aliased during this call (caller's contract).
    let m = unsafe { &mut *model.cast::<Model<'static>>() };
    // SAFETY: non-null, `len` writable bytes that outlive the model and are not accessed elsewhere meanwhile.
    let memory: &'static mut [u8] = unsafe { core::slice::from_raw_parts_mut(memory, len) };
    match m.prepare_int8(memory) {
        Ok(()) => SLIMNET_OK,
        Err(e) => code(e),
    }
}

#[cfg(not(feature = "integer-only"))]
fn arena_f32(m: &Model) -> usize {
    m.arena_len()
}
#[cfg(feature = "integer-only")]
fn arena_f32(_: &Model) -> usize {
    0
}

/// Input elements and classes of the model.
///
/// # Safety
/// `model` must come from `slimnet_model_load`; the out pointers must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_model_shape(
    model: *const u8,
    input_len: *mut usize,
    classes: *mut usize,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    let Some(m) = (unsafe { self::model(model) }) else {
        return SLIMNET_E_ARGUMENT;
    };
    if input_len.is_null() || classes.is_null() {
        return SLIMNET_E_ARGUMENT;
    }
    // SAFETY: non-null and writable per the contract.
    unsafe {
        input_len.write(m.input_len());
        classes.write(m.classes());
    }
    SLIMNET_OK
}

/// The body shared by the `run` entry points: checks the pointers, runs `run` into logits on the stack, copies them
/// to `out` and the argmax to `class` (either may be null).
///
/// # Safety
/// As for the entry points: valid pointers for the given lengths, `model` from `slimnet_model_load`.
#[allow(clippy::too_many_arguments)]
unsafe fn run_into<T: Copy + Default + PartialOrd>(
    model: *const u8,
    pixels: *const u8,
    pixels_len: usize,
    arena: *mut u8,
    arena_len: usize,
    out: *mut T,
    out_len: usize,
    class: *mut i32,
    run: impl Fn(&Model<'static>, &[u8], &mut [u8], &mut [T]) -> Result<(), Error>,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    let Some(m) = (unsafe { self::model(model) }) else {
        return SLIMNET_E_ARGUMENT;
    };
    if pixels.is_null() || arena.is_null() {
        return SLIMNET_E_ARGUMENT;
    }
    // SAFETY: non-null; the caller guarantees the lengths.
    let (px, ar) = unsafe {
        (
            core::slice::from_raw_parts(pixels, pixels_len),
            core::slice::from_raw_parts_mut(arena, arena_len),
        )
    };
    let mut local = [T::default(); 256];
    let Some(logits) = local.get_mut(..m.classes().min(256)) else {
        return SLIMNET_E_OVERFLOW;
    };
    if let Err(e) = run(m, px, ar, logits) {
        return code(e);
    }
    if !out.is_null() {
        // SAFETY: non-null; the caller guarantees `out_len` writable elements.
        let o = unsafe { core::slice::from_raw_parts_mut(out, out_len) };
        o.iter_mut().zip(logits.iter()).for_each(|(d, s)| *d = *s);
    }
    if !class.is_null() {
        // SAFETY: non-null, writable per the contract.
        unsafe { class.write(crate::argmax(logits) as i32) };
    }
    SLIMNET_OK
}

/// Runs the integer-only path on `pixels` and writes `classes` int8 logits to `out` and the predicted class to
/// `class` (either may be null).
///
/// # Safety
/// Pointers must be valid for the given lengths; `model` must come from `slimnet_model_load`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_run_int8(
    model: *const u8,
    pixels: *const u8,
    pixels_len: usize,
    arena: *mut u8,
    arena_len: usize,
    out: *mut i8,
    out_len: usize,
    class: *mut i32,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        run_into(
            model,
            pixels,
            pixels_len,
            arena,
            arena_len,
            out,
            out_len,
            class,
            |m, p, a, o| m.run_u8_int8(p, a, o),
        )
    }
}

/// Runs the f32 path on raw `pixels` and writes `classes` logits to `out` and the predicted class to `class`
/// (either may be null).
///
/// # Safety
/// Pointers must be valid for the given lengths; `model` must come from `slimnet_model_load`.
#[cfg(not(feature = "integer-only"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_run_u8(
    model: *const u8,
    pixels: *const u8,
    pixels_len: usize,
    arena: *mut u8,
    arena_len: usize,
    out: *mut f32,
    out_len: usize,
    class: *mut i32,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        run_into(
            model,
            pixels,
            pixels_len,
            arena,
            arena_len,
            out,
            out_len,
            class,
            |m, p, a, o| m.run_u8(p, a, o),
        )
    }
}

/// Dimensions of the input (`which` = 0) or output (`which` = 1) tensor of one sample: writes the rank to `rank`
/// and the dimensions (channels last) to `dims[0 .. rank]`; `dims` must hold 4 values.
///
/// # Safety
/// `model` must come from `slimnet_model_load`; `dims` must point to 4 writable values and `rank` to one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_tensor_shape(
    model: *const u8,
    which: i32,
    dims: *mut usize,
    rank: *mut usize,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    let Some(m) = (unsafe { self::model(model) }) else {
        return SLIMNET_E_ARGUMENT;
    };
    if dims.is_null() || rank.is_null() || !(0..=1).contains(&which) {
        return SLIMNET_E_ARGUMENT;
    }
    let shape = if which == 0 {
        m.input_shape()
    } else {
        m.output_shape()
    };
    // SAFETY: non-null; the caller guarantees 4 writable values and one for the rank.
    unsafe {
        let d = core::slice::from_raw_parts_mut(dims, 4);
        d.iter_mut().for_each(|v| *v = 0);
        d.iter_mut()
            .zip(shape.dims())
            .for_each(|(v, &s)| *v = usize::from(s));
        rank.write(shape.rank());
    }
    SLIMNET_OK
}

/// The integer path's zero point and scale of the input (`which` = 0) or output (`which` = 1) tensor:
/// `real = (q − zero_point) · scale`. (The scale is only copied, never computed with: fine on integer-only cores.)
///
/// # Safety
/// `model` must come from `slimnet_model_load`; the out pointers must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_tensor_quantization(
    model: *const u8,
    which: i32,
    zero_point: *mut i32,
    scale: *mut f32,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    let Some(m) = (unsafe { self::model(model) }) else {
        return SLIMNET_E_ARGUMENT;
    };
    if zero_point.is_null() || scale.is_null() || !(0..=1).contains(&which) {
        return SLIMNET_E_ARGUMENT;
    }
    let (zp, bits) = if which == 0 {
        m.input_quantization()
    } else {
        m.output_quantization()
    };
    // SAFETY: non-null and writable per the contract.
    unsafe {
        zero_point.write(zp);
        scale.write(f32::from_bits(bits));
    }
    SLIMNET_OK
}

/// Checks the pointers of a tensor run and turns them into slices.
///
/// # Safety
/// Valid pointers for the given lengths.
unsafe fn tensor_slices<'s, I, O>(
    input: *const I,
    input_len: usize,
    arena: *mut u8,
    arena_len: usize,
    output: *mut O,
    output_len: usize,
) -> Option<(&'s [I], &'s mut [u8], &'s mut [O])> {
    if input.is_null() || arena.is_null() || output.is_null() {
        return None;
    }
    // SAFETY: non-null; the caller guarantees the lengths.
    unsafe {
        Some((
            core::slice::from_raw_parts(input, input_len),
            core::slice::from_raw_parts_mut(arena, arena_len),
            core::slice::from_raw_parts_mut(output, output_len),
        ))
    }
}

/// Runs the integer-only path on one int8 input tensor (quantized with `slimnet_tensor_quantization`) and
/// writes the int8 output tensor to `output`.
///
/// # Safety
/// Pointers must be valid for the given lengths; `model` must come from `slimnet_model_load`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_invoke_int8(
    model: *const u8,
    input: *const i8,
    input_len: usize,
    arena: *mut u8,
    arena_len: usize,
    output: *mut i8,
    output_len: usize,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    let Some(m) = (unsafe { self::model(model) }) else {
        return SLIMNET_E_ARGUMENT;
    };
    // SAFETY: forwarded caller guarantees.
    let Some((i, a, o)) =
        (unsafe { tensor_slices(input, input_len, arena, arena_len, output, output_len) })
    else {
        return SLIMNET_E_ARGUMENT;
    };
    match m.run_int8(i, a, o) {
        Ok(()) => SLIMNET_OK,
        Err(e) => code(e),
    }
}

/// Runs the f32 path on one f32 input tensor (normalized as the model expects) and writes the f32 output tensor
/// to `output`.
///
/// # Safety
/// Pointers must be valid for the given lengths; `model` must come from `slimnet_model_load`.
#[cfg(not(feature = "integer-only"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn slimnet_invoke_f32(
    model: *const u8,
    input: *const f32,
    input_len: usize,
    arena: *mut u8,
    arena_len: usize,
    output: *mut f32,
    output_len: usize,
) -> i32 {
    // SAFETY: forwarded caller guarantees.
    let Some(m) = (unsafe { self::model(model) }) else {
        return SLIMNET_E_ARGUMENT;
    };
    // SAFETY: forwarded caller guarantees.
    let Some((i, a, o)) =
        (unsafe { tensor_slices(input, input_len, arena, arena_len, output, output_len) })
    else {
        return SLIMNET_E_ARGUMENT;
    };
    match m.run_f32(i, a, o) {
        Ok(()) => SLIMNET_OK,
        Err(e) => code(e),
    }
}
