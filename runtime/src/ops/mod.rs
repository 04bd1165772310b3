//! The operators, one file each, shaped like TensorFlow Lite Micro's `kernels/`: each reads its parameters from
//! its record, `prepare`s (checks every parameter and shape against its tensors and weights, and says how much
//! scratch memory it needs) and runs a kernel per numeric path. This module reads the common record head and
//! dispatches.

pub(crate) mod add;
pub(crate) mod average_pool_2d;
pub(crate) mod columns;
pub(crate) mod conv_2d;
pub(crate) mod depthwise_conv_2d;
pub(crate) mod depthwise_int8;
pub(crate) mod dot;
pub(crate) mod fully_connected;
pub(crate) mod fuse;
pub(crate) mod lanes;
pub(crate) mod max_pool_2d;
pub(crate) mod prepared;
pub(crate) mod reshape;
pub(crate) mod softmax;
pub(crate) mod spatial;
pub(crate) mod window;

use crate::bytes::Reader;
use crate::error::{Error, Result, Section};
use crate::format::{Activation, OpKind, FLAG_INT, NO_TENSOR};
use crate::tensor::Tensor;
use crate::weights::{self, Expect, Scratch, Weights};
use window::Window;

/// An operator's own parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Params {
    /// FULLY_CONNECTED, RESHAPE.
    None,
    /// CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D.
    Window(Window),
    /// DEPTHWISE_CONV_2D: the window and the depth multiplier.
    Depthwise(Window, u8),
    /// ADD.
    Add(add::Params),
    /// SOFTMAX.
    Softmax(softmax::Params),
}

/// One operator of the graph, as loaded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op<'a> {
    pub kind: OpKind,
    pub activation: Activation,
    /// Integer path: the fused activation's clamp, as stored.
    pub range: (i8, i8),
    /// Input tensors (the second is [`NO_TENSOR`] except for ADD).
    pub inputs: [u16; 2],
    pub output: u16,
    pub params: Params,
    /// The weights section (empty for operators without weights), and its offset in the file.
    pub weights: &'a [u8],
    pub weights_offset: usize,
    /// Scratch bytes the kernel needs itself, per path (f32, integer).
    pub scratch: [usize; 2],
    /// Bytes to decode sparse streams into: (Huffman streams in arena mode, zstd streams).
    pub decode: (usize, usize),
    /// Where the scratch lies in the arena, per path.
    pub scratch_offset: [usize; 2],
    /// Bytes of the integer path's prepared form, for sparse operators that have one
    /// ([`crate::Model::prepare_int8`]; 0: none). Its shape is derived again where needed (`prepared::Layout`),
    /// so that the operator slots stay small (the C firmware's model storage holds 64 of them).
    pub prepared: u32,
    /// Integer path of a prepared model: the MAX_POOL_2D after this convolution is fused into it
    /// ([`fuse`]; set when the arena is planned).
    pub pooled: bool,
}

impl Op<'_> {
    /// An operator slot before loading.
    pub const EMPTY: Op<'static> = Op {
        kind: OpKind::Reshape,
        activation: Activation::None,
        range: (-128, 127),
        inputs: [NO_TENSOR; 2],
        output: NO_TENSOR,
        params: Params::None,
        weights: &[],
        weights_offset: 0,
        scratch: [0; 2],
        decode: (0, 0),
        scratch_offset: [0; 2],
        prepared: 0,
        pooled: false,
    };

    /// The window of a windowed operator.
    pub fn window(&self) -> Window {
        match self.params {
            Params::Window(w) | Params::Depthwise(w, _) => w,
            _ => Window::default(),
        }
    }

    /// Scratch bytes on a path with Huffman streams decoded into the arena or not, and with the model's sparse
    /// operators prepared or not (a prepared operator decodes nothing at run time).
    /// A prepared operator's scratch is its input (`input` elements) followed by a window of zeros.
    pub fn scratch_len(
        &self,
        path: usize,
        arena_decoding: bool,
        (prepared, input): (bool, usize),
    ) -> usize {
        if prepared && path == 1 && self.prepared > 0 {
            return input.saturating_add(prepared::WINDOW);
        }
        let decode = if arena_decoding { self.decode.0 } else { 0 };
        let own = self.scratch.get(path).copied().unwrap_or(0);
        own.saturating_add(decode.max(self.decode.1))
    }
}

