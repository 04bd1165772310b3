//! The kernels CONV_2D and DEPTHWISE_CONV_2D share. Weights come as taps per output channel (any encoding, see
//! `taps`); each tap is added over the output pixels its window cell reaches inside the input (padding is never
//! read, which is TFLite's semantics: a padded cell contributes nothing), into one plane of accumulators in the
//! operator's scratch; a finished channel is requantized (integer path) or scaled (f32 path) into the NHWC
//! output. Activations are NHWC, so a tap's input pixels lie `stride · channels` apart.

use super::depthwise_int8;
use super::dot::{
    dot1, dot_rows, wide_rows_table, wide_rows_to_i8, widen_paired, widen_pairs, GROUPED, PAIRED,
    ROWS,
};
use super::window::Geometry;
use super::{prepared, Io, Needs, Op, Tensors};
use crate::error::{Error, Result};
use crate::quant::{Channel, Output, BLOCK};
use crate::taps::row_taps;
use crate::weights::Payload;
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
    pub(crate) fn cell(self, g: &Geometry, row: usize, col: usize) -> (usize, usize, usize) {
        match self {
            Cells::Conv => {
                let per_row = g.kw * g.ic;
                (col / per_row, col / g.ic % g.kw, col % g.ic)
            }
            Cells::Depthwise(m) => (col / g.kw, col % g.kw, row / m.max(1)),
        }
    }
}

/// A convolution as its operator file describes it: the geometry, how columns map onto the window, and the
/// weight matrix's (rows, fan-in).
pub(crate) struct Layout {
    pub g: Geometry,
    pub cells: Cells,
    pub dims: (usize, usize),
}

/// `prepare` of either convolution: the weights checked against the layout; the scratch is one plane of 32-bit
/// accumulators, except on the integer path with dense int8 weights (computed output by output).
pub(crate) fn prepare(op: &Op, index: u16, t: &Tensors, flags: u16, l: &Layout) -> Result<Needs> {
    let w = super::weights(op, index, t, flags, l.dims, true)?;
    let plane = l.g.plane().checked_mul(4).ok_or(Error::Overflow)?;
    let int_plane = match w.payload {
        Payload::DenseI8(_) => 0,
        _ => plane,
    };
    let layout = prepared::Layout::of(&w, flags, groups(&l.g), t.input.shape.len());
    super::weighted(&w, [plane, int_plane], layout)
}

/// The prepared form's windows: as many whole window rows as fit in 256 bytes, or pieces of one row.
fn groups(g: &Geometry) -> Option<prepared::Groups> {
    prepared::Groups::new(g.kh, g.kw * g.ic, g.iw * g.ic)
}

/// The prepared form's shape, for an operator that has one.
fn prepared_shape(w: &Weights, g: &Geometry, t: &Tensors) -> Result<prepared::Layout> {
    prepared::Layout::shape(w, groups(g), t.input.shape.len()).ok_or(Error::PathUnavailable)
}

/// Writes either convolution's prepared form: a weight's place in the window is its cell's
/// (ky, kx · channels + c).
pub(crate) fn fill_prepared(
    op: &Op,
    index: u16,
    t: &Tensors,
    flags: u16,
    mem: &mut [u8],
    l: &Layout,
) -> Result<()> {
    let w = super::weights(op, index, t, flags, l.dims, false)?;
    let layout = prepared_shape(&w, &l.g, t)?;
    let zp = i32::from(t.input.zero_point);
    let cell = |o: usize, col: usize| {
        let (ky, kx, c) = l.cells.cell(&l.g, o, col);
        (ky, kx * l.g.ic + c)
    };
    prepared::fill(&layout, &w, index, zp, cell, mem)
}

