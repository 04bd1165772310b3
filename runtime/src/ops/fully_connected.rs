//! FULLY_CONNECTED: `y[o] = act(Σ_j W[o][j] · x[j] + b[o])` over the input's elements in row-major order (a
//! flatten before it is free), int8 per output channel (or per tensor) on the integer path. Dense weights run as
//! dot products; sparse shared weights straight from their streams, a row at a time.

use super::dot::{
    dot1, rows_to_i8, rows_wide, wide_rows_sums, widen_paired, GROUPED, PAIRED, WIDE_COLUMNS,
};
use super::{prepared, Io, Needs, Op, Parts, Tensors};
use crate::error::{Error, Result};
use crate::quant::{Channels, Output};
use crate::stream::Sink;
use crate::weights::{self, Codebook, Direct, Payload, Quant, Sparse, Weights};

/// (outputs, fan-in): the output's and the input's element counts.
fn dims(t: &Tensors) -> (usize, usize) {
    (t.output.shape.len(), t.input.shape.len())
}

/// Checks the weights against the tensors; no scratch beyond the streams' decoding memory.
#[inline(never)]
pub(crate) fn prepare(op: &Op, index: u16, t: &Tensors, flags: u16) -> Result<Needs> {
    let w = super::weights(op, index, t, flags, dims(t), true)?;
    let layout = prepared::Layout::of(&w, flags, groups(&w), w.fan_in);
    super::weighted(&w, [0, 0], layout.map(|l| l.in_columns(columns_form())))
}

/// The prepared form's windows: the columns in pieces of 256.
fn groups(w: &Weights) -> Option<prepared::Groups> {
    prepared::Groups::new(1, w.fan_in, w.fan_in)
}

/// The prepared form's shape, for an operator that has one.
fn prepared_shape(w: &Weights) -> Result<prepared::Layout> {
    let l = prepared::Layout::shape(w, groups(w), w.fan_in).ok_or(Error::PathUnavailable)?;
    Ok(l.in_columns(columns_form()))
}

/// Whether the prepared form is [`super::columns`]' matrix (x86-64 hosts with AVX-512 VNNI, whose kernel skips
/// the input's groups at the zero point, faster than the windows' runs) rather than the windows' runs (every other
/// target: on Cortex-M cores the runs do ~23× fewer multiply-adds than a matrix; on AVX2 a dense matrix measured as
/// fast as them, for a sixth of the memory).
fn columns_form() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::lanes::x86::has_vnni();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Writes the prepared form (columns in windows of 256).
pub(crate) fn fill_prepared(
    op: &Op,
    index: u16,
    t: &Tensors,
    flags: u16,
    mem: &mut [u8],
) -> Result<()> {
    let w = super::weights(op, index, t, flags, dims(t), false)?;
    let l = prepared_shape(&w)?;
    let zp = i32::from(t.input.zero_point);
    prepared::fill(&l, &w, index, zp, |_, col| (0, col), mem)
}

/// The integer kernel. A dense int8 section is read straight into its kernel's arguments
/// ([`weights::dense_i8`]); other sections through [`super::weights`].
#[inline(never)]
pub(crate) fn run_int8(op: &Op, index: u16, t: &Tensors, flags: u16, io: &mut Io) -> Result<()> {
    let zp_in = i32::from(t.input.zero_point);
    let out = |q| Out {
        q,
        zp_out: i32::from(t.output.zero_point),
        range: super::clamp_range(op),
    };
    let expect = super::expect(index, t, flags, dims(t), false);
    if let Some((q, ws)) = weights::dense_i8(op.weights, expect) {
        let p = io.parts(0)?;
        dense_int8(ws, dims(t), (p.x, zp_in), &out(q), p.y, KERNEL);
        return Ok(());
    }
    let w = weights::parse(op.weights, expect)?;
    let out = out(w.quant.ok_or(Error::PathUnavailable)?);
    let mem = io.prepared;
    match w.payload {
        Payload::Sparse(_) if prepared::PREPARE && !mem.is_empty() => {
            let l = prepared_shape(&w)?;
            let p = io.parts(l.scratch().ok_or(Error::Overflow)?)?;
            // `columns_form()` first: a constant `false` off x86-64, so that Cortex-M builds link none of it.
            if columns_form() && l.columns {
                let output = Output::new(out.zp_out, out.range);
                let c = l.columns_shape();
                super::columns::run(&c, mem, p.x, (&out.q, &output), p.y);
                return Ok(());
            }
            let out = prepared::Out {
                zero_point: out.zp_out,
                range: out.range,
            };
            prepared::fully_connected(&l, mem, (p.x, p.own), out, p.y);
        }
        Payload::Sparse(s) => {
            let p = io.parts(0)?;
            sparse_int8(&s, (w.fan_in, w.outputs), index, (p.x, zp_in), out, p)?
        }
        // Dense int8 sections took the path above; f32 weights have no integer kernel.
        Payload::DenseI8(_) | Payload::DenseF32(_) => return Err(Error::PathUnavailable),
    }
    Ok(())
}

