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
    let mean = |sum: i32, n: usize| {
        let n = (n as i32).max(1);
        let mean = if sum > 0 {
            (sum + n / 2) / n
        } else {
            (sum - n / 2) / n
        };
        mean.clamp(lo, hi) as i8 as u8
    };
    if global(&g) && g.ic <= GLOBAL_CHANNELS {
        // The whole input in one window (the global average pooling of DS-CNN, ResNet, MobileNet): the pixels
        // summed in order into one sum per channel (on the Cortex-M4 DS-CNN's 2,000 elements took ~11 instructions
        // each through the window's cell indices).
        let mut sums = [0i32; GLOBAL_CHANNELS];
        let sums = sums.get_mut(..g.ic).unwrap_or(&mut []);
        for px in x.chunks_exact(g.ic.max(1)).take(g.ih * g.iw) {
            for (s, &v) in sums.iter_mut().zip(px) {
                *s = s.wrapping_add(i32::from(v as i8));
            }
        }
        for (d, &s) in y.iter_mut().zip(sums.iter()) {
            *d = mean(s, g.ih * g.iw);
        }
        return Ok(());
    }
    windows(&g, |o, cells| {
        let mut sum = 0i32;
        cells.for_each(|i| sum = sum.wrapping_add(super::get_i8(x, i, 0)));
        if let Some(d) = y.get_mut(o) {
            *d = mean(sum, cells.count());
        }
    });
    Ok(())
}

/// Channels the global pooling's sums hold on the stack (1 KB); wider inputs take the windows' path.
const GLOBAL_CHANNELS: usize = 256;

/// Whether the window is the whole input: one output pixel, no padding.
fn global(g: &super::window::Geometry) -> bool {
    (g.oh, g.ow, g.pt, g.pl, g.kh, g.kw) == (1, 1, 0, 0, g.ih, g.iw)
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