/// The integer kernel of either convolution: dense int8 weights directly, others by taps over a plane.
pub(crate) fn run_op_int8(
    op: &Op,
    index: u16,
    t: &Tensors,
    flags: u16,
    io: &mut Io,
    l: &Layout,
) -> Result<()> {
    let w = super::weights(op, index, t, flags, l.dims, false)?;
    let q = w.quant.ok_or(Error::PathUnavailable)?;
    let zps = (
        i32::from(t.input.zero_point),
        i32::from(t.output.zero_point),
    );
    let range = super::clamp_range(op);
    if let (Payload::Sparse(_), false, true) =
        (w.payload, io.prepared.is_empty(), prepared::PREPARE)
    {
        let layout = prepared_shape(&w, &l.g, t)?;
        let (mem, pool) = (io.prepared, io.pool);
        let p = io.parts(layout.scratch().ok_or(Error::Overflow)?)?;
        let out = prepared::Out {
            zero_point: zps.1,
            range: pool.map_or(range, |p| p.range),
        };
        let x = (p.x, p.own, zps.0);
        match pool {
            Some(pool) => prepared::conv_pooled(&l.g, &layout, mem, x, (out, &pool), p.y),
            None => prepared::conv(&l.g, &layout, mem, x, out, p.y),
        }
        return Ok(());
    }
    if io.pool.is_some() {
        return Err(Error::PathUnavailable);
    }
    if let Payload::DenseI8(ws) = w.payload {
        let p = io.parts(0)?;
        run_dense_int8(
            &l.g,
            l.cells,
            (ws, l.dims.1),
            &q,
            zps,
            range,
            (p.x, p.y),
            GROUPED,
        );
        return Ok(());
    }
    let p = io.parts(4 * l.g.plane())?;
    run_int8(
        &l.g,
        l.cells,
        &w,
        &q,
        zps,
        range,
        (p.x, p.y),
        p.own,
        &mut { p.streams },
        index,
    )
}

/// The f32 kernel of either convolution.
#[cfg(not(feature = "integer-only"))]
pub(crate) fn run_op_f32(
    op: &Op,
    index: u16,
    t: &Tensors,
    flags: u16,
    io: &mut Io,
    l: &Layout,
) -> Result<()> {
    let w = super::weights(op, index, t, flags, l.dims, false)?;
    let p = io.parts(4 * l.g.plane())?;
    run_f32(
        &l.g,
        l.cells,
        &w,
        op.activation,
        (p.x, p.y),
        p.own,
        &mut { p.streams },
        index,
    )
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
            chunk_int8(g, cells, o, taps, zp_in, x, plane);
        },
    )?;
    while next < w.outputs {
        flush(next, plane, y);
        next += 1;
    }
    Ok(())
}

/// The output positions `[lo, hi)` along one axis whose whole window lies inside the input.
pub(crate) fn interior(
    pad: usize,
    stride: usize,
    k: usize,
    input: usize,
    n: usize,
) -> (usize, usize) {
    let s = stride.max(1);
    let lo = pad.div_ceil(s).min(n);
    let hi = if input + pad >= k {
        ((input + pad - k) / s + 1).min(n)
    } else {
        0
    };
    (lo, hi.max(lo))
}

