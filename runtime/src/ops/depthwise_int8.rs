//! Dense DEPTHWISE_CONV_2D on the integer path (DS-CNN's and MobileNet's layers; a depth multiplier `m` runs as
//! `m` layers of multiplier 1, the k-th writing output channels `c · m + k`), windows of up to [`CELLS`] cells:
//! one output pixel and [`GROUP`] channels at a time. NHWC puts a window cell's channels side by side, so with the
//! filters transposed once per run to `[cell][channel]`, one word load gives four channels' inputs and another
//! their weights. A cell outside the input (padding) reads a row of bytes equal to the input's zero point instead,
//! which adds `zp · w`; taking `zp · Σ w` of the whole filter out of the bias once per run, every pixel runs the
//! whole window with no offset per input and no test per cell (`Σ_valid w·(x − zp) = Σ_all w·x − zp · Σ_all w`,
//! padding's `x` being `zp`; both sides wrap alike).
//!
//! - With DSP (Cortex-M4/M7): the filters widened once into 16-bit lanes in SXTB16's order (channels j, j + 2 in
//!   one word, j + 1, j + 3 in the next); per cell a word of four inputs sign-extended by two SXTB16 and one 16-bit
//!   multiply-add per channel (SMLABB, SMLATT): four multiply-adds in eight instructions with the loads. (CMSIS-NN's
//!   `arm_depthwise_conv_s8_opt` packs pairs of cells for SMLAD instead, with PKHBT/PKHTB, from a column of 16-bit
//!   values it writes per pixel: measured here, pairing cells left too few registers, see BENCHMARKS.md.)
//! - Without (Cortex-M3, hosts): one cell at a time, four multiply-adds of bytes.

use super::lanes::{smlabb, smlatt, sxtb16, sxtb16_ror8};
use super::window::Geometry;
use crate::quant::{Channel, Output, BLOCK};
use crate::weights::Quant;

/// Window cells the kernel takes (4 × 4 at most; larger filters run the general kernel).
pub(crate) const CELLS: usize = 16;

/// Channels computed together, one word of inputs per cell.
const GROUP: usize = 4;

/// Words of the transposed filters on the stack (2 KB).
const TABLE: usize = 512;

/// Whether the DSP kernel runs (Cortex-M4/M7).
const DSP: bool = cfg!(all(target_arch = "arm", target_feature = "dsp"));

/// How the filters lie in the table and which kernel reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// `[group of four channels][cell]`, two words per cell: the four weights as 16-bit lanes (j, j + 2) and
    /// (j + 1, j + 3).
    Halves,
    /// `[group of four channels][cell][channel]`, a word per weight, sign-extended: the Cortex-M3's kernel
    /// multiplies them as they are (`lanes::loops::depthwise_words`: per cell a word of inputs, two double-word
    /// loads of weights, and per channel an extraction and an MLA; with four weights per word, unpacking them had
    /// cost ~31 instructions per cell instead of 14).
    Words,
}

/// One block of channels: the filters as `kernel` reads them, and the requantization with `zp · Σ w` taken out.
struct Block<'t> {
    kernel: Kernel,
    /// Channels in the block, and window cells.
    n: usize,
    cells: usize,
    table: &'t [u32],
    chans: &'t [Channel],
}

/// The kernel: `filters` is the OHWI weight matrix (`cells` weights per channel).
pub(crate) fn run(
    g: &Geometry,
    (filters, cells): (&[u8], usize),
    q: &Quant,
    (zp_in, zp_out): (i32, i32),
    range: (i32, i32),
    (x, y): (&[u8], &mut [u8]),
) {
    let kernel = if DSP { Kernel::Halves } else { Kernel::Words };
    run_with(
        kernel,
        g,
        (filters, cells),
        q,
        (zp_in, Output::new(zp_out, range)),
        (x, y),
    );
}

