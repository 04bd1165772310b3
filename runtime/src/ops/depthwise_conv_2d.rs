//! DEPTHWISE_CONV_2D: NHWC input `[h, w, c]`, one filter of `kh · kw` weights per output channel `c · m + j`
//! (depth multiplier m; weights stored one row per output channel), stride, explicit padding, dilation 1.

use super::spatial::{self, Cells};
use super::window::Geometry;
use super::{Io, Op, Prepared, Tensors};
use crate::error::Result;

/// The window geometry, the depth multiplier and the weight matrix's shape (output channels, fan-in).
fn shape(op: &Op, index: u16, t: &Tensors) -> Result<(Geometry, Cells, (usize, usize))> {
    let m = match op.params {
        super::Params::Depthwise(_, m) => usize::from(m),
        _ => 0,
    };
    if m == 0 {
        return Err(crate::Error::InvalidValue {
            section: crate::Section::Operator(index),
            field: "depth multiplier",
            value: 0,
        });
    }
    let oc = t.input.shape.last().saturating_mul(m);
    let g = Geometry::new(op.window(), t.input.shape, t.output.shape, oc, index)?;
    Ok((g, Cells::Depthwise(m), (oc, g.kh * g.kw)))
}

/// Checks the window against the tensors and the weights against the window; the scratch is one plane of
/// 32-bit accumulators on either path.
#[inline(never)]
pub(crate) fn prepare(op: &Op, index: u16, t: &Tensors, flags: u16) -> Result<Prepared> {
    let (g, _, dims) = shape(op, index, t)?;
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
    let (g, cells, dims) = shape(op, index, t)?;
    let w = super::weights(op, index, t, flags, dims, false)?;
    let q = w.quant.ok_or(crate::Error::PathUnavailable)?;
    let zps = (
        i32::from(t.input.zero_point),
        i32::from(t.output.zero_point),
    );
    let range = super::clamp_range(op);
    if let crate::weights::Payload::DenseI8(ws) = w.payload {
        let p = io.parts(0)?;
        spatial::run_dense_int8(&g, cells, ws, &q, zps, range, (p.x, p.y), dims.1);
        return Ok(());
    }
    let p = io.parts(4 * g.plane())?;
    let xy = (p.x, p.y);
    spatial::run_int8(
        &g,
        cells,
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
    let (g, cells, dims) = shape(op, index, t)?;
    let w = super::weights(op, index, t, flags, dims, false)?;
    let p = io.parts(4 * g.plane())?;
    let xy = (p.x, p.y);
    spatial::run_f32(
        &g,
        cells,
        &w,
        op.activation,
        xy,
        p.own,
        &mut { p.streams },
        index,
    )
}