/// Adds one chunk of channel `o`'s taps to its plane, output pixel by output pixel: inside the input's
/// interior each pixel is a dot product over the chunk with its accumulator in a register,
/// `Σ v·x − zp·Σ v` (one load and one multiply-add per weight); border pixels test each cell.
#[inline(always)]
fn chunk_int8(
    g: &Geometry,
    cells: Cells,
    o: usize,
    taps: &[(u32, i32)],
    zp: i32,
    x: &[u8],
    plane: &mut [u8],
) {
    // Offset of each tap from its window's top-left input pixel, its cell, and the sum of the weights.
    let mut offsets = [(0usize, 0i32); crate::taps::TAPS];
    let mut cell = [(0usize, 0usize, 0usize); crate::taps::TAPS];
    let mut sum_v = 0i32;
    let n = taps.len().min(crate::taps::TAPS);
    for (k, &(col, v)) in taps.iter().take(n).enumerate() {
        let (ky, kx, c) = cells.cell(g, o, col as usize);
        offsets[k] = ((ky * g.iw + kx) * g.ic + c, v);
        cell[k] = (ky, kx, c);
        sum_v = sum_v.wrapping_add(v);
    }
    let (offsets, cell) = (&offsets[..n], &cell[..n]);
    let (y0, y1) = interior(g.pt, g.sh, g.kh, g.ih, g.oh);
    let (x0, x1) = interior(g.pl, g.sw, g.kw, g.iw, g.ow);
    let correction = zp.wrapping_mul(sum_v);
    let mut add = |oy: usize, ox: usize, v: i32| {
        let at = 4 * (oy * g.ow + ox);
        if let Some(a) = plane.get_mut(at..at + 4) {
            let acc = i32::from_le_bytes([a[0], a[1], a[2], a[3]]).wrapping_add(v);
            a.copy_from_slice(&acc.to_le_bytes());
        }
    };
    let step = g.sw * g.ic;
    for oy in 0..g.oh {
        let inside = (y0..y1).contains(&oy);
        let (lo, hi) = if inside { (x0, x1) } else { (g.ow, g.ow) };
        for ox in (0..lo).chain(hi..g.ow) {
            add(oy, ox, border_int8(g, (oy, ox), offsets, cell, zp, x));
        }
        if lo >= hi {
            continue;
        }
        // The row's interior: PIXELS output pixels per pass over the taps, `step` bytes apart in the input.
        let base = ((oy * g.sh - g.pt) * g.iw + lo * g.sw - g.pl) * g.ic;
        let xs = x.get(base..).unwrap_or(&[]);
        let mut ox = lo;
        while ox + PIXELS <= hi {
            let sums = interior_sums(offsets, xs.get((ox - lo) * step..).unwrap_or(&[]), step);
            for (k, s) in sums.into_iter().enumerate() {
                add(oy, ox + k, s.wrapping_sub(correction));
            }
            ox += PIXELS;
        }
        for ox in ox..hi {
            let xs = xs.get((ox - lo) * step..).unwrap_or(&[]);
            let mut s = 0i32;
            for &(offset, v) in offsets {
                s = s.wrapping_add(v * xs.get(offset).map_or(0, |&b| i32::from(b as i8)));
            }
            add(oy, ox, s.wrapping_sub(correction));
        }
    }
}

/// Output pixels of a row computed per pass over a chunk's taps by [`interior_sums`].
const PIXELS: usize = 4;

/// `Σ v · x[offset + k · step]` over the taps for `k < PIXELS`: one load of each tap for `PIXELS` multiply-adds,
/// the accumulators in registers. A missing input byte (impossible inside the interior) counts as zero.
#[inline(always)]
fn interior_sums(offsets: &[(usize, i32)], xs: &[u8], step: usize) -> [i32; PIXELS] {
    let mut s = [0i32; PIXELS];
    if step == 1 {
        // The pixels' inputs are adjacent (one input channel, stride 1): one bounds check per tap.
        for &(offset, v) in offsets {
            let w = xs.get(offset..offset.wrapping_add(PIXELS)).unwrap_or(&[]);
            if let Ok(w) = <&[u8; PIXELS]>::try_from(w) {
                for (acc, &b) in s.iter_mut().zip(w) {
                    *acc = acc.wrapping_add(v * i32::from(b as i8));
                }
            }
        }
        return s;
    }
    for &(offset, v) in offsets {
        let mut at = offset;
        for acc in s.iter_mut() {
            if let Some(&b) = xs.get(at) {
                *acc = acc.wrapping_add(v * i32::from(b as i8));
            }
            at = at.wrapping_add(step);
        }
    }
    s
}