/// [`run`] with the kernel chosen (the tests run both). Inlined, so that a build links only its target's kernel.
#[inline(always)]
fn run_with(
    kernel: Kernel,
    g: &Geometry,
    (filters, cells): (&[u8], usize),
    q: &Quant,
    (zp_in, out): (i32, Output),
    (x, y): (&[u8], &mut [u8]),
) {
    // A depth multiplier `m` runs as `m` depthwise layers of multiplier 1 over the input's channels: the k-th
    // takes output channels `c · m + k` (NHWC: `m` apart), written through a block-sized buffer when `m > 1`.
    let (c, m) = (g.ic, (g.oc / g.ic.max(1)).max(1));
    // Channels per block: as many as the table holds (two bytes or one per cell and channel), a multiple of the
    // group, at most `BLOCK`.
    let bytes = match kernel {
        Kernel::Halves => 2,
        Kernel::Words => 4,
    };
    let per_block = (4 * TABLE / (bytes * cells).max(1) / GROUP * GROUP).min(BLOCK);
    let padding = [zp_in as u8; BLOCK];
    let (mut table, mut chans) = ([0u32; TABLE], [Channel::default(); BLOCK]);
    let mut window = [&[][..]; CELLS];
    #[cfg(target_arch = "arm")]
    let mut rect = Rect::empty();
    #[cfg(not(target_arch = "arm"))]
    let mut rect = Rect::default();
    let mut spread = [0u8; BLOCK];
    // A pixel's sums, group by group (the M4/M7's whole-pixel loop; once per layer, not zeroed per pixel).
    let mut group_sums = [[0i32; GROUP]; BLOCK / GROUP];
    for (k, first) in (0..m).flat_map(|k| (0..c).step_by(per_block.max(GROUP)).map(move |f| (k, f)))
    {
        let n = per_block.min(c - first);
        let chans = q.channels_every(first * m + k, m, n, &mut chans);
        let sums = fill(kernel, (filters, cells), (first, n), (m, k), &mut table);
        for (ch, s) in chans.iter_mut().zip(sums.iter()) {
            *ch = ch.with_bias_added(s.wrapping_mul(zp_in).wrapping_neg());
        }
        let b = Block {
            kernel,
            n: chans.len(),
            cells,
            table: &table,
            chans,
        };
        let pad = padding.get(..n).unwrap_or(&[]);
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let at = (oy * g.ow + ox) * g.oc + first * m + k;
                let ys = match m {
                    1 => y.get_mut(at..at + n),
                    _ => spread.get_mut(..n),
                }
                .unwrap_or(&mut []);
                let pix = Pixel {
                    g,
                    at: (oy, ox),
                    channels: (first, n),
                    x: (x, pad),
                };
                // One call site each, so that the pixel's kernels are compiled once.
                if !window_pixel(&b, &pix, &mut rect, &out, ys, &mut group_sums) {
                    cells_of(g, (oy, ox), (first, n), (x, pad), &mut window);
                    let cells = window.get(..cells).unwrap_or(&[]);
                    pixel(&b, cells, &out, ys);
                }
                if m > 1 {
                    let outs = y.get_mut(at..).unwrap_or(&mut []).iter_mut().step_by(m);
                    for (d, &v) in outs.zip(spread.iter().take(n)) {
                        *d = v;
                    }
                }
            }
        }
    }
}

/// Writes the filters of input channels `first .. first + n` into `table` as `kernel` reads them (of a depth
/// multiplier `m`, output channel `c · m + k` of each), and returns each channel's `Σ w` (`[0; BLOCK]` past `n`).
fn fill(
    kernel: Kernel,
    (filters, cells): (&[u8], usize),
    (first, n): (usize, usize),
    (m, k): (usize, usize),
    table: &mut [u32; TABLE],
) -> [i32; BLOCK] {
    table.fill(0);
    let mut sums = [0i32; BLOCK];
    let rows = filters.chunks_exact(cells.max(1));
    let channels = rows.skip(first * m + k).step_by(m.max(1)).take(n);
    for (o, (w, sum)) in channels.zip(sums.iter_mut()).enumerate() {
        for (k, &v) in w.iter().enumerate() {
            let v = i32::from(v as i8);
            *sum += v;
            let (slot, bits) = match kernel {
                Kernel::Halves => (
                    halves_slot(k, o, cells),
                    (v as u16 as u32) << (16 * (o % 4 / 2)),
                ),
                Kernel::Words => (words_slot(k, o, cells), v as u32),
            };
            if let Some(t) = table.get_mut(slot) {
                *t |= bits;
            }
        }
    }
    sums
}

