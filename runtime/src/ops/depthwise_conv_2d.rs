//! DEPTHWISE_CONV_2D: NHWC input `[h, w, c]`, one filter of `kh · kw` weights per output channel `c · m + j`
//! (depth multiplier m; weights stored one row per output channel), stride, explicit padding, dilation 1.
//! The kernels are `spatial`'s, shared with CONV_2D.

use super::spatial::{self, Cells, Layout};
use super::window::Geometry;
use super::{Io, Needs, Op, Tensors};
use crate::error::{Error, Result, Section};

/// The window geometry, the depth multiplier and the weight matrix's shape (output channels, fan-in).
fn layout(op: &Op, index: u16, t: &Tensors) -> Result<Layout> {
    let m = match op.params {
        super::Params::Depthwise(_, m) => usize::from(m),
        _ => 0,
    };
    if m == 0 {
        return Err(Error::InvalidValue {
            section: Section::Operator(index),
            field: "depth multiplier",
            value: 0,
        });
    }
    let oc = t.input.shape.last().saturating_mul(m);
    let g = Geometry::new(op.window(), t.input.shape, t.output.shape, oc, index)?;
    Ok(Layout {
        dims: (oc, g.kh * g.kw),
        g,
        cells: Cells::Depthwise(m),
    })
}

/// Checks the window and the depth multiplier against the tensors and the weights against the window.
#[inline(never)]
pub(crate) fn prepare(op: &Op, index: u16, t: &Tensors, flags: u16) -> Result<Needs> {
    spatial::prepare(op, index, t, flags, &layout(op, index, t)?)
}

/// Writes the prepared form of the sparse weights.
pub(crate) fn fill_prepared(
    op: &Op,
    index: u16,
    t: &Tensors,
    flags: u16,
    mem: &mut [u8],
) -> Result<()> {
    spatial::fill_prepared(op, index, t, flags, mem, &layout(op, index, t)?)
}

/// The integer kernel.
#[inline(never)]
pub(crate) fn run_int8(op: &Op, index: u16, t: &Tensors, flags: u16, io: &mut Io) -> Result<()> {
    spatial::run_op_int8(op, index, t, flags, io, &layout(op, index, t)?)
}

/// The f32 kernel.
#[cfg(not(feature = "integer-only"))]
#[inline(never)]
pub(crate) fn run_f32(op: &Op, index: u16, t: &Tensors, flags: u16, io: &mut Io) -> Result<()> {
    spatial::run_op_f32(op, index, t, flags, io, &layout(op, index, t)?)
}