/// The chunk's contribution to a border pixel: only the cells inside the input count.
#[inline(never)]
fn border_int8(
    g: &Geometry,
    (oy, ox): (usize, usize),
    offsets: &[(usize, i32)],
    cell: &[(usize, usize, usize)],
    zp: i32,
    x: &[u8],
) -> i32 {
    let mut s = 0i32;
    for (&(_, v), &(ky, kx, c)) in offsets.iter().zip(cell) {
        let (iy, ix) = (
            (oy * g.sh + ky).checked_sub(g.pt),
            (ox * g.sw + kx).checked_sub(g.pl),
        );
        if let (Some(iy), Some(ix)) = (iy, ix) {
            if iy < g.ih && ix < g.iw {
                let xb = x
                    .get((iy * g.iw + ix) * g.ic + c)
                    .map_or(zp, |&b| i32::from(b as i8));
                s = s.wrapping_add(v * (xb - zp));
            }
        }
    }
    s
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

/// Integer path, dense int8 weights (`fan_in` per output channel): each output computed directly, as TFLite's
/// reference kernels do, so no plane of accumulators (and no scratch) is needed. A convolution of up to
/// [`IM2COL`] weights per channel runs [`run_im2col_int8`], a depthwise convolution of up to
/// `depthwise_int8::CELLS` cells `depthwise_int8::run`; the general loop below takes the rest: per output pixel
/// the window's valid cells are found once, a convolution then reads each cell's channels as one contiguous run
/// of weights and inputs, a depthwise convolution walks its channels with a cell's weight and input a fixed
/// stride apart.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_dense_int8(
    g: &Geometry,
    cells: Cells,
    (weights, fan_in): (&[u8], usize),
    q: &Quant,
    (zp_in, zp_out): (i32, i32),
    range: (i32, i32),
    (x, y): (&[u8], &mut [u8]),
    grouped: bool,
) {
    let wq = (weights, fan_in);
    match cells {
        Cells::Conv if fan_in <= IM2COL => {
            return run_im2col_int8(g, wq, q, (zp_in, zp_out), range, (x, y), grouped);
        }
        Cells::Depthwise(m)
            if fan_in <= depthwise_int8::CELLS && g.ic.checked_mul(m) == Some(g.oc) =>
        {
            return depthwise_int8::run(g, wq, q, (zp_in, zp_out), range, (x, y));
        }
        _ => {}
    }
    for oy in 0..g.oh {
        let (y0, y1) = g.cells_y(oy);
        for ox in 0..g.ow {
            let (x0, x1) = g.cells_x(ox);
            let out = y
                .get_mut((oy * g.ow + ox) * g.oc..(oy * g.ow + ox + 1) * g.oc)
                .unwrap_or(&mut []);
            // Input index of cell (ky, kx): origin + ky·row + kx·ic.
            let origin = ((oy * g.sh + y0 - g.pt) * g.iw + ox * g.sw + x0 - g.pl) * g.ic;
            let window = Window {
                y: (y0, y1),
                x: (x0, x1),
                origin,
                row: g.iw * g.ic,
            };
            let row = |o: usize| weights.get(o * fan_in..(o + 1) * fan_in).unwrap_or(&[]);
            let value = |acc: i32, o: usize| q.output(acc, o, zp_out, range);
            // A convolution's channels `ROWS` at a time when `grouped` (each input value loaded once for several
            // weights, `dot::dot_rows`); one at a time otherwise, and for depthwise channels (one input each).
            let groups = match cells {
                Cells::Conv if grouped => g.oc / ROWS,
                _ => 0,
            };
            for (k, ds) in out.chunks_exact_mut(ROWS).take(groups).enumerate() {
                let o = k * ROWS;
                let acc = dense_conv_sums_rows(
                    g,
                    &window,
                    core::array::from_fn(|r| row(o + r)),
                    x,
                    zp_in,
                );
                for (r, (d, a)) in ds.iter_mut().zip(acc).enumerate() {
                    *d = value(a, o + r);
                }
            }
            for (o, d) in out.iter_mut().enumerate().skip(groups * ROWS) {
                let acc = match cells {
                    Cells::Conv => dense_conv_cell_sums(g, &window, row(o), x, zp_in),
                    Cells::Depthwise(m) => dense_dw_sum(g, &window, row(o), x, zp_in, o / m.max(1)),
                };
                *d = value(acc, o);
            }
        }
    }
}

/// The valid cells of one output pixel's window.
struct Window {
    y: (usize, usize),
    x: (usize, usize),
    /// Input index of cell (y.0, x.0), channel 0.
    origin: usize,
    /// Input elements per row.
    row: usize,
}

/// Columns of the receptive field [`run_im2col_int8`] widens on the stack (2 KB); larger fan-ins run row by row.
const IM2COL: usize = 1024;