/// The word of [`Kernel::Words`]' table that holds channel `o`'s weight of cell `k` of `cells`.
#[inline(always)]
fn words_slot(k: usize, o: usize, cells: usize) -> usize {
    (o / GROUP * cells + k) * GROUP + o % GROUP
}

/// The word of [`Kernel::Halves`]' table that holds channel `o`'s weight of cell `k` of `cells`.
#[inline(always)]
fn halves_slot(k: usize, o: usize, cells: usize) -> usize {
    (o / GROUP * cells + k) * 2 + o % 2
}

/// Writes output pixel `(oy, ox)`'s window into `cells`: each cell's channels `first .. first + n` of the input, or
/// `pad` (bytes equal to the zero point) for a cell outside it.
#[inline(always)]
fn cells_of<'a>(
    g: &Geometry,
    (oy, ox): (usize, usize),
    (first, n): (usize, usize),
    (x, pad): (&'a [u8], &'a [u8]),
    cells: &mut [&'a [u8]; CELLS],
) {
    let ((y0, y1), (x0, x1)) = (g.cells_y(oy), g.cells_x(ox));
    if (y0, x0, y1, x1) != (0, 0, g.kh, g.kw) {
        // An edge pixel: the cells outside the input read the zero point's row (an inner pixel's loop below
        // writes every cell of its window).
        cells.fill(pad);
    }
    let ic = g.ic.max(1);
    for ky in y0..y1 {
        // Cell (ky, x0) is inside the input: its row and column are not negative. The row's cells are
        // `ic` bytes apart from there (walked along the row: each cell indexed with its own offset and bounds
        // checks cost ~30 instructions per cell on the Cortex-M4).
        let row = ((oy * g.sh + ky - g.pt) * g.iw + ox * g.sw + x0 - g.pl) * ic + first;
        let from = ky * g.kw;
        let mut rest = x.get(row..).unwrap_or(&[]);
        for cell in cells.get_mut(from + x0..from + x1).unwrap_or(&mut []) {
            *cell = rest.get(..n).unwrap_or(&[]);
            rest = rest.get(ic..).unwrap_or(&[]);
        }
    }
}

/// The window [`window_pixel`] refills at each pixel (on Arm cores; nothing elsewhere).
#[cfg(target_arch = "arm")]
type Rect<'a> = super::lanes::loops::Window<'a>;
#[cfg(not(target_arch = "arm"))]
type Rect<'a> = core::marker::PhantomData<&'a [u8]>;

/// Where a pixel's window lies: the geometry, the output pixel, the block's channels `(first, n)`, and the input
/// with the zero point's row for padding.
#[cfg_attr(not(target_arch = "arm"), allow(dead_code))]
struct Pixel<'g, 'a> {
    g: &'g Geometry,
    at: (usize, usize),
    channels: (usize, usize),
    x: (&'a [u8], &'a [u8]),
}