/// Reads an operator record: the common head, then the operator's parameters.
pub(crate) fn read(r: &mut Reader, index: u16) -> Result<Op<'static>> {
    let section = Section::Operator(index);
    let invalid = |field, value: u64| Error::InvalidValue {
        section,
        field,
        value,
    };
    let code = r.u8()?;
    let kind = OpKind::from_code(code).ok_or(invalid("operator code", u64::from(code)))?;
    let act = r.u8()?;
    let activation = Activation::from_code(act).ok_or(invalid("activation", u64::from(act)))?;
    let range = (r.u8()? as i8, r.u8()? as i8);
    if range.0 > range.1 {
        return Err(invalid("activation range", range.0 as u8 as u64));
    }
    let inputs = [r.u16()?, r.u16()?];
    let output = r.u16()?;
    let section_index = r.u16()?;
    let params = match kind {
        OpKind::FullyConnected | OpKind::Reshape => Params::None,
        OpKind::Conv2d | OpKind::MaxPool2d | OpKind::AveragePool2d => {
            Params::Window(Window::read(r)?)
        }
        OpKind::DepthwiseConv2d => {
            let w = Window::read(r)?;
            let b = r.take(4)?;
            Params::Depthwise(w, b[0])
        }
        OpKind::Add => Params::Add(add::Params::read(r)?),
        OpKind::Softmax => Params::Softmax(softmax::Params::read(r)?),
    };
    Ok(Op {
        kind,
        activation,
        range,
        inputs,
        output,
        params,
        // The section index, until the loader resolves it to the section's bytes.
        weights_offset: usize::from(section_index),
        ..Op::EMPTY
    })
}

/// The tensors an operator reads and writes.
/// References into the model's tensor table, not copies: an operator's three 24-byte tensors had been copied
/// per inference (with `memcpy` for their shapes), ~100 instructions per operator on the Cortex-M4.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tensors<'m> {
    pub input: &'m Tensor,
    /// ADD's second input (the first again for other operators).
    pub input2: &'m Tensor,
    pub output: &'m Tensor,
}

/// What a checked operator needs: scratch bytes per path, stream decoding memory, and the bytes of its prepared
/// form (0: none).
pub(crate) struct Needs {
    pub scratch: [usize; 2],
    pub decode: (usize, usize),
    pub prepared: u32,
}

impl Needs {
    const NONE: Needs = Needs {
        scratch: [0; 2],
        decode: (0, 0),
        prepared: 0,
    };
}

/// Checks operator `index` against its tensors (and its weights section, read and validated here).
pub(crate) fn prepare(op: &Op, index: u16, t: &Tensors, flags: u16) -> Result<Needs> {
    let activation_ok = match op.kind {
        OpKind::Reshape | OpKind::Softmax => {
            op.activation == Activation::None && op.range == (-128, 127)
        }
        _ => true,
    };
    if !activation_ok {
        return Err(Error::InvalidValue {
            section: Section::Operator(index),
            field: "activation",
            value: op.activation as u64,
        });
    }
    match op.kind {
        OpKind::FullyConnected => fully_connected::prepare(op, index, t, flags),
        OpKind::Conv2d => conv_2d::prepare(op, index, t, flags),
        OpKind::DepthwiseConv2d => depthwise_conv_2d::prepare(op, index, t, flags),
        OpKind::Add => add::prepare(op, index, t, flags).map(|()| Needs::NONE),
        OpKind::MaxPool2d => max_pool_2d::prepare(op, index, t).map(|()| Needs::NONE),
        OpKind::AveragePool2d => average_pool_2d::prepare(op, index, t).map(|()| Needs::NONE),
        OpKind::Reshape => reshape::prepare(index, t).map(|()| Needs::NONE),
        OpKind::Softmax => softmax::prepare(op, index, t, flags).map(|()| Needs::NONE),
    }
}

/// Reads a weighted operator's section: validated at load, trusted (validated before) at run time.
pub(crate) fn weights<'a>(
    op: &Op<'a>,
    index: u16,
    t: &Tensors,
    flags: u16,
    (outputs, fan_in): (usize, usize),
    validate: bool,
) -> Result<Weights<'a>> {
    weights::parse(
        op.weights,
        expect(index, t, flags, (outputs, fan_in), validate),
    )
}

/// What operator `index`'s weights section must hold.
#[inline(always)]
pub(crate) fn expect(
    index: u16,
    t: &Tensors,
    flags: u16,
    (outputs, fan_in): (usize, usize),
    validate: bool,
) -> Expect {
    Expect {
        flags,
        op: index,
        outputs,
        fan_in,
        input_scale: t.input.scale_bits,
        validate,
    }
}

/// What a checked weighted operator needs: its own scratch per path, its streams' decoding memory, and (`layout`)
/// its prepared form's shape.
pub(crate) fn weighted(
    w: &Weights,
    scratch: [usize; 2],
    layout: Option<prepared::Layout>,
) -> Result<Needs> {
    let form = layout
        .and_then(|l| l.len())
        .and_then(|n| u32::try_from(n).ok());
    Ok(Needs {
        scratch,
        decode: w.decode_bytes()?,
        prepared: form.unwrap_or(0),
    })
}

/// Writes operator `index`'s prepared form into `mem` (its [`prepared::Layout::len`] bytes).
pub(crate) fn fill_prepared(
    op: &Op,
    index: u16,
    t: &Tensors,
    flags: u16,
    mem: &mut [u8],
) -> Result<()> {
    match op.kind {
        OpKind::FullyConnected => fully_connected::fill_prepared(op, index, t, flags, mem),
        OpKind::Conv2d => conv_2d::fill_prepared(op, index, t, flags, mem),
        OpKind::DepthwiseConv2d => depthwise_conv_2d::fill_prepared(op, index, t, flags, mem),
        _ => Err(Error::PathUnavailable),
    }
}

