//! CONV_2D: NHWC input `[h, w, c]`, OHWI weights (one row of `kh · kw · c` per output channel), stride, explicit
//! padding (SAME and VALID are the writer's choice of pads), dilation 1, per-channel int8 on the integer path.
//! The kernels are `spatial`'s, shared with DEPTHWISE_CONV_2D.

use super::spatial::{self, Cells, Layout};
use super::window::Geometry;
use super::{Io, Needs, Op, Tensors};
use crate::error::Result;

/// The window geometry and the weight matrix's shape (output channels, fan-in).
fn layout(op: &Op, index: u16, t: &Tensors) -> Result<Layout> {
    let oc = t.output.shape.last();
    let g = Geometry::new(op.window(), t.input.shape, t.output.shape, oc, index)?;
    Ok(Layout {
        dims: (oc, g.kh * g.kw * g.ic),
        g,
        cells: Cells::Conv,
    })
}

/// Checks the window against the tensors and the weights against the window.
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
