//! CONV_2D: NHWC input `[h, w, c]`, OHWI weights (one row of `kh · kw · c` per output channel), stride, explicit
//! padding (SAME and VALID are the writer's choice of pads), dilation 1, per-channel int8 on the integer path.

use super::spatial::{self, Cells};
use super::window::Geometry;
use super::{Io, Op, Prepared, Tensors};
use crate::error::Result;

/// The window geometry and the weight matrix's shape (output channels, fan-in).
fn shape(op: &Op, index: u16, t: &Tensors) -> Result<(Geometry, (usize, usize))> {
    let oc = t.output.shape.last();
    let g = Geometry::new(op.window(), t.input.shape, t.output.shape, oc, index)?;
    Ok((g, (oc, g.kh * g.kw * g.ic)))
}

/// Checks the window against the tensors and the weights against the window; the scratch is one plane of
/// 32-bit accumulators on either path.
#[inline(never)]
pub(crate) fn prepare(op: &Op, index: u16, t: &Tensors, flags: u16) -> Result<Prepared> {
    let (g, dims) = shape(op, index, t)?;
    let w = super::weights(op, index, t, flags, dims, true)?;
    let plane = g.plane().checked_mul(4).ok_or(crate::Error::Overflow)?;
    // Dense int8 weights run directly on the integer path (no plane of accumulators).
    let int_plane = match w.payload {
        crate::weights::Payload::DenseI8(_) => 0,
        _ => plane,
    };
    super::weighted(&w, [plane, int_plane])
}

/// The integer kernel.
#[inline(never)]
pub(crate) fn run_int8(op: &Op, index: u16, t: &Tensors, flags: u16, io: &mut Io) -> Result<()> {
    let (g, dims) = shape(op, index, t)?;
    let w = super::weights(op, index, t, flags, dims, false)?;
    let q = w.quant.ok_or(crate::Error::PathUnavailable)?;
    let zps = (
        i32::from(t.input.zero_point),
        i32::from(t.output.zero_point),
    );
    let range = super::clamp_range(op);
    if let crate::weights::Payload::DenseI8(ws) = w.payload {
        let p = io.parts(0)?;
        spatial::run_dense_int8(&g, Cells::Conv, ws, &q, zps, range, (p.x, p.y), dims.1);
        return Ok(());
    }
    let p = io.parts(4 * g.plane())?;
    let xy = (p.x, p.y);
    spatial::run_int8(
        &g,
        Cells::Conv,
        &w,
        &q,
        zps,
        range,
        xy,
        p.own,
        &mut { p.streams },
        index,
    )
}

/// The f32 kernel.
#[cfg(not(feature = "integer-only"))]
#[inline(never)]
pub(crate) fn run_f32(op: &Op, index: u16, t: &Tensors, flags: u16, io: &mut Io) -> Result<()> {
    let (g, dims) = shape(op, index, t)?;
    let w = super::weights(op, index, t, flags, dims, false)?;
    let p = io.parts(4 * g.plane())?;
    let xy = (p.x, p.y);
    spatial::run_f32(
        &g,
        Cells::Conv,
        &w,
        op.activation,
        xy,
        p.own,
        &mut { p.streams },
        index,
    )
}