/// On Arm cores, a pixel whose block is whole groups: its window's cell addresses stepped from the first valid
/// cell's (`lanes::loops::Window::rect`, one bounds check), the groups' sums by the assembly loops (on the M4/M7
/// every group in one, `lanes::loops::depthwise_pixel`; on the M3 one per group, `depthwise_words`), then the
/// pixel's requantization in one loop over the table (`quant::outputs_of_table`). `false`, writing nothing, where
/// it does not apply (then [`pixel`] runs).
#[inline(always)]
#[cfg_attr(not(target_arch = "arm"), allow(unused_variables))]
fn window_pixel<'a>(
    b: &Block,
    p: &Pixel<'_, 'a>,
    w: &mut Rect<'a>,
    out: &Output,
    ys: &mut [u8],
    sums: &mut [[i32; GROUP]],
) -> bool {
    #[cfg(target_arch = "arm")]
    {
        let (g, (oy, ox), (first, n)) = (p.g, p.at, p.channels);
        if b.n % GROUP != 0 {
            return false;
        }
        let ((y0, y1), (x0, x1)) = (g.cells_y(oy), g.cells_x(ox));
        let ic = g.ic.max(1);
        // The first valid cell's byte (wrapping: unused, and perhaps meaningless, when no cell is valid).
        let (iy, ix) = (
            (oy * g.sh + y0).wrapping_sub(g.pt),
            (ox * g.sw + x0).wrapping_sub(g.pl),
        );
        let at = iy
            .wrapping_mul(g.iw)
            .wrapping_add(ix)
            .wrapping_mul(ic)
            .wrapping_add(first);
        let rect = ((y0, y1), (x0, x1));
        w.rect(p.x, (g.kh, g.kw), rect, at, (g.iw * ic, ic), n);
        let groups = b.n / GROUP;
        let sums = sums.get_mut(..groups).unwrap_or(&mut []);
        if !group_sums(b, w, sums) {
            return false;
        }
        crate::quant::outputs_of_table(sums.as_flattened(), b.chans, out, ys);
        true
    }
    #[cfg(not(target_arch = "arm"))]
    false
}

/// The sums of the block's whole groups over the window into `sums`, by its target's assembly; `false` where
/// the window or the table does not fit (the loops refuse it).
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[inline(always)]
fn group_sums(b: &Block, w: &Rect, sums: &mut [[i32; GROUP]]) -> bool {
    let ws = b.table.get(..2 * sums.len() * b.cells).unwrap_or(&[]);
    b.kernel == Kernel::Halves && super::lanes::loops::depthwise_pixel(w, ws, sums)
}

/// The sums of the block's whole groups over the window into `sums`, by its target's assembly; `false` where
/// the window or the table does not fit (the loops refuse it).
#[cfg(all(target_arch = "arm", not(target_feature = "dsp")))]
#[inline(always)]
fn group_sums(b: &Block, w: &Rect, sums: &mut [[i32; GROUP]]) -> bool {
    if b.kernel != Kernel::Words || w.is_empty() {
        return false;
    }
    let per_group = GROUP * b.cells;
    for (j, s) in sums.iter_mut().enumerate() {
        let ws = b
            .table
            .get(j * per_group..(j + 1) * per_group)
            .unwrap_or(&[]);
        *s = super::lanes::loops::depthwise_words(w, ws, j * GROUP);
    }
    true
}

/// One pixel's block of channels from its window's cells: [`GROUP`] at a time, the rest one by one.
#[inline(always)]
fn pixel(b: &Block, cells: &[&[u8]], out: &Output, ys: &mut [u8]) {
    let whole = b.n / GROUP * GROUP;
    // On the M4/M7 (where [`window_pixel`] did not apply) the assembly loop per group, the window's cells
    // checked once per pixel.
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    let window = super::lanes::loops::Window::new(cells, b.n);
    for (j, (ds, cs)) in ys
        .chunks_exact_mut(GROUP)
        .zip(b.chans.chunks_exact(GROUP))
        .enumerate()
    {
        let acc = match b.kernel {
            Kernel::Halves => {
                let ws = b
                    .table
                    .get(2 * j * b.cells..2 * (j + 1) * b.cells)
                    .unwrap_or(&[]);
                #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
                if let Some(w) = &window {
                    super::lanes::loops::depthwise_halves(w, ws, j * GROUP)
                } else {
                    group_halves(cells, ws, j * GROUP)
                }
                #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
                group_halves(cells, ws, j * GROUP)
            }
            Kernel::Words => {
                let ws = b.table.get(GROUP * j * b.cells..GROUP * (j + 1) * b.cells);
                group_words(cells, ws.unwrap_or(&[]), j * GROUP)
            }
        };
        for ((d, a), c) in ds.iter_mut().zip(acc).zip(cs) {
            *d = c.output(a, out);
        }
    }
    for (o, (d, c)) in ys.iter_mut().zip(b.chans).enumerate().skip(whole) {
        *d = c.output(single(b, cells, o), out);
    }
}

