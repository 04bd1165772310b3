//! The dense int8 dot products the dense kernels of FULLY_CONNECTED and CONV_2D are built on:
//! `Σ w[j]·(x[j] − zp)` over int8 weights and activations.
//!
//! - [`wide_rows_to_i8`]: the Cortex-M kernels' common pass. A block of rows against a column of `x − zp`
//!   widened once to 16 bits (the convolutions' im2col pixel), [`ROWS`] rows per pass, each sum requantized by
//!   its channel (`quant::Channels`); [`wide_rows_sums`] the same passes into sums only (the FULLY_CONNECTED's
//!   input, whose requantization then walks its channels in order). The passes' inner loops are whole loops of
//!   assembly in `lanes::loops` (LLVM spilled a row pointer or the trip count of the same loops in Rust, depending
//!   on the code around them): on the Cortex-M3 four rows of LDRSB/MLA against one halfword per column (2.5
//!   instructions per multiply-add), on the M4/M7 three rows of SXTB16/SMLAD against the column in
//!   [`widen_pairs`]' order (1.5), the rows left over one at a time. Their Rust forms ([`dot4_wide_plain`],
//!   [`dot3_wide_lanes`], [`dot1_wide_plain`]) are the references the hosts' tests run.
//! - [`dot1`]: one row, written so that the compiler vectorizes it (the host's kernel, and every tail).
//! - [`dot_rows`]: [`ROWS`] rows against the int8 input, each input value loaded and offset once for several
//!   multiply-adds ([`dot4_scalar`] on the M3, [`dot3_lanes`] with DSP; SXTAB16 adds −zp on the way): inputs too
//!   wide for the stack's column, and the general convolution kernel.
//! - [`rows_wide`]: the dense FULLY_CONNECTED's rows against an input widened once (hosts; on x86-64 with AVX2 a
//!   hand-written kernel in `lanes::x86`, chosen at run time, the plain loop its reference).
//!
//! The DSP instructions and assembly loops come from [`super::lanes`], the only inline assembly of the crate
//! besides [`keep_rolled`]; everywhere else `lanes` is the same arithmetic in plain Rust.

use crate::quant::{outputs_of_table, Channel, Channels, Output};

/// Rows [`dot_rows`] computes per pass over its input: four without DSP, three with it (four rows' pointers, sums
/// and lanes need more registers than a Cortex-M has; measured in BENCHMARKS.md).
pub(crate) const ROWS: usize = if DSP { 3 } else { 4 };

/// Whether the dense kernels take [`ROWS`] rows per pass: on 32-bit Arm cores. Elsewhere one row at a time, which
/// the compiler vectorizes for the host's SIMD (the host's latency figures were measured with it; the grouped
/// kernels were not measured on hosts).
pub(crate) const GROUPED: bool = cfg!(target_arch = "arm");

/// Whether the DSP kernel runs (Cortex-M4/M7).
const DSP: bool = cfg!(all(target_arch = "arm", target_feature = "dsp"));

/// Σ w[j]·(x[j] − zp) over the common length of `w` and `x`. A plain integer reduction: integer addition is
/// associative, so the compiler vectorizes it for whatever SIMD the target has (measured on LeNet-300-100:
/// 1.5× faster than a hand-unrolled array of partial sums on baseline x86-64, which it left scalar; 8× with
/// AVX2 enabled).
#[inline(always)]
pub(crate) fn dot1(w: &[u8], x: &[u8], zp: i32) -> i32 {
    // Both factors fit in i16 (|w| ≤ 128, |x − zp| ≤ 255): written as i16 values widened to i32, the product and
    // its sum match SSE2's pmaddwd (and NEON's smlal), which the compiler then picks.
    let zp = zp as i16;
    w.iter()
        .zip(x)
        .map(|(&a, &b)| i32::from(i16::from(a as i8)) * i32::from(i16::from(b as i8) - zp))
        .fold(0i32, i32::wrapping_add)
}

