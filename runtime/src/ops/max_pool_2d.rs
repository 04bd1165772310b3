//! MAX_POOL_2D: the largest value of each window over NHWC input, per channel; padded cells never take part.
//! The integer path clamps the result to the fused activation's range (TFLite's `reference_integer_ops::MaxPool`).

use super::window::Geometry;
use super::{Io, Op, Tensors};
use crate::error::Result;

/// The window must map the input onto the output, channel for channel.
pub(crate) fn geometry(op: &Op, index: u16, t: &Tensors) -> Result<Geometry> {
    let c = t.input.shape.last();
    Geometry::new(op.window(), t.input.shape, t.output.shape, c, index)
}

/// Checks the window against the tensors.
#[inline(never)]
pub(crate) fn prepare(op: &Op, index: u16, t: &Tensors) -> Result<()> {
    geometry(op, index, t).map(|_| ())
}

/// The input indices of one window's valid cells.
pub(crate) struct Cells {
    rows: usize,
    cols: usize,
    start: usize,
    row_step: usize,
    col_step: usize,
}

impl Cells {
    /// Calls `f` on every cell's input index, row by row.
    #[inline(always)]
    pub fn for_each(&self, mut f: impl FnMut(usize)) {
        let mut r = self.start;
        for _ in 0..self.rows {
            let mut i = r;
            for _ in 0..self.cols {
                f(i);
                i += self.col_step;
            }
            r += self.row_step;
        }
    }

    /// How many there are.
    pub fn count(&self) -> usize {
        self.rows * self.cols
    }
}

/// Calls `f(output index, cells)` for every output element.
#[inline(always)]
pub(crate) fn windows(g: &Geometry, mut f: impl FnMut(usize, &Cells)) {
    for oy in 0..g.oh {
        let (y0, y1) = g.cells_y(oy);
        for ox in 0..g.ow {
            let (x0, x1) = g.cells_x(ox);
            let mut cells = Cells {
                rows: y1 - y0,
                cols: x1 - x0,
                start: 0,
                row_step: g.iw * g.ic,
                col_step: g.ic,
            };
            // Cell (y0, x0) is inside the input: its row and column are not negative.
            let first = ((oy * g.sh + y0 - g.pt) * g.iw + ox * g.sw + x0 - g.pl) * g.ic;
            for c in 0..g.oc {
                cells.start = first + c;
                f((oy * g.ow + ox) * g.oc + c, &cells);
            }
        }
    }
}

/// The integer kernel, a whole pixel at a time: NHWC puts a pixel's channels side by side in the input and in
/// the output, so each valid cell is one run of `channels` bytes max-ed into the output's run (no index
/// arithmetic or bounds check per element; measured on the Cortex-M3: 27 instructions per cell and channel
/// element one element at a time).
#[inline(never)]
pub(crate) fn run_int8(op: &Op, index: u16, t: &Tensors, io: &mut Io) -> Result<()> {
    let g = geometry(op, index, t)?;
    let (lo, hi) = super::clamp_range(op);
    let (x, y) = (io.x, &mut *io.y);
    let c = g.oc;
    for oy in 0..g.oh {
        let (y0, y1) = g.cells_y(oy);
        for ox in 0..g.ow {
            let (x0, x1) = g.cells_x(ox);
            let at = (oy * g.ow + ox) * c;
            let Some(out) = y.get_mut(at..at + c) else {
                continue;
            };
            out.fill(i8::MIN as u8);
            for cy in y0..y1 {
                for cx in x0..x1 {
                    // The cell is inside the input: its row and column are not negative.
                    let from = ((oy * g.sh + cy - g.pt) * g.iw + ox * g.sw + cx - g.pl) * g.ic;
                    let cell = x.get(from..from + c).unwrap_or(&[]);
                    for (d, &v) in out.iter_mut().zip(cell) {
                        if v as i8 > *d as i8 {
                            *d = v;
                        }
                    }
                }
            }
            for d in out.iter_mut() {
                *d = i32::from(*d as i8).clamp(lo, hi) as i8 as u8;
            }
        }
    }
    Ok(())
}

/// The f32 kernel.
#[cfg(not(feature = "integer-only"))]
#[inline(never)]
pub(crate) fn run_f32(op: &Op, index: u16, t: &Tensors, io: &mut Io) -> Result<()> {
    let g = geometry(op, index, t)?;
    let (x, y) = (io.x, &mut *io.y);
    windows(&g, |o, cells| {
        let mut m = f32::NEG_INFINITY;
        cells.for_each(|i| m = m.max(super::get(x, i)));
        super::set(y, o, super::activate(op.activation, m));
    });
    Ok(())
}