/// How the dense integer kernel runs the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dense {
    /// One row at a time against the input widened once ([`rows_wide`]): hosts, whose compilers vectorize it.
    Rows,
    /// [`ROWS`] rows per pass over the int8 input (`dot::dot_rows`): on Cortex-M cores, inputs wider than
    /// [`WIDE_COLUMNS`].
    Groups,
    /// [`ROWS`] rows per pass over the input widened once in [`widen_pairs`]' order (`dot::dot_rows_wide`): the
    /// Cortex-M cores. On the M4/M7 SMLAD then reads two inputs per word load with no offset or sign extension in
    /// the loop; on the M3 the loop is one halfword load and four byte loads and MLAs per column (with the loop
    /// in assembly, 12 % fewer instructions than the int8 loop on LeNet-300-100; in Rust it had been 0.9 % more).
    WideGroups,
}

/// This target's dense kernel.
const KERNEL: Dense = match (GROUPED, PAIRED) {
    (false, _) => Dense::Rows,
    (true, false) => Dense::WideGroups,
    (true, true) => Dense::WideGroups,
};

/// The dense integer kernel, as `kernel` says; inputs wider than [`WIDE_COLUMNS`] run [`Dense::Groups`]' loop
/// (or one row at a time with [`dot1`] for [`Dense::Rows`]).
fn dense_int8(
    ws: &[u8],
    (outputs, n): (usize, usize),
    (x, zp): (&[u8], i32),
    out: &Out,
    y: &mut [u8],
    kernel: Dense,
) {
    let n = n.max(1);
    if n <= WIDE_COLUMNS && kernel != Dense::Groups {
        // `x − zp` widened once into 16 bits on the stack, then every row against it: the offset and the sign
        // extension of the input are paid once per layer instead of once per group of rows, and their registers
        // are free for the rows (Cortex-M4, LeNet-300-100: see BENCHMARKS.md). The column's array is the
        // smallest of three that holds it: safe Rust zeroes the whole array first (2 KB cost the autoencoder's
        // small layers a third more instructions on the M4; 64 elements instead of 256 saved it 1,254 more).
        // `dense_wide` is out of line, so that the three sizes share one copy of the kernel (inlined twice it
        // had cost 5.4 KB of code).
        // The block of sums is sized with the column: a small layer's 96 sums zeroed had cost the autoencoder's
        // six layers ~1,400 instructions on the M4.
        let mut wide = |col: &mut [i16], sums: &mut [i32]| {
            dense_wide(ws, (outputs, n), (x, zp), (col, sums), out, y, kernel)
        };
        // Small layers (the autoencoder's): the column in 16, 32 or 64 values, the sums in 12 or 36 (zeroing the
        // arrays had been a quarter of such a layer's set-up).
        let few = outputs <= TINY_SUMS;
        let mut small = |col: &mut [i16]| {
            if few {
                wide(col, &mut [0; TINY_SUMS])
            } else {
                wide(col, &mut [0; SMALL_SUMS])
            }
        };
        if n <= 16 {
            return small(&mut [0; 16][..n]);
        }
        if n <= 32 {
            return small(&mut [0; 32][..n]);
        }
        if n <= 64 {
            return small(&mut [0; 64][..n]);
        }
        if n <= 256 {
            return wide(&mut [0; 256][..n], &mut [0; SUMS]);
        }
        return wide(&mut [0; WIDE_COLUMNS][..n], &mut [0; SUMS]);
    }
    let (chans, output) = out.channels(outputs);
    if kernel == Dense::Groups {
        return rows_to_i8(ws, (x, zp), (chans, &output), y);
    }
    for (k, (d, row)) in y
        .iter_mut()
        .zip(ws.chunks_exact(n))
        .take(outputs)
        .enumerate()
    {
        *d = chans.channel(k).output(dot1(row, x, zp), &output);
    }
}