/// Dense CONV_2D, one output pixel at a time: its receptive field copied into one contiguous column of `x − zp`
/// (cells outside the input hold 0, so they add nothing), widened to 16 bits once per pixel, then the channels
/// against it `ROWS` at a time (`dot::wide_rows_to_i8`), a block of [`BLOCK`] channels' requantization decoded
/// once. CMSIS-NN's im2col: the dot products' set-up is paid once per pixel and group instead of once per kernel
/// row (measured on the Cortex-M3: 105 instructions per call, LeNet-5's conv1 having five-byte rows), and the
/// inputs' offset and sign extension once per pixel instead of once per group.
fn run_im2col_int8(
    g: &Geometry,
    (weights, fan_in): (&[u8], usize),
    q: &Quant,
    (zp_in, zp_out): (i32, i32),
    range: (i32, i32),
    (x, y): (&[u8], &mut [u8]),
    grouped: bool,
) {
    let mut column = [0i16; IM2COL];
    let col = column.get_mut(..fan_in).unwrap_or(&mut []);
    let out = Output::new(zp_out, range);
    let mut table = [Channel::default(); BLOCK];
    let mut block = [0i32; BLOCK];
    // Channels a block at a time, each block's requantization decoded once; the pixels' columns are written
    // again for each block (once for layers of up to `BLOCK` channels).
    for first in (0..g.oc).step_by(BLOCK) {
        let chans: &[Channel] = q.channels(first, g.oc, &mut table);
        let ws = weights.get(first * fan_in..).unwrap_or(&[]);
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                // With four channels per cell every kernel row starts a group of four: written paired at once.
                let paired = PAIRED && g.ic % 4 == 0;
                receptive_field(g, (oy, ox), (x, zp_in), col, paired);
                if !paired {
                    widen_pairs(col);
                }
                let at = (oy * g.ow + ox) * g.oc + first;
                let ys = y.get_mut(at..at + chans.len()).unwrap_or(&mut []);
                if grouped {
                    // The pixel's sums first, then their requantization in one loop over the table
                    // (`quant::outputs_of_table`: on the Cortex-M4, DS-CNN, ~33 instructions per output
                    // requantized group by group, 21 in the loop).
                    wide_rows_table(ws, col, (chans, &out), &mut block, ys);
                } else {
                    wide_rows_to_i8(ws, col, (chans, &out), ys, grouped);
                }
            }
        }
    }
}

/// Writes output pixel `(oy, ox)`'s receptive field as `x − zero_point`, `(ky, kx, c)` in the weights' order,
/// into `col`; cells outside the input (padding) get 0.
#[inline(always)]
fn receptive_field(
    g: &Geometry,
    (oy, ox): (usize, usize),
    (x, zero_point): (&[u8], i32),
    col: &mut [i16],
    paired: bool,
) {
    let (y0, y1) = g.cells_y(oy);
    let (x0, x1) = g.cells_x(ox);
    let run = g.kw * g.ic;
    let (inside, left) = ((x1 - x0) * g.ic, x0 * g.ic);
    if (y0, x0, y1, x1) != (0, 0, g.kh, g.kw) {
        col.fill(0);
    }
    let zp = zero_point as i16;
    // Cell (y0, x0) is inside the input: its row and column are not negative. Each kernel row after it starts
    // an input row later in `x` and a kernel row later in `col`.
    let mut from = ((oy * g.sh + y0 - g.pt) * g.iw + ox * g.sw + x0 - g.pl) * g.ic;
    let mut to = y0 * run + left;
    for _ in y0..y1 {
        let (f, t) = (from, to);
        (from, to) = (from + g.iw * g.ic, to + run);
        if let (Some(d), Some(s)) = (col.get_mut(t..t + inside), x.get(f..f + inside)) {
            if paired {
                widen_paired(d, s, zero_point);
                continue;
            }
            for (d, &s) in d.iter_mut().zip(s) {
                *d = i16::from(s as i8) - zp;
            }
        }
    }
}