/// Rows `first .. first + ROWS` of a row-major matrix of `n` columns, split so that the compiler knows each is
/// `n` long (one bounds check for the block instead of one per row, and no minimum of lengths in [`dot_rows`]:
/// measured on the Cortex-M4, a third of the set-up of a 25-column call); empty rows past the end.
#[inline(always)]
pub(crate) fn rows_of(matrix: &[u8], first: usize, n: usize) -> [&[u8]; ROWS] {
    match matrix.get(first * n..(first + ROWS) * n) {
        Some(block) => {
            let mut rest = block;
            core::array::from_fn(|_| {
                let (row, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                row
            })
        }
        None => [&[]; ROWS],
    }
}

/// `acc[r] += Σ w[r][j]·(x[j] − zp)` for [`ROWS`] rows, over the common length of the rows and `x`.
#[inline(always)]
pub(crate) fn dot_rows(w: [&[u8]; ROWS], x: &[u8], zp: i32, acc: &mut [i32; ROWS]) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    dot3_lanes(w, x, zp, acc);
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    dot4_scalar(w, x, zp, acc);
}

/// Whether a widened column ([`widen_pairs`]) holds each whole group of four columns in the DSP kernel's order,
/// (0, 2, 1, 3): one word load then gives the two 16-bit lanes that SMLAD multiplies with SXTB16's bytes 0, 2 (and
/// the next word those for bytes 1, 3) of four weights, with no sign extension or offset of the inputs.
pub(crate) const PAIRED: bool = DSP;

/// Puts a column of `x − zp` values, written in order, into the order the wide kernels read: with [`PAIRED`],
/// columns 1 and 2 of every whole group of four swap places; the last `len % 4` stay in order.
#[inline(always)]
pub(crate) fn widen_pairs(column: &mut [i16]) {
    if PAIRED {
        for group in column.chunks_exact_mut(4) {
            group.swap(1, 2);
        }
    }
}

/// Writes `x − zp` of `src` into `dst` (the same length, a multiple of four) in [`widen_pairs`]' order directly:
/// with [`PAIRED`], per four bytes one word load and two SXTAB16 (the offset added on the way), whose lanes are
/// already columns (0, 2) and (1, 3); in order otherwise. For runs that start a group of four, as an im2col
/// column's kernel rows do when the input has a multiple of four channels.
#[inline(always)]
pub(crate) fn widen_paired(dst: &mut [i16], src: &[u8], zp: i32) {
    if PAIRED {
        return widen_lanes(dst, src, zp);
    }
    let zp = zp as i16;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = i16::from(s as i8) - zp;
    }
}

/// [`widen_paired`]'s DSP algorithm (what the host's tests run with the lanes in plain Rust).
#[inline(always)]
fn widen_lanes(dst: &mut [i16], src: &[u8], zp: i32) {
    use super::lanes::{sxtab16, sxtab16_ror8};
    let offset = (zp.wrapping_neg() as u16 as u32) * 0x0001_0001;
    for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
        let v = word(s);
        let (lo, hi) = (sxtab16(offset, v), sxtab16_ror8(offset, v));
        d.copy_from_slice(&[lo as i16, (lo >> 16) as i16, hi as i16, (hi >> 16) as i16]);
    }
}

/// `acc[r] += Σ w[r][j]·c[j]` for [`ROWS`] rows over a widened column `c` (`x − zp` as i16, see [`PAIRED`]): the
/// convolutions' im2col kernel, whose column is written once per output pixel, so that the inputs' offset and
/// sign extension are paid once instead of once per group of rows (and free the registers they took).
#[cfg_attr(all(target_arch = "arm", target_feature = "dsp"), allow(dead_code))]
#[inline(always)]
pub(crate) fn dot_rows_wide(w: [&[u8]; ROWS], c: &[i16], acc: &mut [i32; ROWS]) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    dot3_wide_lanes(w, c, acc);
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    dot4_wide(w, c, acc);
}

/// `Σ w[j]·c[j]` over a widened column (one row: the channels left over after the groups of [`ROWS`]).
#[inline(always)]
pub(crate) fn dot1_wide(w: &[u8], c: &[i16]) -> i32 {
    #[cfg(target_arch = "arm")]
    {
        // The assembly loop, and with DSP the last `n % 4` columns (in order) in Rust.
        let acc = super::lanes::loops::dot1_wide(w, c);
        if !PAIRED {
            return acc;
        }
        let n = w.len().min(c.len());
        let whole = n / 4 * 4;
        let (wt, ct) = (
            w.get(whole..n).unwrap_or(&[]),
            c.get(whole..n).unwrap_or(&[]),
        );
        wt.iter().zip(ct).fold(acc, |a, (&b, &v)| {
            a.wrapping_add(i32::from(b as i8) * i32::from(v))
        })
    }
    #[cfg(not(target_arch = "arm"))]
    dot1_wide_plain(w, c)
}