/// [`dense_int8`] over `x − zp` widened into `col` (`n` long): [`Dense::WideGroups`] or [`Dense::Rows`].
#[inline(never)]
fn dense_wide(
    ws: &[u8],
    (outputs, n): (usize, usize),
    (x, zp): (&[u8], i32),
    (col, sums): (&mut [i16], &mut [i32]),
    out: &Out,
    y: &mut [u8],
    kernel: Dense,
) {
    if kernel == Dense::WideGroups {
        // The column in [`widen_pairs`]' order, whole groups of four written so at once (`widen_paired`: on the
        // M4 a word load and two SXTAB16 per four values instead of twelve loads, subtractions and stores, then
        // the swaps: ~700 instructions on the autoencoder's six layers), the last `n % 4` in order.
        let whole = n / 4 * 4;
        let (head, tail) = col.split_at_mut(whole.min(col.len()));
        widen_paired(head, x.get(..whole).unwrap_or(&[]), zp);
        widen_in_order(tail, x.get(whole..).unwrap_or(&[]), zp);
        // [`ROWS`] rows per pass over the column into a block of sums, then the block's requantization.
        let y = y.get_mut(..outputs).unwrap_or(&mut []);
        in_blocks((ws, n), sums, out, y, |ws, sums| {
            wide_rows_sums(ws, col, sums);
            true
        });
        return;
    }
    let ys = y.get_mut(..outputs).unwrap_or(&mut []);
    let ws = ws.get(..outputs * n).unwrap_or(&[]);
    // On x86-64 with AVX-512 VNNI, the int8 input as it is (no widened column).
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = x.get(..n) {
        let rows = |ws: &[u8], sums: &mut [i32]| super::lanes::x86::rows_int8(ws, (x, zp), sums);
        if in_blocks((ws, n), sums, out, ys, rows) >= outputs {
            return;
        }
    }
    let value = |acc, o| out.value(acc, o);
    widen_in_order(col, x, zp);
    rows_wide(ws, col, ys, value);
}

/// The dense kernel's blocks: `sums.len()` rows of `ws` (each `n` long) at a time summed by `rows` into `sums`, then
/// requantized in order into `ys` (`Quant::outputs`); blocks walked by their first output (zipping two `chunks` had
/// cost two divisions and their tests). Stops where `rows` declines (`false`, the block untouched); returns the
/// outputs written.
#[inline(always)]
fn in_blocks(
    (ws, n): (&[u8], usize),
    sums: &mut [i32],
    out: &Out,
    ys: &mut [u8],
    mut rows: impl FnMut(&[u8], &mut [i32]) -> bool,
) -> usize {
    let output = Output::new(out.zp_out, out.range);
    let block = sums.len().max(1);
    let mut first = 0;
    for ys in ys.chunks_mut(block) {
        let sums = sums.get_mut(..ys.len()).unwrap_or(&mut []);
        if !rows(ws.get(first * n..).unwrap_or(&[]), sums) {
            break;
        }
        out.q.outputs(first, sums, &output, ys);
        first += ys.len();
    }
    first
}

/// `x − zp` of `src` into `dst`, in order.
#[inline(always)]
fn widen_in_order(dst: &mut [i16], src: &[u8], zp: i32) {
    let zp = zp as i16;
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = i16::from(v as i8) - zp;
    }
}

/// Outputs whose sums the dense kernel holds at once (a multiple of both row groups; 384 bytes on the stack).
const SUMS: usize = 96;

/// [`SUMS`] for inputs of at most 64 values (also a multiple of both row groups).
const SMALL_SUMS: usize = 36;

/// [`SMALL_SUMS`] for layers of at most 12 outputs.
const TINY_SUMS: usize = 12;

/// The sparse integer kernel, out of line so that the dense kernel beside it does not change how it compiles
/// (measured on the Cortex-M3: 0.7 % more instructions inlined).
#[inline(never)]
fn sparse_int8(
    s: &Sparse,
    (fan_in, outputs): (usize, usize),
    index: u16,
    (x, zp_in): (&[u8], i32),
    out: Out,
    p: Parts,
) -> Result<()> {
    // Integer-path files have int8 codebooks (checked at load), copied into a table of 256 (indices have at most
    // 8 bits) so that the kernel reads it without a bounds check.
    let mut table = [0i8; 256];
    if let Codebook::I8(c) = s.codebook {
        table.iter_mut().zip(c).for_each(|(t, &c)| *t = c as i8);
    }
    let (rows, arena) = ((fan_in, outputs), p.streams.arena);
    let row_done = |o: usize, acc: i32| {
        if let Some(v) = p.y.get_mut(o) {
            *v = out.value(acc, o);
        }
    };
    if s.row_dots(rows, index, arena, (x, zp_in), &table, row_done)? {
        return Ok(());
    }
    let mut sink = SparseInt8 {
        x,
        y: p.y,
        codebook: &table,
        zp_in,
        out,
        acc: 0,
    };
    // Validated at load: unchecked.
    s.walk::<false, _>(fan_in, outputs, index, &mut { p.streams }, &mut sink)
}