/// Four bytes as a little-endian word (one unaligned load on a Cortex-M3/M4/M7).
#[inline(always)]
fn word(b: Option<&[u8]>) -> u32 {
    match b {
        Some([a, b, c, d, ..]) => u32::from_le_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// `Σ w·x` of channels `j .. j + 4` over the window's cells against their weights `ws` as [`Kernel::Halves`]
/// lays them out: per cell one word of inputs sign-extended into lanes (j, j + 2) and (j + 1, j + 3), and one
/// 16-bit multiply-add per channel (SMLABB/SMLATT) against the two words of weights in the same lanes.
#[inline(never)]
fn group_halves(cells: &[&[u8]], ws: &[u32], j: usize) -> [i32; GROUP] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    for (cell, w) in cells.iter().zip(ws.chunks_exact(2)) {
        let x = word(cell.get(j..j + 4));
        let (x02, x13) = (sxtb16(x), sxtb16_ror8(x));
        a0 = smlabb(x02, w[0], a0);
        a2 = smlatt(x02, w[0], a2);
        a1 = smlabb(x13, w[1], a1);
        a3 = smlatt(x13, w[1], a3);
    }
    [a0, a1, a2, a3]
}

/// `Σ w·x` of channels `j .. j + 4` over the window's cells against their weights `ws` as [`Kernel::Words`] lays
/// them out (four words per cell); the plain Rust of `lanes::loops::depthwise_words`.
#[inline(never)]
fn group_words(cells: &[&[u8]], ws: &[u32], j: usize) -> [i32; GROUP] {
    let mut acc = [0i32; GROUP];
    for (cell, w) in cells.iter().zip(ws.chunks_exact(GROUP)) {
        let x = word(cell.get(j..j + 4));
        for (k, (a, &w)) in acc.iter_mut().zip(w).enumerate() {
            let xv = (x >> (8 * k)) as u8 as i8;
            *a = a.wrapping_add((w as i32).wrapping_mul(i32::from(xv)));
        }
    }
    acc
}

/// `Σ w·x` of channel `o` alone over the window's cells (the block's last `n % 4` channels).
fn single(b: &Block, cells: &[&[u8]], o: usize) -> i32 {
    let mut acc = 0i32;
    for (k, cell) in cells.iter().enumerate() {
        let xv = cell.get(o).map_or(0, |&v| i32::from(v as i8));
        let (slot, shift) = match b.kernel {
            Kernel::Halves => (halves_slot(k, o, b.cells), 16 * (o % 4 / 2)),
            Kernel::Words => (words_slot(k, o, b.cells), 0),
        };
        let w = b.table.get(slot).map_or(0, |&t| t >> shift);
        let wv = match b.kernel {
            Kernel::Halves => i32::from(w as u16 as i16),
            Kernel::Words => w as i32,
        };
        acc = acc.wrapping_add(wv * xv);
    }
    acc
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// `n` pseudo-random bytes.
    fn bytes(n: usize, mut state: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    fn le(values: &[i32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Both kernels against a direct sum over the valid cells, every geometry of the DS-CNN and MobileNet layers
    /// and channel counts around the group and the block.
    #[test]
    fn both_kernels_give_the_direct_sum() {
        let shapes = [
            // (h, w, c, depth multiplier, kh, kw, stride, pad top/left/bottom/right)
            (5, 4, 5, 1, 3, 3, 1, [1, 1, 1, 1]),
            (7, 6, 16, 1, 3, 3, 2, [0, 0, 1, 1]),
            (4, 3, 103, 1, 3, 3, 1, [1, 1, 1, 1]),
            (6, 5, 7, 1, 4, 2, 1, [2, 0, 1, 1]),
            (3, 3, 200, 1, 2, 2, 1, [0, 0, 1, 1]),
            (6, 5, 8, 2, 3, 3, 2, [1, 1, 1, 1]),
            (4, 4, 5, 3, 3, 3, 1, [1, 1, 1, 1]),
            (3, 4, 99, 2, 3, 3, 1, [1, 1, 1, 1]),
        ];
        for (i, &(h, w, c, m, kh, kw, s, pad)) in shapes.iter().enumerate() {
            let g = geometry(h, w, (c, c * m), (kh, kw), s, pad);
            let cells = kh * kw;
            let filters = bytes(c * m * cells, 7 + i as u64);
            let x = bytes(h * w * c, 0x9E37 + i as u64);
            let bias = le(&(0..(c * m) as i32)
                .map(|o| o * 97 - 3000)
                .collect::<Vec<_>>());
            let mult = le(&[(1 << 30) + 12345]);
            let shift = le(&[-7]);
            let q = Quant {
                per_channel: false,
                multipliers: &mult,
                shifts: &shift,
                bias: &bias,
            };
            let (zp_in, zp_out, range) = (-5, 3, (-128, 127));
            let want = direct(&g, &filters, &q, (zp_in, zp_out), range, &x);
            for kernel in [Kernel::Halves, Kernel::Words] {
                let mut y = std::vec![0u8; g.oh * g.ow * c * m];
                let out = Output::new(zp_out, range);
                run_with(
                    kernel,
                    &g,
                    (&filters, cells),
                    &q,
                    (zp_in, out),
                    (&x, &mut y),
                );
                assert_eq!(y, want, "shape {i}, {kernel:?}");
            }
        }
    }

    fn geometry(
        h: usize,
        w: usize,
        (c, oc): (usize, usize),
        k: (usize, usize),
        s: usize,
        pad: [usize; 4],
    ) -> Geometry {
        let out = |i: usize, k: usize, a: usize, b: usize| (i + a + b - k) / s + 1;
        Geometry {
            ih: h,
            iw: w,
            ic: c,
            oh: out(h, k.0, pad[0], pad[2]),
            ow: out(w, k.1, pad[1], pad[3]),
            oc,
            kh: k.0,
            kw: k.1,
            sh: s,
            sw: s,
            pt: pad[0],
            pl: pad[1],
        }
    }

    /// Σ over the valid cells of w·(x − zp), requantized as TFLite does.
    fn direct(
        g: &Geometry,
        f: &[u8],
        q: &Quant,
        zp: (i32, i32),
        range: (i32, i32),
        x: &[u8],
    ) -> Vec<u8> {
        let mut y = Vec::new();
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for o in 0..g.oc {
                    let mut acc = 0i32;
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let (iy, ix) = (
                                (oy * g.sh + ky) as isize - g.pt as isize,
                                (ox * g.sw + kx) as isize - g.pl as isize,
                            );
                            if iy < 0 || ix < 0 || iy >= g.ih as isize || ix >= g.iw as isize {
                                continue;
                            }
                            let ci = o / (g.oc / g.ic);
                            let xv =
                                i32::from(x[(iy as usize * g.iw + ix as usize) * g.ic + ci] as i8);
                            let wv = i32::from(f[o * g.kh * g.kw + ky * g.kw + kx] as i8);
                            acc += wv * (xv - zp.0);
                        }
                    }
                    y.push(q.output(acc, o, zp.1, range));
                }
            }
        }
        y
    }
}