/// Σ w·(x − zp) of a convolution over the window's valid cells: for each kernel row, the valid cells' channels
/// are one contiguous run in the input and in the weights (NHWC and OHWI), so each row is one dot product.
#[inline(always)]
fn dense_conv_cell_sums(g: &Geometry, win: &Window, w: &[u8], x: &[u8], zp: i32) -> i32 {
    let mut acc = 0i32;
    let run = (win.x.1 - win.x.0) * g.ic;
    let mut at = win.origin;
    for ky in win.y.0..win.y.1 {
        let wk = (ky * g.kw + win.x.0) * g.ic;
        let ws = w.get(wk..wk + run).unwrap_or(&[]);
        acc = acc.wrapping_add(dot1(ws, x.get(at..at + run).unwrap_or(&[]), zp));
        at += win.row;
    }
    acc
}

/// [`dense_conv_cell_sums`] for [`ROWS`] output channels at once: each kernel row's run of inputs against the
/// channels' runs of weights.
#[inline(always)]
fn dense_conv_sums_rows(
    g: &Geometry,
    win: &Window,
    w: [&[u8]; ROWS],
    x: &[u8],
    zp: i32,
) -> [i32; ROWS] {
    let mut acc = [0i32; ROWS];
    let run = (win.x.1 - win.x.0) * g.ic;
    let mut at = win.origin;
    for ky in win.y.0..win.y.1 {
        let wk = (ky * g.kw + win.x.0) * g.ic;
        let ws = w.map(|r| r.get(wk..wk + run).unwrap_or(&[]));
        dot_rows(ws, x.get(at..at + run).unwrap_or(&[]), zp, &mut acc);
        at += win.row;
    }
    acc
}

/// Σ w·(x − zp) of one depthwise channel (`c` in the input) over the window's valid cells.
#[inline(always)]
fn dense_dw_sum(g: &Geometry, win: &Window, w: &[u8], x: &[u8], zp: i32, c: usize) -> i32 {
    let mut acc = 0i32;
    let mut at_row = win.origin + c;
    for ky in win.y.0..win.y.1 {
        let ws = w
            .get(ky * g.kw + win.x.0..ky * g.kw + win.x.1)
            .unwrap_or(&[]);
        let mut at = at_row;
        for &a in ws {
            let b = x.get(at).map_or(zp, |&b| i32::from(b as i8));
            acc = acc.wrapping_add(i32::from(a as i8) * (b - zp));
            at += g.ic;
        }
        at_row += win.row;
    }
    acc
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::ops::dot::tests::{le_i32s, test_bytes};

    #[test]
    fn channels_in_groups_give_what_channels_one_at_a_time_give() {
        // 7×6×3 input, 3×3 window, stride 2, padding 1 on top and left: interior and border pixels; 7 channels.
        let g = Geometry {
            ih: 7,
            iw: 6,
            ic: 3,
            oh: 4,
            ow: 3,
            oc: 7,
            kh: 3,
            kw: 3,
            sh: 2,
            sw: 2,
            pt: 1,
            pl: 1,
        };
        let fan_in = 27;
        let ws: std::vec::Vec<u8> = (0..7)
            .flat_map(|o| test_bytes(o, fan_in)[..fan_in].to_vec())
            .collect();
        let x: std::vec::Vec<u8> = (0..3)
            .flat_map(|k| test_bytes(50 + k, 42)[..42].to_vec())
            .collect();
        let mult = le_i32s(7, |o| 1 << 30 | o << 21);
        let shifts = le_i32s(7, |o| -(o % 2) - 5);
        let bias = le_i32s(7, |o| o * 91 - 300);
        let q = Quant {
            per_channel: true,
            multipliers: &mult,
            shifts: &shifts,
            bias: &bias,
        };
        let (mut one, mut grouped) = ([0u8; 84], [0u8; 84]);
        for (y, grouped_run) in [(&mut one, false), (&mut grouped, true)] {
            run_dense_int8(
                &g,
                Cells::Conv,
                (&ws, fan_in),
                &q,
                (5, -2),
                (-128, 127),
                (&x, y),
                grouped_run,
            );
        }
        assert_eq!(one, grouped);
        assert!(
            one.iter().any(|&v| v != one[0]),
            "a test that can fail: {one:?}"
        );
    }
}