/// How an accumulator becomes an int8 output.
struct Out<'q> {
    q: Quant<'q>,
    zp_out: i32,
    range: (i32, i32),
}

impl Out<'_> {
    /// Output `o` for the sum of its products (the bias added here).
    #[inline(always)]
    fn value(&self, acc: i32, o: usize) -> u8 {
        self.q.output(acc, o, self.zp_out, self.range)
    }

    /// The requantization of outputs `0 .. outputs`, read from the file at each output (each channel is
    /// requantized once, so a decoded table would cost what it saves), and where the outputs land.
    #[inline(always)]
    fn channels(&self, outputs: usize) -> (Direct<'_>, Output) {
        (
            self.q.direct(0, outputs),
            Output::new(self.zp_out, self.range),
        )
    }
}

/// The sparse integer kernel: accumulates `c[index] · (x[col] − zp)` along a row, requantizes at its end.
struct SparseInt8<'x, 'q> {
    x: &'x [u8],
    y: &'x mut [u8],
    codebook: &'x [i8; 256],
    zp_in: i32,
    out: Out<'q>,
    acc: i32,
}

impl Sink for SparseInt8<'_, '_> {
    #[inline(always)]
    fn weights(&mut self, cols: &[u32], indices: &[u8]) {
        // Locals, so that the loop keeps them in registers instead of reloading them through `self`.
        let (mut acc, zp, x, codebook) = (self.acc, self.zp_in, self.x, self.codebook);
        for (&col, &index) in cols.iter().zip(indices) {
            let xv = x.get(col as usize).map_or(0, |&b| i32::from(b as i8));
            acc = acc.wrapping_add(i32::from(codebook[usize::from(index)]) * (xv - zp));
        }
        self.acc = acc;
    }

    #[inline(always)]
    fn end_row(&mut self, row: usize) {
        if let Some(v) = self.y.get_mut(row) {
            *v = self.out.value(self.acc, row);
        }
        self.acc = 0;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::ops::dot::tests::{le_i32s, test_bytes};

    #[test]
    fn rows_in_groups_give_what_rows_one_at_a_time_give() {
        // 10 outputs (groups and a remainder), 37 inputs (lanes and a tail), per-channel requantization.
        let (outputs, n) = (10, 37);
        let ws: std::vec::Vec<u8> = (0..outputs as u32)
            .flat_map(|o| test_bytes(o, n)[..n].to_vec())
            .collect();
        let x = test_bytes(99, n);
        let mult = le_i32s(outputs as i32, |o| 1 << 30 | o << 20);
        let shifts = le_i32s(outputs as i32, |o| -(o % 3) - 4);
        let bias = le_i32s(outputs as i32, |o| o * 37 - 100);
        let out = Out {
            q: Quant {
                per_channel: true,
                multipliers: &mult,
                shifts: &shifts,
                bias: &bias,
            },
            zp_out: -3,
            range: (-128, 127),
        };
        for zp in [-128, 0, 17] {
            let (mut one, mut grouped, mut wide) = ([0u8; 10], [0u8; 10], [0u8; 10]);
            dense_int8(
                &ws,
                (outputs, n),
                (&x[..n], zp),
                &out,
                &mut one,
                Dense::Rows,
            );
            dense_int8(
                &ws,
                (outputs, n),
                (&x[..n], zp),
                &out,
                &mut grouped,
                Dense::Groups,
            );
            dense_int8(
                &ws,
                (outputs, n),
                (&x[..n], zp),
                &out,
                &mut wide,
                Dense::WideGroups,
            );
            assert_eq!(one, grouped, "zero point {zp}");
            assert_eq!(one, wide, "zero point {zp}, widened");
            assert!(
                one.iter().any(|&v| v != one[0]),
                "a test that can fail: {one:?}"
            );
        }
    }
}

#[cfg(not(feature = "integer-only"))]
mod f32_path {
    use super::super::{activate, get, set, Io, Op, Tensors};
    use crate::error::Result;
    use crate::format::Activation;
    use crate::stream::Sink;
    use crate::weights::{Payload, Weights};