/// [`dot1_wide`] in Rust: the reference of its assembly loops, and the kernel itself off Arm.
#[cfg_attr(target_arch = "arm", allow(dead_code))]
#[inline(always)]
pub(crate) fn dot1_wide_plain(w: &[u8], c: &[i16]) -> i32 {
    if PAIRED {
        let mut acc = [0; 3];
        dot3_wide_lanes([w, &[], &[]], c, &mut acc);
        return acc[0];
    }
    w.iter()
        .zip(c)
        .map(|(&a, &b)| i32::from(i16::from(a as i8)) * i32::from(b))
        .fold(0i32, i32::wrapping_add)
}

/// Rows of `ws` (as many as `chans`, each `col.len()` long) against a widened column, each sum requantized by its
/// channel into `ys`: [`ROWS`] rows per pass when `grouped`, the rest one at a time. The dense convolutions' im2col
/// pixel and the dense FULLY_CONNECTED's block of rows; out of line, so that the caller's loop values leave the
/// registers to the dot products (measured on the Cortex-M4, DS-CNN: inlined, each pass's set-up reloaded them
/// from the stack).
#[inline(never)]
pub(crate) fn wide_rows_to_i8<C: Channels>(
    ws: &[u8],
    col: &[i16],
    (chans, out): (C, &Output),
    ys: &mut [u8],
    grouped: bool,
) {
    let n = col.len();
    let (mut ws, mut chans, mut ys) = (ws, chans, ys);
    // Blocks of rows split off the front (no division, as `chunks_exact` of a run-time size would take).
    while grouped && chans.count() >= ROWS {
        let (Some((block, w)), (cs, c), Some((ds, y))) = (
            ws.split_at_checked(ROWS * n),
            chans.split(ROWS),
            core::mem::take(&mut ys).split_at_mut_checked(ROWS),
        ) else {
            return;
        };
        for (r, (d, a)) in ds.iter_mut().zip(block_wide(block, n, col)).enumerate() {
            *d = cs.channel(r).output(a, out);
        }
        (ws, chans, ys) = (w, c, y);
    }
    for (k, d) in ys.iter_mut().take(chans.count()).enumerate() {
        let row = ws.get(k * n..(k + 1) * n).unwrap_or(&[]);
        *d = chans.channel(k).output(dot1_wide(row, col), out);
    }
}

/// The sums of the rows of `ws` (`sums.len()` of them, each `col.len()` long) against a widened column, into
/// `sums`: [`ROWS`] rows per pass, the rest one at a time. The dense FULLY_CONNECTED's block of rows, whose
/// requantization then walks the channels' parameters in order (`weights::Quant::outputs`): each channel is
/// requantized once, so reading its parameters at each group of rows, with their offsets and bounds checks, had
/// cost ~20 instructions more per output on the Cortex-M4.
#[inline(never)]
pub(crate) fn wide_rows_sums(ws: &[u8], col: &[i16], sums: &mut [i32]) {
    rows_sums(ws, col, sums)
}

/// [`wide_rows_sums`] into `sums` (as many as `chans`), then their requantization by the table in one loop
/// (`quant::outputs_of_table`) into `ys`: the dense convolutions' im2col pixel on Cortex-M cores, in one call
/// (two calls per pixel had cost LeNet-5's 640 pixels ~45 instructions each on the Cortex-M4).
#[inline(never)]
pub(crate) fn wide_rows_table(
    ws: &[u8],
    col: &[i16],
    (chans, out): (&[Channel], &Output),
    sums: &mut [i32],
    ys: &mut [u8],
) {
    let sums = sums.get_mut(..chans.len()).unwrap_or(&mut []);
    rows_sums(ws, col, sums);
    outputs_of_table(sums, chans, out, ys);
}

/// The body of [`wide_rows_sums`].
#[inline(always)]
fn rows_sums(ws: &[u8], col: &[i16], sums: &mut [i32]) {
    let n = col.len();
    let (mut ws, mut sums) = (ws, sums);
    while sums.len() >= ROWS {
        let (Some((block, w)), Some((ds, s))) = (
            ws.split_at_checked(ROWS * n),
            core::mem::take(&mut sums).split_at_mut_checked(ROWS),
        ) else {
            return;
        };
        ds.copy_from_slice(&block_wide(block, n, col));
        (ws, sums) = (w, s);
    }
    for (k, d) in sums.iter_mut().enumerate() {
        *d = dot1_wide(ws.get(k * n..(k + 1) * n).unwrap_or(&[]), col);
    }
}

