//! AVERAGE_POOL_2D: the mean of each window over NHWC input, per channel, over the cells inside the input
//! (padded cells are not counted). The integer path divides with rounding half away from zero and clamps to the
//! fused activation's range, as TFLite's `reference_integer_ops::AveragePool` does; input and output share one
//! scale and zero point there, so no rescaling.

use super::max_pool_2d::{geometry, windows};
use super::{Io, Op, Tensors};
use crate::error::Result;

/// Checks the window against the tensors.
#[inline(never)]
pub(crate) fn prepare(op: &Op, index: u16, t: &Tensors) -> Result<()> {
    geometry(op, index, t).map(|_| ())
}

/// The integer kernel.
#[inline(never)]
pub(crate) fn run_int8(op: &Op, index: u16, t: &Tensors, io: &mut Io) -> Result<()> {
    let g = geometry(op, index, t)?;
    let (lo, hi) = super::clamp_range(op);
    let (x, y) = (io.x, &mut *io.y);
    windows(&g, |o, cells| {
        let mut sum = 0i32;
        cells.for_each(|i| sum = sum.wrapping_add(super::get_i8(x, i, 0)));
        let n = (cells.count() as i32).max(1);
        let mean = if sum > 0 {
            (sum + n / 2) / n
        } else {
            (sum - n / 2) / n
        };
        if let Some(d) = y.get_mut(o) {
            *d = mean.clamp(lo, hi) as i8 as u8;
        }
    });
    Ok(())
}

/// The f32 kernel.
#[cfg(not(feature = "integer-only"))]
#[inline(never)]
pub(crate) fn run_f32(op: &Op, index: u16, t: &Tensors, io: &mut Io) -> Result<()> {
    let g = geometry(op, index, t)?;
    let (x, y) = (io.x, &mut *io.y);
    windows(&g, |o, cells| {
        let mut sum = 0f32;
        cells.for_each(|i| sum += super::get(x, i));
        let n = cells.count().max(1) as f32;
        super::set(y, o, super::activate(op.activation, sum / n));
    });
    Ok(())
}
