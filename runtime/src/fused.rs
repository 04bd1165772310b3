//! Sparse shared-weight rows dotted with one int8 input vector, the integer FULLY_CONNECTED kernel's work, with
//! the decoding of both streams built in: for streams validated at load and decoded on the fly, which is what a
//! device runs. (The chunked walk, `stream::walk`, remains for checked, zstd and arena-decoded streams and for
//! the other kernels.)
//!
//! Why a walk of its own: the chunked one decodes 64 positions into columns, then 64 indices into bytes, then
//! hands both arrays and the rows' cut points to the kernel, and those arrays, cuts and loop ends cost more than
//! the decoding (LeNet-300-100 on the Cortex-M3: 83 instructions per kept weight, BENCHMARKS.md). A single loop
//! over both decoders and the multiply-add needs some 18 live values and spills on a core with 13 registers
//! (measured: 92 per kept weight). Here two tight loops share the work per run of a row's weights: [`gather`]
//! decodes positions and loads `x[col]` for each kept weight into a small array, stopping at the row's end;
//! [`dot`] decodes the indices and multiplies-adds. Each keeps its values in registers.

use crate::stream::{Decode, Layout};

/// Weights gathered at a time.
const RUN: usize = 64;

/// Where [`gather`] stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// After `RUN` weights, or after the last symbol (`left` = 0).
    Full,
    /// A symbol moved the cursor to `col ≥ n` (a later row); `true` if it places a weight there.
    Wrapped(bool),
}

/// The state of a walk over the position symbols.
struct Cursor {
    /// Column within the current row (< n, except right after a wrapping symbol).
    col: usize,
    /// Position symbols not read yet.
    left: u32,
}

/// Calls `row_done(row, Σ c[index] · (x[col] − zp))` for every row of `layout`, in order, empty rows included.
/// `x.len()` must equal `layout.fan_in` (the caller checks; other cases take the chunked walk). The streams must
/// have been validated by a checked walk at load: nothing here is checked, and nothing read can be out of bounds
/// either way.
#[inline(always)]
pub(crate) fn row_dots<P: Decode, I: Decode>(
    mut positions: P,
    mut indices: I,
    layout: Layout,
    (x, zp): (&[u8], i32),
    codebook: &[i8; 256],
    mut row_done: impl FnMut(usize, i32),
) {
    let n = x.len();
    let filler = (1usize << layout.position_bits.min(16)) - 1;
    let mut at = Cursor {
        col: 0,
        left: layout.symbols,
    };
    let (mut row, mut acc, mut first) = (0usize, 0i32, 0usize);
    let mut vals = [0i8; RUN];
    if n == 0 {
        at.left = 0;
    }
    while at.left > 0 || first > 0 {
        let (k, stop) = gather(&mut positions, &mut at, filler, x, first, &mut vals);
        acc = acc.wrapping_add(dot(
            &mut indices,
            vals.get(..k).unwrap_or(&[]),
            zp,
            codebook,
        ));
        first = 0;
        if let Stop::Wrapped(placed) = stop {
            while at.col >= n {
                row_done(row, acc);
                (row, acc, at.col) = (row + 1, 0, at.col - n);
            }
            if placed {
                vals[0] = x.get(at.col).map_or(0, |&b| b as i8);
                (first, at.col) = (1, at.col + 1);
            }
        }
    }
    for r in row..layout.rows {
        row_done(r, acc);
        acc = 0;
    }
}

/// Decodes position symbols and loads `x[col]` for each kept weight into `vals[first..]`, until `RUN` weights, the
/// last symbol, or a symbol that leaves the row; returns (weights in `vals`, why it stopped).
#[inline(never)]
fn gather<P: Decode>(
    positions: &mut P,
    at: &mut Cursor,
    filler: usize,
    x: &[u8],
    first: usize,
    vals: &mut [i8; RUN],
) -> (usize, Stop) {
    // The row's length is the input's: the bounds check on `x[col]` below folds into the row-end test.
    let n = x.len();
    // Local copies, written back at the end: values whose address is not taken live in registers.
    let mut p = positions.clone();
    let (mut col, mut left, mut k) = (at.col, at.left, first);
    let mut stop = Stop::Full;
    while k < RUN {
        let Some(l) = left.checked_sub(1) else {
            break;
        };
        left = l;
        let g = p.next::<false>() as usize;
        // col < n ≤ 2^28 and g < 2^16: no overflow.
        col += g;
        if col >= n {
            stop = Stop::Wrapped(g != filler);
            break;
        }
        if g != filler {
            vals[k % RUN] = x.get(col).map_or(0, |&b| b as i8);
            (k, col) = (k + 1, col + 1);
        }
    }
    (at.col, at.left) = (col, left);
    *positions = p;
    (k, stop)
}