/// The [`ROWS`] rows of `block` (each `n` long) against a widened column of `n`: with DSP on Arm the assembly
/// loop over whole groups of four columns and the last `n % 4` in Rust; elsewhere [`dot_rows_wide`].
#[inline(always)]
fn block_wide(block: &[u8], n: usize, col: &[i16]) -> [i32; ROWS] {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    {
        let mut acc = super::lanes::loops::dot3_wide(block, n, col);
        let whole = n / 4 * 4;
        if whole < n {
            let tail = col.get(whole..n).unwrap_or(&[]);
            for (a, row) in acc.iter_mut().zip(block.chunks_exact(n)) {
                let ws = row.get(whole..).unwrap_or(&[]);
                *a = ws.iter().zip(tail).fold(*a, |a, (&w, &v)| {
                    a.wrapping_add(i32::from(w as i8) * i32::from(v))
                });
            }
        }
        acc
    }
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    {
        let mut acc = [0i32; ROWS];
        dot_rows_wide(rows_of(block, 0, n), col, &mut acc);
        acc
    }
}

/// [`wide_rows_to_i8`] over the int8 input `x` offset by `zp` ([`dot_rows`] and [`dot1`]; the Cortex-M3's dense
/// FULLY_CONNECTED).
#[inline(never)]
pub(crate) fn rows_to_i8<C: Channels>(
    ws: &[u8],
    (x, zp): (&[u8], i32),
    (chans, out): (C, &Output),
    ys: &mut [u8],
) {
    let n = x.len().max(1);
    let (mut ws, mut chans, mut ys) = (ws, chans, ys);
    while chans.count() >= ROWS {
        let (Some((block, w)), (cs, c), Some((ds, y))) = (
            ws.split_at_checked(ROWS * n),
            chans.split(ROWS),
            core::mem::take(&mut ys).split_at_mut_checked(ROWS),
        ) else {
            return;
        };
        let mut acc = [0i32; ROWS];
        dot_rows(rows_of(block, 0, n), x, zp, &mut acc);
        for (r, (d, a)) in ds.iter_mut().zip(acc).enumerate() {
            *d = cs.channel(r).output(a, out);
        }
        (ws, chans, ys) = (w, c, y);
    }
    for (k, d) in ys.iter_mut().take(chans.count()).enumerate() {
        let row = ws.get(k * n..(k + 1) * n).unwrap_or(&[]);
        *d = chans.channel(k).output(dot1(row, x, zp), out);
    }
}

/// Columns the dense FULLY_CONNECTED kernel widens onto the stack (2 KB on a Cortex-M, as the convolutions'
/// im2col column; 4 KB on hosts); a wider input runs from its int8 bytes ([`dot_rows`], [`dot1`]).
pub(crate) const WIDE_COLUMNS: usize = if cfg!(target_arch = "arm") {
    1024
} else {
    2048
};

/// `y[o] = f(Σ_j w[o][j]·c[j], o)` for the rows of a row-major int8 matrix of `c.len()` columns over a widened
/// column `c` (`x − zp` as i16, written once): the host's dense FULLY_CONNECTED kernel, a plain reduction the
/// compiler turns into PMADDWD. On x86-64 CPUs with AVX2 the same code compiled for AVX2 runs, chosen at run
/// time (`lanes::x86`): a default build targets SSE2 only, and a vectorized loop twice as wide is twice as fast
/// (measured in BENCHMARKS.md).
#[inline(always)]
pub(crate) fn rows_wide<F: Fn(i32, usize) -> u8>(ws: &[u8], c: &[i16], y: &mut [u8], f: F) {
    #[cfg(target_arch = "x86_64")]
    let f = match super::lanes::x86::rows_wide(ws, c, y, f) {
        None => return,
        Some(f) => f,
    };
    rows_wide_plain(ws, c, y, f);
}

/// [`rows_wide`] for whatever the build targets.
#[inline(always)]
pub(crate) fn rows_wide_plain<F: Fn(i32, usize) -> u8>(ws: &[u8], c: &[i16], y: &mut [u8], f: F) {
    let n = c.len().max(1);
    for (o, (d, row)) in y.iter_mut().zip(ws.chunks_exact(n)).enumerate() {
        let acc = row
            .iter()
            .zip(c)
            .map(|(&a, &b)| i32::from(i16::from(a as i8)) * i32::from(b))
            .fold(0i32, i32::wrapping_add);
        *d = f(acc, o);
    }
}