    /// Σ a[i]·b[i] over two little-endian f32 byte slices, with 8 independent partial sums so that it vectorizes.
    #[inline(always)]
    fn dot_f32(a: &[u8], b: &[u8]) -> f32 {
        let mut acc = [0f32; 8];
        let mut ca = a.chunks_exact(32);
        let mut cb = b.chunks_exact(32);
        for (x, y) in (&mut ca).zip(&mut cb) {
            for (l, s) in acc.iter_mut().enumerate() {
                *s += get(x, l) * get(y, l);
            }
        }
        let mut tail = 0f32;
        for (x, y) in ca
            .remainder()
            .chunks_exact(4)
            .zip(cb.remainder().chunks_exact(4))
        {
            tail += get(x, 0) * get(y, 0);
        }
        acc.iter().sum::<f32>() + tail
    }

    /// Σ q[i]·x[i] for int8 weights against f32 activations.
    #[inline(always)]
    fn dot_i8_f32(q: &[u8], x: &[u8]) -> f32 {
        let mut acc = [0f32; 8];
        let mut cq = q.chunks_exact(8);
        let mut cx = x.chunks_exact(32);
        for (w, v) in (&mut cq).zip(&mut cx) {
            for (l, s) in acc.iter_mut().enumerate() {
                *s += f32::from(w[l] as i8) * get(v, l);
            }
        }
        let mut tail = 0f32;
        for (w, v) in cq.remainder().iter().zip(cx.remainder().chunks_exact(4)) {
            tail += f32::from(*w as i8) * get(v, 0);
        }
        acc.iter().sum::<f32>() + tail
    }

    /// The f32 kernel.
    #[inline(never)]
    pub(crate) fn run_f32(op: &Op, index: u16, t: &Tensors, flags: u16, io: &mut Io) -> Result<()> {
        let w = super::super::weights(op, index, t, flags, super::dims(t), false)?;
        let p = io.parts(0)?;
        let (n, a) = (w.fan_in.max(1), op.activation);
        match w.payload {
            Payload::DenseF32(ws) => {
                for (o, row) in ws.chunks_exact(4 * n).enumerate().take(w.outputs) {
                    set(p.y, o, activate(a, dot_f32(row, p.x) + w.bias(o)));
                }
            }
            Payload::DenseI8(ws) => {
                for (o, row) in ws.chunks_exact(n).enumerate().take(w.outputs) {
                    set(
                        p.y,
                        o,
                        activate(a, dot_i8_f32(row, p.x) * w.scale(o) + w.bias(o)),
                    );
                }
            }
            Payload::Sparse(s) => {
                // The codebook as f32 values in a table of 256, read without a bounds check or a match.
                let mut table = [0f32; 256];
                for (i, t) in table.iter_mut().enumerate().take(s.codebook_len as usize) {
                    *t = w.shared_f32(i);
                }
                let mut sink = SparseF32 {
                    x: p.x,
                    y: p.y,
                    w: &w,
                    codebook: &table,
                    scale: w.scale(0),
                    activation: a,
                    acc: 0.0,
                };
                // Validated at load: unchecked.
                s.walk::<false, _>(w.fan_in, w.outputs, index, &mut { p.streams }, &mut sink)?;
            }
        }
        Ok(())
    }

    /// The sparse f32 kernel: accumulates `c[index] · x[col]` along a row, scales and adds the bias at its end.
    struct SparseF32<'x, 'w> {
        x: &'x [u8],
        y: &'x mut [u8],
        w: &'x Weights<'w>,
        codebook: &'x [f32; 256],
        scale: f32,
        activation: Activation,
        acc: f32,
    }

    impl Sink for SparseF32<'_, '_> {
        #[inline(always)]
        fn weights(&mut self, cols: &[u32], indices: &[u8]) {
            let (mut acc, x, codebook) = (self.acc, self.x, self.codebook);
            for (&col, &index) in cols.iter().zip(indices) {
                acc += codebook[usize::from(index)] * get(x, col as usize);
            }
            self.acc = acc;
        }

        #[inline(always)]
        fn end_row(&mut self, row: usize) {
            let v = self.acc * self.scale + self.w.bias(row);
            set(self.y, row, activate(self.activation, v));
            self.acc = 0.0;
        }
    }
}

#[cfg(not(feature = "integer-only"))]
pub(crate) use f32_path::run_f32;
