//! The kernels CONV_2D and DEPTHWISE_CONV_2D share. Weights come as taps per output channel (any encoding, see
//! `taps`); each tap is added over the output pixels its window cell reaches inside the input (padding is never
//! read, which is TFLite's semantics: a padded cell contributes nothing), into one plane of accumulators in the
//! operator's scratch; a finished channel is requantized (integer path) or scaled (f32 path) into the NHWC
//! output. Activations are NHWC, so a tap's input pixels lie `stride · channels` apart.

use super::window::Geometry;
use crate::error::Result;
use crate::taps::row_taps;
use crate::weights::{Quant, Scratch, Weights};

/// How a weight column maps onto the window: a convolution's columns are `(ky, kx, c)` (OHWI weights), a
/// depthwise convolution's `(ky, kx)` with the input channel given by the row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cells {
    /// CONV_2D.
    Conv,
    /// DEPTHWISE_CONV_2D with this depth multiplier.
    Depthwise(usize),
}

impl Cells {
    /// (ky, kx, input channel) of column `col` of row `row`.
    #[inline(always)]
    fn cell(self, g: &Geometry, row: usize, col: usize) -> (usize, usize, usize) {
        match self {
            Cells::Conv => {
                let per_row = g.kw * g.ic;
                (col / per_row, col / g.ic % g.kw, col % g.ic)
            }
            Cells::Depthwise(m) => (col / g.kw, col % g.kw, row / m.max(1)),
        }
    }
}

/// Integer path: `y = clamp(requantize(Σ w·(x − zp_in) + bias) + zp_out)` per output channel and pixel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_int8(
    g: &Geometry,
    cells: Cells,
    w: &Weights,
    q: &Quant,
    (zp_in, zp_out): (i32, i32),
    range: (i32, i32),
    (x, y): (&[u8], &mut [u8]),
    plane: &mut [u8],
    scratch: &mut Scratch,
    op: u16,
) -> Result<()> {
    plane.fill(0);
    let flush = |o: usize, plane: &mut [u8], y: &mut [u8]| {
        let bias = crate::bytes::i32_at(q.bias, o);
        let m = q.channel(o);
        for (p, a) in plane.chunks_exact_mut(4).enumerate() {
            let acc = i32::from_le_bytes([a[0], a[1], a[2], a[3]]).wrapping_add(bias);
            if let Some(d) = y.get_mut(p * g.oc + o) {
                *d = crate::quant::to_i8(acc, m, zp_out, range) as u8;
            }
            a.copy_from_slice(&[0; 4]);
        }
    };
    let mut next = 0usize;
    row_taps(
        w,
        op,
        scratch,
        |j| w.dense_i8(j),
        |i| w.shared_i8(i),
        |o, taps| {
            while next < o {
                flush(next, plane, y);
                next += 1;
            }
            for &(col, v) in taps {
                let cell = cells.cell(g, o, col as usize);
                tap_int8(g, cell, v, zp_in, x, plane);
            }
        },
    )?;
    while next < w.outputs {
        flush(next, plane, y);
        next += 1;
    }
    Ok(())
}

/// Adds `v · (x − zp)` of one window cell to every output pixel it reaches.
#[inline(always)]
fn tap_int8(
    g: &Geometry,
    (ky, kx, c): (usize, usize, usize),
    v: i32,
    zp: i32,
    x: &[u8],
    plane: &mut [u8],
) {
    let ((y0, y1), (x0, x1)) = (g.rows(ky), g.cols(kx));
    if x0 >= x1 {
        return;
    }
    let step = g.sw * g.ic;
    for oy in y0..y1 {
        let iy = oy * g.sh + ky - g.pt;
        let first = (iy * g.iw + x0 * g.sw + kx - g.pl) * g.ic + c;
        let Some(out) = plane.get_mut(4 * (oy * g.ow + x0)..4 * (oy * g.ow + x1)) else {
            return;
        };
        let Some(xs) = x.get(first..) else {
            return;
        };
        for (a, &xb) in out.chunks_exact_mut(4).zip(xs.iter().step_by(step)) {
            let acc = i32::from_le_bytes([a[0], a[1], a[2], a[3]]);
            let acc = acc.wrapping_add(v * (i32::from(xb as i8) - zp));
            a.copy_from_slice(&acc.to_le_bytes());
        }
    }
}

/// f32 path: `y = act(scale · Σ w·x + bias)` per output channel and pixel.
#[cfg(not(feature = "integer-only"))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_f32(
    g: &Geometry,
    cells: Cells,
    w: &Weights,
    activation: crate::format::Activation,
    (x, y): (&[u8], &mut [u8]),
    plane: &mut [u8],
    scratch: &mut Scratch,
    op: u16,
) -> Result<()> {
    use super::{activate, get, set};
    plane.fill(0);
    let flush = |o: usize, plane: &mut [u8], y: &mut [u8]| {
        let (scale, bias) = (w.scale(o), w.bias(o));
        for (p, a) in plane.chunks_exact_mut(4).enumerate() {
            set(
                y,
                p * g.oc + o,
                activate(activation, get(a, 0) * scale + bias),
            );
            a.copy_from_slice(&[0; 4]);
        }
    };
    let mut next = 0usize;
    row_taps(
        w,
        op,
        scratch,
        |j| w.dense_f32(j),
        |i| w.shared_f32(i),
        |o, taps| {
            while next < o {
                flush(next, plane, y);
                next += 1;
            }
            for &(col, v) in taps {
                let cell = cells.cell(g, o, col as usize);
                tap_f32(g, cell, v, x, plane);
            }
        },
    )?;
    while next < w.outputs {
        flush(next, plane, y);
        next += 1;
    }
    Ok(())
}

/// Adds `v · x` of one window cell to every output pixel it reaches.
#[cfg(not(feature = "integer-only"))]
#[inline(always)]
fn tap_f32(g: &Geometry, (ky, kx, c): (usize, usize, usize), v: f32, x: &[u8], plane: &mut [u8]) {
    let ((y0, y1), (x0, x1)) = (g.rows(ky), g.cols(kx));
    if x0 >= x1 {
        return;
    }
    let step = 4 * g.sw * g.ic;
    for oy in y0..y1 {
        let iy = oy * g.sh + ky - g.pt;
        let first = 4 * ((iy * g.iw + x0 * g.sw + kx - g.pl) * g.ic + c);
        let Some(out) = plane.get_mut(4 * (oy * g.ow + x0)..4 * (oy * g.ow + x1)) else {
            return;
        };
        let Some(xs) = x.get(first..) else {
            return;
        };
        for (a, xb) in out.chunks_exact_mut(4).zip(xs.chunks(4).step_by(step / 4)) {
            let acc = super::get(a, 0) + v * super::get(xb, 0);
            a.copy_from_slice(&acc.to_le_bytes());
        }
    }
}