/// Four rows over a widened column in order (the Cortex-M3's im2col kernel): one halfword load and four
/// multiply-adds per column.
#[cfg_attr(all(target_arch = "arm", target_feature = "dsp"), allow(dead_code))]
#[inline(always)]
pub(crate) fn dot4_wide(w: [&[u8]; 4], c: &[i16], acc: &mut [i32; 4]) {
    #[cfg(all(target_arch = "arm", not(target_feature = "dsp")))]
    {
        *acc = super::lanes::loops::dot4_wide(w, c, *acc);
    }
    #[cfg(not(all(target_arch = "arm", not(target_feature = "dsp"))))]
    dot4_wide_plain(w, c, acc);
}

/// [`dot4_wide`] in Rust: the reference of its assembly loop, and the kernel itself off Arm.
#[cfg_attr(
    all(target_arch = "arm", not(target_feature = "dsp")),
    allow(dead_code)
)]
#[inline(always)]
pub(crate) fn dot4_wide_plain(w: [&[u8]; 4], c: &[i16], acc: &mut [i32; 4]) {
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    let [w0, w1, w2, w3] = w;
    for ((((&v, &b0), &b1), &b2), &b3) in c.iter().zip(w0).zip(w1).zip(w2).zip(w3) {
        keep_rolled();
        let v = i32::from(v);
        a0 = a0.wrapping_add(i32::from(b0 as i8) * v);
        a1 = a1.wrapping_add(i32::from(b1 as i8) * v);
        a2 = a2.wrapping_add(i32::from(b2 as i8) * v);
        a3 = a3.wrapping_add(i32::from(b3 as i8) * v);
    }
    *acc = [a0, a1, a2, a3];
}

/// Three rows over a column in [`PAIRED`] order (the Cortex-M4/M7's im2col kernel): per four columns two word
/// loads of the column, and per row one word load, two SXTB16 and two SMLAD. Rows shorter than the others (an
/// empty one, for [`dot1_wide`]) stop contributing where they end.
#[cfg_attr(
    not(all(target_arch = "arm", target_feature = "dsp")),
    allow(dead_code)
)]
#[inline(always)]
pub(crate) fn dot3_wide_lanes(w: [&[u8]; 3], c: &[i16], acc: &mut [i32; 3]) {
    use super::lanes::{smlad, sxtb16, sxtb16_ror8};
    let pair = |lo: i16, hi: i16| u32::from(lo as u16) | u32::from(hi as u16) << 16;
    let n = c.len().min(w[0].len());
    let whole = n - n % 4;
    let [mut a0, mut a1, mut a2] = *acc;
    let cs = c.get(..whole).unwrap_or(&[]);
    let rows = w.map(|r| r.get(..whole.min(r.len())).unwrap_or(&[]));
    let (r0, r1, r2) = (
        rows[0].chunks_exact(4),
        rows[1].chunks_exact(4),
        rows[2].chunks_exact(4),
    );
    if rows[1].len() == whole && rows[2].len() == whole {
        for (cc, ((c0, c1), c2)) in cs.chunks_exact(4).zip(r0.zip(r1).zip(r2)) {
            let (x02, x13) = (pair(cc[0], cc[1]), pair(cc[2], cc[3]));
            let mac = |a: i32, b: &[u8]| {
                let v = word(b);
                smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a))
            };
            (a0, a1, a2) = (mac(a0, c0), mac(a1, c1), mac(a2, c2));
        }
    } else {
        for (cc, c0) in cs.chunks_exact(4).zip(r0) {
            let v = word(c0);
            a0 = smlad(
                sxtb16_ror8(v),
                pair(cc[2], cc[3]),
                smlad(sxtb16(v), pair(cc[0], cc[1]), a0),
            );
        }
    }
    // The last n % 4 columns, in order.
    let tail = |r: &[u8], a: i32| {
        let t = r.get(whole..n.min(r.len())).unwrap_or(&[]);
        let ct = c.get(whole..n).unwrap_or(&[]);
        t.iter().zip(ct).fold(a, |a, (&b, &v)| {
            a.wrapping_add(i32::from(b as i8) * i32::from(v))
        })
    };
    *acc = [tail(w[0], a0), tail(w[1], a1), tail(w[2], a2)];
}