/// The memory one operator runs on: its inputs, its output and its scratch, carved from the arena.
pub(crate) struct Io<'r> {
    pub x: &'r [u8],
    pub x2: &'r [u8],
    pub y: &'r mut [u8],
    /// The kernel's own scratch (e.g. a plane of accumulators), then the stream decoding memory.
    pub scratch: &'r mut [u8],
    /// How Huffman streams are decoded.
    pub arena_decoding: bool,
    /// The operator's prepared form (empty when it runs from its streams).
    pub prepared: &'r [u8],
    /// The pooling fused into a prepared convolution (`y` is then the pooling's output).
    pub pool: Option<fuse::Pool>,
}

/// An operator's memory split for its kernel.
pub(crate) struct Parts<'p> {
    pub x: &'p [u8],
    pub y: &'p mut [u8],
    /// The kernel's own scratch.
    pub own: &'p mut [u8],
    /// The streams' decoding memory.
    pub streams: Scratch<'p>,
}

impl Io<'_> {
    /// Splits the scratch into the kernel's `own` bytes and the streams' decoding memory.
    pub fn parts(&mut self, own: usize) -> Result<Parts<'_>> {
        let arena = self.arena_decoding;
        if own > self.scratch.len() {
            return Err(Error::Overflow);
        }
        let (a, b) = self.scratch.split_at_mut(own);
        Ok(Parts {
            x: self.x,
            y: &mut *self.y,
            own: a,
            streams: Scratch { bytes: b, arena },
        })
    }
}

/// Runs operator `index` on the integer path.
pub(crate) fn run_int8(op: &Op, index: u16, t: &Tensors, flags: u16, io: &mut Io) -> Result<()> {
    if flags & FLAG_INT == 0 {
        return Err(Error::PathUnavailable);
    }
    match op.kind {
        OpKind::FullyConnected => fully_connected::run_int8(op, index, t, flags, io),
        OpKind::Conv2d => conv_2d::run_int8(op, index, t, flags, io),
        OpKind::DepthwiseConv2d => depthwise_conv_2d::run_int8(op, index, t, flags, io),
        OpKind::Add => add::run_int8(op, t, io),
        OpKind::MaxPool2d => max_pool_2d::run_int8(op, index, t, io),
        OpKind::AveragePool2d => average_pool_2d::run_int8(op, index, t, io),
        OpKind::Reshape => Ok(()),
        OpKind::Softmax => softmax::run_int8(op, t, io),
    }
}

/// Runs operator `index` on the f32 path.
#[cfg(not(feature = "integer-only"))]
pub(crate) fn run_f32(op: &Op, index: u16, t: &Tensors, flags: u16, io: &mut Io) -> Result<()> {
    match op.kind {
        OpKind::FullyConnected => fully_connected::run_f32(op, index, t, flags, io),
        OpKind::Conv2d => conv_2d::run_f32(op, index, t, flags, io),
        OpKind::DepthwiseConv2d => depthwise_conv_2d::run_f32(op, index, t, flags, io),
        OpKind::Add => add::run_f32(op, io),
        OpKind::MaxPool2d => max_pool_2d::run_f32(op, index, t, io),
        OpKind::AveragePool2d => average_pool_2d::run_f32(op, index, t, io),
        OpKind::Reshape => Ok(()),
        OpKind::Softmax => softmax::run_f32(op, t, io),
    }
}

/// The fused activation on the f32 path.
#[cfg(not(feature = "integer-only"))]
#[inline(always)]
pub(crate) fn activate(a: Activation, v: f32) -> f32 {
    match a {
        Activation::None => v,
        Activation::Relu => v.max(0.0),
        Activation::Relu6 => v.clamp(0.0, 6.0),
    }
}

/// The integer path's clamp as i32 bounds.
#[inline(always)]
pub(crate) fn clamp_range(op: &Op) -> (i32, i32) {
    (i32::from(op.range.0), i32::from(op.range.1))
}

/// `f32` `i` of a little-endian buffer (0 out of range).
#[cfg(not(feature = "integer-only"))]
#[inline(always)]
pub(crate) fn get(buf: &[u8], i: usize) -> f32 {
    crate::bytes::f32_at(buf, i)
}

/// Stores `f32` `i` of a little-endian buffer (nothing out of range).
#[cfg(not(feature = "integer-only"))]
#[inline(always)]
pub(crate) fn set(buf: &mut [u8], i: usize, v: f32) {
    if let Some(b) = buf.get_mut(4 * i..4 * i + 4) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

/// `int8` `i` of a buffer as i32 (`fallback` out of range).
#[inline(always)]
pub(crate) fn get_i8(buf: &[u8], i: usize, fallback: i32) -> i32 {
    buf.get(i).map_or(fallback, |&b| i32::from(b as i8))
}

/// A shape mismatch of operator `op`.
pub(crate) fn mismatch(op: u16, expected: usize, found: usize) -> Error {
    Error::ShapeMismatch {
        op,
        expected: expected.min(u32::MAX as usize) as u32,
        found: found.min(u32::MAX as usize) as u32,
    }
}
