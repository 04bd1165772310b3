//! `slimnet-runtime`: the `no_std`, allocation-free inference engine for `.slim` files.
//!
//! ```text
//! let model = Model::from_bytes(&bytes)?;          // validates everything once, borrows the bytes
//! let mut arena = [0u8; 4096];                      // exact size: model.arena_len_int8()
//! model.run_int8(&input, &mut arena, &mut output)?; // int8 tensors in and out
//! ```
//!
//! - A model is a graph of operators over tensors (`format::OpKind`: FULLY_CONNECTED, CONV_2D,
//!   DEPTHWISE_CONV_2D, ADD, MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE, SOFTMAX), with TFLite's semantics and
//!   channels-last (NHWC) activations, so that TFLite models run exactly.
//! - [`Model::from_bytes`] checks the header, CRC-32, section table, tensors, every operator's parameters and
//!   shapes, quantization parameters and sparse streams, and plans the arena; no input bytes can make it (or a
//!   later run) panic.
//! - Two numeric paths: f32 ([`Model::run_f32`], [`Model::run_u8`]) and integer-only ([`Model::run_int8`],
//!   [`Model::run_u8_int8`]), the latter with TFLite's int8 scheme and rounding and no floating point at all.
//! - Sparse shared-weight operators run straight from their compressed streams (bit-packed or Huffman), never
//!   expanded into dense matrices. Nothing allocates: the caller owns the arena, whose exact size is planned at
//!   load ([`Model::arena_len`], [`Model::arena_len_int8`]).
//! - Optionally, [`Model::prepare_int8`] decodes the sparse operators' streams once into memory the caller also
//!   owns ([`Model::prepared_len_int8`] bytes, exact), which the integer path then runs several times faster; the
//!   same entry points run a model prepared or not.
//!
//! The format is specified in `FORMAT.md` beside this crate; its vocabulary is the [`format`] module.
#![no_std]
// `unsafe` is allowed in two audited modules only: the C API and `ops::lanes` (the Cortex-M DSP
// instructions, and on x86-64 the AVX2 dense kernel with its CPUID detection).
#![deny(unsafe_code)]
#![deny(missing_docs)]

// The C API's static library needs a panic handler and an unwinder on hosted targets: std provides both. The
// library code itself uses nothing from std. On bare metal (`target_os = "none"`) the crate that builds the
// static library provides the panic handler (embedded/c/lib.rs).
#[cfg(all(feature = "capi", not(target_os = "none")))]
extern crate std;

mod bytes;
#[cfg(feature = "capi")]
#[allow(unsafe_code)]
pub mod capi;
mod error;
pub mod format;
mod fused;
mod model;
mod ops;
mod plan;
mod prepare;
mod quant;
mod run;
mod stream;
mod taps;
mod tensor;
mod verify;
mod weights;
#[cfg(feature = "zstd")]
mod zstd;

pub use bytes::crc32;
pub use error::{Error, Result, Section};
pub use format::{Activation, OpKind, StreamCoding};
pub use model::{Model, OpSummary};
pub use quant::{requantize, rounding_divide_by_pot, sat_rounding_doubling_high_mul};
pub use stream::MAX_CODE_BITS;
pub use tensor::Shape;
pub use weights::{Encoding, StreamDecoding};

/// Decodes the Zstandard frame `src` into `dst`, which must be exactly as long as the frame's declared content
/// size (the decoder behind zstd-coded sparse streams, exposed for tests and for callers that store other data
/// zstd-compressed). No allocation; about 10 KB of stack for the decoding tables. Corrupt or unsupported frames
/// (dictionaries, undeclared content size) give [`Error::CorruptStream`] with operator 0. Needs the `zstd`
/// feature.
#[cfg(feature = "zstd")]
pub fn zstd_decompress(src: &[u8], dst: &mut [u8]) -> Result<()> {
    zstd::decompress(src, dst, 0)
}

/// Index of the largest value (the first on ties; NaN never wins): how `predict_*` pick the class from outputs.
pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if let Some(b) = v.get(best) {
            if *x > *b {
                best = i;
            }
        }
    }
    best
}