/// Four rows a value at a time (the Cortex-M3 kernel).
#[cfg_attr(all(target_arch = "arm", target_feature = "dsp"), allow(dead_code))]
#[inline(always)]
pub(crate) fn dot4_scalar(w: [&[u8]; 4], x: &[u8], zp: i32, acc: &mut [i32; 4]) {
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    let [w0, w1, w2, w3] = w;
    for ((((&v, &b0), &b1), &b2), &b3) in x.iter().zip(w0).zip(w1).zip(w2).zip(w3) {
        keep_rolled();
        let v = i32::from(v as i8) - zp;
        a0 = a0.wrapping_add(i32::from(b0 as i8) * v);
        a1 = a1.wrapping_add(i32::from(b1 as i8) * v);
        a2 = a2.wrapping_add(i32::from(b2 as i8) * v);
        a3 = a3.wrapping_add(i32::from(b3 as i8) * v);
    }
    *acc = [a0, a1, a2, a3];
}

/// Nothing, as an instruction sequence: keeps the compiler from unrolling the loop it is in on a Cortex-M (LLVM
/// does not unroll a loop with a call in it, and inline assembly counts as one), where unrolling
/// [`dot4_scalar`] spilled its pointers and sums to the stack (measured on the Cortex-M3: 4.3 instructions per
/// multiply-add unrolled, see BENCHMARKS.md).
#[inline(always)]
pub(crate) fn keep_rolled() {
    #[cfg(target_arch = "arm")]
    #[allow(unsafe_code)]
    // SAFETY: an empty sequence of instructions: it reads and writes nothing.
    unsafe {
        core::arch::asm!("", options(nomem, nostack, preserves_flags))
    }
}

