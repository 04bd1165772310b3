//! The prepared FULLY_CONNECTED of x86-64 hosts with AVX-512 VNNI: the kept weights as a matrix by groups of four
//! inputs, walked input-stationary so that groups of inputs at their zero point are skipped.
//!
//! After a ReLU, or on an image's background, most inputs of a FULLY_CONNECTED sit at the zero point of −128, and
//! `w · (x − zp)` is then zero whatever the weights. A row-by-row dot product cannot skip them; this layout can:
//! the input is read four bytes at a time, made unsigned (`u = x + 128`, a byte whose value is zero exactly at
//! −128), and only the groups of four with a nonzero byte are multiplied — each as one broadcast word against the
//! group's block of weights, sixteen outputs per VPDPBUSD. `Σ w · (x − zp) = Σ_active w · u − (128 + zp) · Σ w`:
//! skipped groups contribute `w · 0`, so the sum is exact for any zero point, and the correction `(128 + zp) · Σ w`
//! is a constant of the weights and the input's zero point, computed once here. The cost therefore follows the
//! input's nonzero groups (LeNet-300-100 on MNIST: about a quarter of the first layer's), never more than one
//! VPDPBUSD per 64 multiply-adds.
//!
//! Layout (`O` outputs padded to `P`, a multiple of 16; `G = ⌈input / 4⌉` groups), little-endian:
//! - `P × i32`: each output's correction `(128 + zp) · Σ w` (zero for padding);
//! - `G × P × 4 × i8`: group `g`'s block, output `o`'s four weights of inputs `4g .. 4g + 4` at `(g · P + o) · 4`
//!   (zeros where no weight was kept, past the input, and for padding).
//!
//! The plain kernel ([`sums_plain`]) computes the same sums in safe Rust on every target; the tests hold both to
//! each other and to the stored streams' kernel.

use crate::error::{Error, Result};
use crate::quant::Output;
use crate::weights::{Quant, Weights};

/// Outputs per 512-bit register of sums.
pub(crate) const LANES: usize = 16;

/// Most input groups of a prepared FULLY_CONNECTED (8,192 inputs, the windows' own limit).
const MAX_GROUPS: usize = 2048;

/// Most registers of sums one pass over the active groups fills (384 outputs; with the broadcast, the input and
/// its mask, 27 of the 32 registers).
pub(crate) const MAX_TILE: usize = 24;

/// Registers of sums come in pairs: a pass then has at least two independent chains of VPDPBUSD (one chain waits
/// on each result's latency), and a pass of any even size up to [`MAX_TILE`] has its own kernel, so that a
/// layer of up to 384 outputs scans its input once (LeNet-300-100's 300 outputs in 16 + 2 + 1 registers had taken
/// three scans).
pub(crate) const PAIR: usize = 2;

/// The shape of a columns form: outputs and input bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Columns {
    pub outputs: usize,
    pub input: usize,
}

impl Columns {
    /// Registers of sums: the outputs padded to a whole number of [`PAIR`]s of registers.
    pub fn chunks(&self) -> usize {
        self.outputs.div_ceil(PAIR * LANES) * PAIR
    }

    /// Groups of four inputs.
    pub fn groups(&self) -> usize {
        self.input.div_ceil(4)
    }

    /// Bytes of one group's block.
    pub fn stride(&self) -> usize {
        self.chunks() * LANES * 4
    }

    /// Bytes of the form, `None` on overflow or past [`MAX_GROUPS`].
    pub fn len(&self) -> Option<usize> {
        if self.groups() > MAX_GROUPS {
            return None;
        }
        self.stride()
            .checked_mul(self.groups())?
            .checked_add(self.chunks().checked_mul(LANES * 4)?)
    }
}

/// Writes the columns form of the sparse weights `w` into `mem` (exactly [`Columns::len`] bytes, zeroed by the
/// caller), `zp` being the input's zero point. Fails with [`Error::CorruptStream`] if a weight falls outside the
/// matrix, is not an int8 value, or the streams hold another count of weights than `kept`.
pub(crate) fn fill(
    c: &Columns,
    w: &Weights,
    op: u16,
    zp: i32,
    kept: usize,
    mem: &mut [u8],
) -> Result<()> {
    let corrupt = Error::CorruptStream { op };
    let len = c.len().ok_or(Error::Overflow)?;
    let mem = mem.get_mut(..len).ok_or(Error::Overflow)?;
    let (corrections, matrix) = mem.split_at_mut(c.chunks() * LANES * 4);
    let (stride, mut placed, mut bad) = (c.stride(), 0usize, false);
    super::prepared::kept_taps(w, op, |o, taps| {
        let mut sum = 0i32;
        for &(col, v) in taps {
            let col = col as usize;
            let at = (col / 4)
                .checked_mul(stride)
                .and_then(|a| a.checked_add(o.checked_mul(4)?.checked_add(col % 4)?));
            match (i8::try_from(v), at.and_then(|a| matrix.get_mut(a))) {
                (Ok(b), Some(d)) if col < c.input && o < c.outputs => {
                    *d = b as u8;
                    sum = sum.wrapping_add(v);
                    placed += 1;
                }
                _ => bad = true,
            }
        }
        match corrections.get_mut(4 * o..4 * o + 4) {
            Some(d) => {
                let old = i32::from_le_bytes([d[0], d[1], d[2], d[3]]);
                let add = (128 + zp).wrapping_mul(sum);
                d.copy_from_slice(&old.wrapping_add(add).to_le_bytes());
            }
            None => bad = true,
        }
    })?;
    if bad || placed != kept {
        return Err(corrupt);
    }
    Ok(())
}