/// Decodes one index per value and returns Σ c[index] · (value − zp).
#[inline(never)]
fn dot<I: Decode>(indices: &mut I, vals: &[i8], zp: i32, codebook: &[i8; 256]) -> i32 {
    let mut d = indices.clone();
    let mut acc = 0i32;
    for &v in vals {
        let c = i32::from(codebook[d.next::<false>() as usize & 0xFF]);
        acc = acc.wrapping_add(c.wrapping_mul(i32::from(v) - zp));
    }
    *indices = d;
    acc
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::stream::{Huffman, HuffmanCodes, Packed};
    use std::vec::Vec;

    /// xorshift: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }
    }

    /// MSB-first bit writer.
    #[derive(Default)]
    struct Bits(Vec<u8>, u32);
    impl Bits {
        fn put(&mut self, value: u32, width: u32) {
            for b in (0..width).rev() {
                if self.1 % 8 == 0 {
                    self.0.push(0);
                }
                let last = self.0.last_mut().unwrap();
                *last |= (((value >> b) & 1) as u8) << (7 - self.1 % 8);
                self.1 += 1;
            }
        }
    }

    /// Canonical codes (length, symbol order) of `lengths`: (code, length) per symbol.
    fn canonical(lengths: &[u8]) -> Vec<(u32, u32)> {
        let mut order: Vec<usize> = (0..lengths.len()).filter(|&s| lengths[s] > 0).collect();
        order.sort_by_key(|&s| (lengths[s], s));
        let (mut codes, mut code, mut len) = (std::vec![(0, 0); lengths.len()], 0u32, 0u32);
        for s in order {
            code <<= u32::from(lengths[s]) - len;
            len = u32::from(lengths[s]);
            codes[s] = (code, len);
            code += 1;
        }
        codes
    }

    /// Lengths 1, 2, …, m − 1, m − 1 in a shuffled symbol order (a complete code; codes past the 8-bit lookup
    /// for m > 9), or all equal for m = 32.
    fn lengths(m: usize, rng: &mut Rng) -> Vec<u8> {
        if m > 16 {
            return std::vec![5; m];
        }
        let mut l: Vec<u8> = (1..=m as u8).map(|v| v.min(m as u8 - 1).max(1)).collect();
        for i in (1..m).rev() {
            l.swap(i, rng.below(i as u64 + 1) as usize);
        }
        l
    }

    /// Every coding of both streams gives the row sums of the kept weights, rows that wrap through fillers and
    /// empty rows included.
    #[test]
    fn row_dots_give_the_sums_of_the_kept_weights_with_every_coding() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..300 {
            let (rows, n) = (1 + rng.below(6) as usize, 1 + rng.below(70) as usize);
            let (r, b) = (1 + rng.below(5) as u32, 1 + rng.below(5) as u32);
            let density = 1 + rng.below(100);
            let mut kept: Vec<(usize, usize)> = Vec::new();
            for p in 0..rows * n {
                if rng.below(100) < density {
                    kept.push((p, rng.below(1 << b) as usize));
                }
            }
            let filler = (1usize << r) - 1;
            // Position symbols: fillers while the gap is too long, then the gap.
            let (mut symbols, mut cursor) = (Vec::new(), 0usize);
            for &(p, _) in &kept {
                let mut gap = p - cursor;
                while gap >= filler {
                    symbols.push(filler as u32);
                    gap -= filler;
                }
                symbols.push(gap as u32);
                cursor = p + 1;
            }
            let codebook: [i8; 256] = core::array::from_fn(|_| rng.below(256) as u8 as i8);
            let x: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
            let zp = rng.below(256) as i32 - 128;
            let mut want = std::vec![0i32; rows];
            for &(p, i) in &kept {
                want[p / n] += i32::from(codebook[i]) * (i32::from(x[p % n] as i8) - zp);
            }
            let (pl, il) = (lengths(1 << r, &mut rng), lengths(1 << b, &mut rng));
            let (pc, ic) = (canonical(&pl), canonical(&il));
            let (mut pp, mut ph, mut ip, mut ih) = (
                Bits::default(),
                Bits::default(),
                Bits::default(),
                Bits::default(),
            );
            for &g in &symbols {
                pp.put(g, r);
                ph.put(pc[g as usize].0, pc[g as usize].1);
            }
            for &(_, i) in &kept {
                ip.put(i as u32, b);
                ih.put(ic[i].0, ic[i].1);
            }
            let layout = Layout {
                symbols: symbols.len() as u32,
                position_bits: r,
                fan_in: n,
                rows,
                codebook_len: 1 << b,
            };
            let (pt, it) = (Huffman::new(&pl).unwrap(), Huffman::new(&il).unwrap());
            let check = |got: Vec<(usize, i32)>, coding: &str| {
                let expected: Vec<(usize, i32)> = want.iter().copied().enumerate().collect();
                assert_eq!(
                    got, expected,
                    "case {case}, {coding}: {rows}×{n}, r={r}, b={b}"
                );
            };
            let mut got = Vec::new();
            let input = (&x[..], zp);
            row_dots(
                Packed::new(&pp.0, r),
                Packed::new(&ip.0, b),
                layout,
                input,
                &codebook,
                |o, a| got.push((o, a)),
            );
            check(core::mem::take(&mut got), "packed/packed");
            let (p, i) = (HuffmanCodes::new(&ph.0, &pt), HuffmanCodes::new(&ih.0, &it));
            row_dots(p, i, layout, input, &codebook, |o, a| got.push((o, a)));
            check(core::mem::take(&mut got), "huffman/huffman");
            let (p, i) = (HuffmanCodes::new(&ph.0, &pt), Packed::new(&ip.0, b));
            row_dots(p, i, layout, input, &codebook, |o, a| got.push((o, a)));
            check(core::mem::take(&mut got), "huffman/packed");
            let (p, i) = (Packed::new(&pp.0, r), HuffmanCodes::new(&ih.0, &it));
            row_dots(p, i, layout, input, &codebook, |o, a| got.push((o, a)));
            check(core::mem::take(&mut got), "packed/huffman");
        }
    }
}