/// Four bytes as a little-endian word (one unaligned load on the cores that have them).
#[cfg_attr(
    not(all(target_arch = "arm", target_feature = "dsp")),
    allow(dead_code)
)]
#[inline(always)]
fn word(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_le_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// Three rows four columns at a time in 16-bit lanes (the Cortex-M4/M7 kernel, see the module's notes); the
/// last `len % 4` columns a row at a time.
#[cfg_attr(
    not(all(target_arch = "arm", target_feature = "dsp")),
    allow(dead_code)
)]
#[inline(always)]
pub(crate) fn dot3_lanes<'a>(w: [&'a [u8]; 3], x: &'a [u8], zp: i32, acc: &mut [i32; 3]) {
    use super::lanes::{smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8};
    let n = w.iter().fold(x.len(), |n, r| n.min(r.len()));
    let whole = n - n % 4;
    // −zp in both 16-bit lanes: x − zp ∈ [−255, 255] fits a lane.
    let offset = u32::from((zp as i16).wrapping_neg() as u16) * 0x0001_0001;
    let [mut a0, mut a1, mut a2] = *acc;
    let [w0, w1, w2] = w.map(|r| r.get(..whole).unwrap_or(&[]));
    let xs = x.get(..whole).unwrap_or(&[]);
    let rows = w0
        .chunks_exact(4)
        .zip(w1.chunks_exact(4))
        .zip(w2.chunks_exact(4));
    for (xc, ((c0, c1), c2)) in xs.chunks_exact(4).zip(rows) {
        let xv = word(xc);
        let (x02, x13) = (sxtab16(offset, xv), sxtab16_ror8(offset, xv));
        let mac = |a: i32, c: &[u8]| {
            let v = word(c);
            smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a))
        };
        (a0, a1, a2) = (mac(a0, c0), mac(a1, c1), mac(a2, c2));
    }
    // The last n % 4 columns in one plain loop over the three rows (a call of `dot1` per row cost more than the
    // columns: LeNet-5's conv1 has 25).
    let t = |r: &'a [u8]| r.get(whole..n).unwrap_or(&[]);
    let (t0, t1, t2) = (t(w[0]), t(w[1]), t(w[2]));
    for (((&xv, &b0), &b1), &b2) in t(x).iter().zip(t0).zip(t1).zip(t2) {
        let xv = i32::from(xv as i8) - zp;
        a0 = a0.wrapping_add(i32::from(b0 as i8) * xv);
        a1 = a1.wrapping_add(i32::from(b1 as i8) * xv);
        a2 = a2.wrapping_add(i32::from(b2 as i8) * xv);
    }
    *acc = [a0, a1, a2];
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;

    /// Bytes from a small linear congruential generator: every value, extremes included.
    fn bytes(seed: u32, n: usize) -> [u8; 64] {
        let mut s = seed;
        core::array::from_fn(|i| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if i < n {
                (s >> 24) as u8
            } else {
                0
            }
        })
    }

    #[test]
    fn paired_widening_is_widening_then_pairing() {
        let src: std::vec::Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        for zp in [-128, -5, 0, 7, 127] {
            let mut want: std::vec::Vec<i16> = src
                .iter()
                .map(|&b| i16::from(b as i8) - zp as i16)
                .collect();
            for g in want.chunks_exact_mut(4) {
                g.swap(1, 2);
            }
            let mut got = std::vec![0i16; src.len()];
            widen_lanes(&mut got, &src, zp);
            assert_eq!(got, want, "zp {zp}");
        }
    }

    #[test]
    fn every_kernel_agrees_with_one_row_at_a_time_for_every_length_and_zero_point() {
        for n in 0..=41 {
            for zp in [-128, -5, 0, 3, 127] {
                let x = bytes(n as u32, n);
                let rows: [[u8; 64]; 4] =
                    core::array::from_fn(|r| bytes(100 + r as u32 * 7 + n as u32, n));
                let w = rows.each_ref().map(|r| &r[..n]);
                let want: [i32; 4] = core::array::from_fn(|r| 5 + dot1(w[r], &x[..n], zp));
                let mut four = [5; 4];
                dot4_scalar(w, &x[..n], zp, &mut four);
                assert_eq!(four, want, "4 rows, {n} columns, zero point {zp}");
                let mut three = [5; 3];
                dot3_lanes([w[0], w[1], w[2]], &x[..n], zp, &mut three);
                assert_eq!(
                    three,
                    want[..3],
                    "3 rows in lanes, {n} columns, zero point {zp}"
                );
            }
        }
    }

    #[cfg(not(target_arch = "arm"))]
    #[test]
    fn the_hosts_wide_rows_agree_with_one_row_at_a_time() {
        // Through the dispatch (AVX2 where the CPU has it) and the plain build, for lengths around the vector
        // widths and every zero point's extremes.
        for n in [1usize, 7, 15, 16, 17, 31, 32, 33, 63] {
            for zp in [-128i32, 0, 127] {
                let rows = 5;
                let ws: std::vec::Vec<u8> = (0..rows)
                    .flat_map(|r| bytes(300 + r as u32 + n as u32, n)[..n].to_vec())
                    .collect();
                let x = bytes(7 * n as u32, n);
                let c: std::vec::Vec<i16> = x[..n]
                    .iter()
                    .map(|&v| i16::from(v as i8) - zp as i16)
                    .collect();
                let want: std::vec::Vec<i32> = (0..rows)
                    .map(|r| dot1(&ws[r * n..(r + 1) * n], &x[..n], zp))
                    .collect();
                for plain in [false, true] {
                    let mut got = std::vec![0u8; rows];
                    let sums = core::cell::RefCell::new(std::vec![0i32; rows]);
                    let f = |acc: i32, o: usize| {
                        sums.borrow_mut()[o] = acc;
                        0
                    };
                    if plain {
                        rows_wide_plain(&ws, &c, &mut got, f);
                    } else {
                        rows_wide(&ws, &c, &mut got, f);
                    }
                    assert_eq!(
                        *sums.borrow(),
                        want,
                        "{n} columns, zero point {zp}, plain {plain}"
                    );
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_vnni_rows_agree_with_one_row_at_a_time() {
        // Lengths around the 64-byte chunk (masked last chunks), LeNet-300-100's layers and the widest column,
        // row counts around the block of four, every zero point's extremes. Where the CPU (or the compiler, see
        // build.rs) has no AVX-512 VNNI the kernel must decline, computing nothing.
        for n in [1usize, 2, 63, 64, 65, 100, 127, 128, 300, 784, 1024] {
            for rows in [1usize, 3, 4, 5, 9] {
                for zp in [-128i32, -3, 127] {
                    let noise = |seed: u32, len: usize| -> std::vec::Vec<u8> {
                        let mut s = seed;
                        (0..len)
                            .map(|_| {
                                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                                (s >> 24) as u8
                            })
                            .collect()
                    };
                    let ws = noise(500 + (rows * n) as u32, rows * n);
                    let x = noise(11 * n as u32 + 1, n);
                    let want: std::vec::Vec<i32> = (0..rows)
                        .map(|r| dot1(&ws[r * n..(r + 1) * n], &x[..n], zp))
                        .collect();
                    let mut got = std::vec![0i32; rows];
                    let done = super::super::lanes::x86::rows_int8(&ws, (&x[..n], zp), &mut got);
                    if !done {
                        assert_eq!(got, std::vec![0; rows]);
                        continue;
                    }
                    assert_eq!(got, want, "{n} columns, {rows} rows, zp {zp}");
                }
            }
        }
    }

    /// `f(0), …, f(n − 1)` as little-endian i32 bytes (quantization parameters for other modules' tests).
    pub(crate) fn le_i32s(n: i32, f: impl Fn(i32) -> i32) -> std::vec::Vec<u8> {
        (0..n).flat_map(|o| f(o).to_le_bytes()).collect()
    }

    /// Bytes for other modules' tests.
    pub(crate) fn test_bytes(seed: u32, n: usize) -> [u8; 64] {
        bytes(seed, n)
    }

    /// The wide kernels against [`dot1`] on the same values: `x − zp` widened, in order and in [`PAIRED`] order
    /// (the M4/M7 kernel run here through the host's model of its instructions), every length, five zero points.
    #[test]
    fn the_wide_kernels_agree_with_one_row_at_a_time() {
        for n in 0..=41 {
            for zp in [-128, -5, 0, 3, 127] {
                let x = bytes(n as u32 + 50, n);
                let rows: [[u8; 64]; 4] =
                    core::array::from_fn(|r| bytes(200 + r as u32 * 11 + n as u32, n));
                let w = rows.each_ref().map(|r| &r[..n]);
                let want: [i32; 4] = core::array::from_fn(|r| 5 + dot1(w[r], &x[..n], zp));
                let column: std::vec::Vec<i16> = x[..n]
                    .iter()
                    .map(|&b| i16::from(b as i8) - zp as i16)
                    .collect();
                let mut four = [5; 4];
                dot4_wide(w, &column, &mut four);
                assert_eq!(four, want, "4 wide rows, {n} columns, zero point {zp}");
                let mut paired = column.clone();
                for group in paired.chunks_exact_mut(4) {
                    group.swap(1, 2);
                }
                let mut three = [5; 3];
                dot3_wide_lanes([w[0], w[1], w[2]], &paired, &mut three);
                assert_eq!(
                    three,
                    want[..3],
                    "3 rows in lanes, {n} columns, zero point {zp}"
                );
                let mut one = [5; 3];
                dot3_wide_lanes([w[0], &[], &[]], &paired, &mut one);
                assert_eq!(
                    one[0], want[0],
                    "1 row in lanes, {n} columns, zero point {zp}"
                );
                assert_eq!(
                    5 + dot1_wide(w[0], &column),
                    want[0],
                    "1 wide row, {n} columns"
                );
            }
        }
    }

    /// `wide_rows_sums` (blocks of [`ROWS`] rows, then one at a time) against [`dot1_wide`] row by row: row counts
    /// around the group, several lengths.
    #[test]
    fn the_rows_sums_are_each_rows_dot_product() {
        for n in [1, 4, 7, 16, 33] {
            let x = bytes(n as u32 + 7, n);
            let col: std::vec::Vec<i16> = x[..n].iter().map(|&b| i16::from(b as i8) + 3).collect();
            let mut paired = col.clone();
            widen_pairs(&mut paired);
            for rows in 0..=9 {
                let ws: std::vec::Vec<u8> = (0..rows)
                    .flat_map(|r| bytes(300 + r as u32 * 5 + n as u32, n)[..n].to_vec())
                    .collect();
                let mut got = std::vec![0i32; rows];
                wide_rows_sums(&ws, &paired, &mut got);
                for (r, &g) in got.iter().enumerate() {
                    assert_eq!(
                        g,
                        dot1_wide(&ws[r * n..(r + 1) * n], &col),
                        "row {r} of {rows}, {n} columns"
                    );
                }
            }
        }
    }

    #[test]
    fn the_extremes_do_not_overflow_a_lane() {
        // w = −128 and x − zp = 255 (x = 127, zp = −128): the largest product in magnitude.
        let (w, x) = ([0x80u8; 16], [127u8; 16]);
        let mut acc = [0; 3];
        dot3_lanes([&w; 3], &x, -128, &mut acc);
        assert_eq!(acc, [16 * -128 * 255; 3]);
    }
}