/// The outputs of the columns form `mem` (shape `c`) for the int8 input `x`, requantized by `q` into `y`: per pass
/// up to [`MAX_TILE`] registers of sums over the input's active groups ([`sums_any`]), then the pass's outputs
/// requantized in order.
pub(crate) fn run(c: &Columns, mem: &[u8], x: &[u8], (q, output): (&Quant, &Output), y: &mut [u8]) {
    let x = x.get(..c.input).unwrap_or(x);
    let Some((corrections, matrix)) = mem.split_at_checked(c.chunks() * LANES * 4) else {
        return;
    };
    let mut sums = [0i32; MAX_TILE * LANES];
    let mut chunk = 0;
    while chunk < c.chunks() {
        let tile = tile_for(c.chunks() - chunk);
        let first = chunk * LANES;
        let count = (tile * LANES).min(c.outputs - first);
        sums_any((matrix, c.stride(), chunk), x, tile, &mut sums);
        for (k, s) in sums.iter_mut().take(count).enumerate() {
            *s = s.wrapping_sub(crate::bytes::i32_at(corrections, first + k));
        }
        if let (Some(s), Some(ys)) = (sums.get(..count), y.get_mut(first..first + count)) {
            q.outputs(first, s, output, ys);
        }
        chunk += tile;
    }
}

/// Registers of sums in the next pass over `left` registers (even): all of them, up to [`MAX_TILE`].
fn tile_for(left: usize) -> usize {
    left.min(MAX_TILE)
}

/// The `tile` registers of sums of outputs `16 · chunk ..` over the groups of four inputs of `x` with a byte other
/// than −128, into `sums`: with AVX-512 VNNI where the CPU has it, by [`sums_plain`] otherwise. `at` is the matrix,
/// its groups' stride and the first register.
#[inline(always)]
fn sums_any(at: (&[u8], usize, usize), x: &[u8], tile: usize, sums: &mut [i32; MAX_TILE * LANES]) {
    #[cfg(target_arch = "x86_64")]
    if super::lanes::x86::columns_int8(at, x, tile, sums) {
        return;
    }
    sums_plain(at, x, tile, sums);
}

/// The four bytes of group `g` of `x` made unsigned (`x + 128`; −128 past the input, so zero there).
#[inline(always)]
pub(crate) fn group_word(x: &[u8], g: usize) -> u32 {
    let mut b = [0x80u8; 4];
    for (k, d) in b.iter_mut().enumerate() {
        if let Some(&v) = x.get(4 * g + k) {
            *d = v;
        }
    }
    u32::from_le_bytes(b) ^ 0x8080_8080
}

/// [`sums_any`] in plain Rust: `sums[16k + l] = Σ_g Σ_b block_g[(16 · (chunk + k) + l) · 4 + b] · u_g[b]` over the
/// groups `g` whose word `u_g` ([`group_word`]) is nonzero, for the `tile` registers k (the rest of `sums`
/// zeroed); blocks that fall outside `matrix` count as zeros.
pub(crate) fn sums_plain(
    (matrix, stride, chunk): (&[u8], usize, usize),
    x: &[u8],
    tile: usize,
    sums: &mut [i32; MAX_TILE * LANES],
) {
    sums.fill(0);
    let width = tile.min(MAX_TILE) * LANES;
    for g in 0..x.len().div_ceil(4) {
        let u = group_word(x, g);
        if u == 0 {
            continue;
        }
        let u = u.to_le_bytes();
        let start = g * stride + chunk * LANES * 4;
        let block = matrix.get(start..start + width * 4).unwrap_or(&[]);
        for (s, w) in sums.iter_mut().zip(block.chunks_exact(4)) {
            let dot = (0..4).fold(0i32, |a, b| {
                a.wrapping_add(i32::from(w[b] as i8) * i32::from(u[b]))
            });
            *s = s.wrapping_add(dot);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// `n` pseudo-random bytes from `seed`.
    fn bytes(seed: u32, n: usize) -> std::vec::Vec<u8> {
        let mut s = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 7) as u8
            })
            .collect()
    }

    /// A matrix and an input with some groups at −128 (in both whole blocks of 64 inputs and the tail): the VNNI kernel (where the CPU has it) gives the
    /// plain kernel's sums for every tile size, and the plain kernel gives the direct sum.
    #[test]
    fn columns_kernels_agree_with_the_direct_sum() {
        let c = Columns {
            outputs: 421,
            input: 150,
        };
        let (stride, chunks) = (c.stride(), c.chunks());
        let matrix = bytes(5, stride * c.groups());
        let mut x = bytes(3, c.input);
        x[4..8].fill(0x80);
        x[12..16].fill(0x80);
        x[100..108].fill(0x80);
        x[148..].fill(0x80);
        let active = (0..c.groups()).filter(|&g| group_word(&x, g) != 0).count();
        assert_eq!(active, c.groups() - 5, "five groups at −128 skipped");
        for chunk in 0..chunks {
            for tile in (PAIR..=MAX_TILE)
                .step_by(PAIR)
                .filter(|t| chunk + t <= chunks)
            {
                let (mut plain, mut any) = ([0i32; MAX_TILE * LANES], [0i32; MAX_TILE * LANES]);
                sums_plain((&matrix, stride, chunk), &x, tile, &mut plain);
                sums_any((&matrix, stride, chunk), &x, tile, &mut any);
                assert_eq!(plain[..tile * LANES], any[..tile * LANES], "tile {tile}");
                for (k, &s) in plain.iter().take(tile * LANES).enumerate() {
                    let o = chunk * LANES + k;
                    let direct = (0..c.input).fold(0i32, |a, j| {
                        let w = matrix[(j / 4) * stride + o * 4 + j % 4] as i8;
                        a + i32::from(w) * (i32::from(x[j] as i8) + 128)
                    });
                    assert_eq!(s, direct, "output {o}");
                }
            }
        }
    }
}
