//! Integer arithmetic shared by the integer-only kernels: TFLite's requantization (a Q31 multiplier and a shift,
//! double rounding) and the clamps of fused activations. No floating point here: clippy's `float_arithmetic`
//! lint is denied for this module.
#![deny(clippy::float_arithmetic)]

use crate::error::{Error, Result, Section};

/// `(a · b · 2 + 2³¹) >> 32` with TFLite's saturation: the high half of the doubled product, rounded half up.
#[inline(always)]
pub fn sat_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let p = i64::from(a) * i64::from(b);
    let nudge: i64 = if p >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((p + nudge) / (1i64 << 31)) as i32
}

/// [`sat_rounding_doubling_high_mul`] in five instructions on a 32-bit core: `(a · b + 2³⁰) >> 31`, an arithmetic
/// shift (floor). The same value: for `p = a·b ≥ 0` TFLite computes `(p + 2³⁰) / 2³¹` truncated, which is the
/// floor; for `p < 0` it truncates `(p + 1 − 2³⁰) / 2³¹`, a negative number, i.e. takes its ceiling, and
/// `⌈(p + 1 − 2³⁰) / 2³¹⌉ = ⌊(p + 1 − 2³⁰ + 2³¹ − 1) / 2³¹⌋ = ⌊(p + 2³⁰) / 2³¹⌋`. The one saturating case,
/// `a = b = i32::MIN`, is kept.
#[inline(always)]
pub fn high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    ((i64::from(a) * i64::from(b) + (1 << 30)) >> 31) as i32
}

/// `x / 2^e` rounded half away from zero, for `0 ≤ e ≤ 31`.
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, e: u32) -> i32 {
    let e = e.min(31);
    let mask: i32 = ((1i64 << e) - 1) as i32;
    let rem = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> e) + i32::from(rem > threshold)
}

/// TFLite's `MultiplyByQuantizedMultiplier`: `x · multiplier · 2^shift / 2³¹`, double rounding. The left shift
/// saturates instead of overflowing.
#[inline(always)]
pub fn requantize(x: i32, multiplier: i32, shift: i32) -> i32 {
    if shift <= 0 {
        // The usual case (a multiplier below 1): no left shift, so no 64-bit clamp either (measured on the
        // Cortex-M3: ~40 instructions less per output). Same result as the general path below.
        return rounding_divide_by_pot(high_mul(x, multiplier), shift.unsigned_abs().min(31));
    }
    let left = shift.max(0) as u32;
    let right = shift.saturating_neg().max(0) as u32;
    let shifted =
        (i64::from(x) << left.min(31)).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    rounding_divide_by_pot(high_mul(shifted, multiplier), right)
}

/// Checks a requantization pair as the format allows it: a multiplier ≥ 0, a shift in −31 ..= 30.
pub(crate) fn check_multiplier(section: Section, multiplier: i32, shift: i32) -> Result<()> {
    if multiplier < 0 || !(-31..=30).contains(&shift) {
        return Err(Error::InvalidValue {
            section,
            field: "requantization multiplier or shift",
            value: multiplier as u64,
        });
    }
    Ok(())
}

/// An accumulator requantized to int8: `requantize(acc, m, s) + zero_point`, clamped to `[lo, hi]` (the fused
/// activation's range, as the file stores it). For a weighted operator's parameters, which loading checked
/// (`check_multiplier`: `m ≥ 0`, `s ≤ 30`), so the usual right shift takes a path of its own: the high
/// multiply without its saturating case (`m = i32::MIN` is not a valid multiplier), the rounding shift, and the
/// clamp moved before the zero point's addition so that the sum cannot overflow (`clamp(r + zp, lo, hi) =
/// clamp(r, lo − zp, hi − zp) + zp` for int8 bounds and zero points). The same value as the general path:
/// measured on the Cortex-M3 this takes ~20 fewer instructions per output.
#[inline(always)]
pub(crate) fn to_i8(
    acc: i32,
    (multiplier, shift): (i32, i32),
    zero_point: i32,
    (lo, hi): (i32, i32),
) -> i8 {
    if shift <= 0 && multiplier >= 0 {
        return to_i8_right(acc, multiplier, shift.unsigned_abs(), zero_point, (lo, hi));
    }
    requantize(acc, multiplier, shift)
        .saturating_add(zero_point)
        .clamp(lo, hi) as i8
}

/// [`to_i8`]'s path for a multiplier ≥ 0 and a right shift by `e` (at most 31). (The kernels requantize with
/// [`Channel`]'s one multiply-add; `to_i8` is the reference the tests hold it to.)
#[inline(always)]
fn to_i8_right(acc: i32, multiplier: i32, e: u32, zero_point: i32, (lo, hi): (i32, i32)) -> i8 {
    let h = ((i64::from(acc) * i64::from(multiplier) + (1 << 30)) >> 31) as i32;
    let e = e.min(31);
    let mask = ((1u32 << e) - 1) as i32;
    let threshold = (mask >> 1) + i32::from(h < 0);
    let r = (h >> e) + i32::from(h & mask > threshold);
    (r.max(lo - zero_point).min(hi - zero_point) + zero_point) as i8
}

/// Output channels whose requantization a kernel decodes together into a [`Channel`] table on the stack
/// (1.5 KB): a multiple of both row groups of the dense kernels (three rows with DSP, four without), so that a
/// block never splits a group.
pub(crate) const BLOCK: usize = 96;

/// One output channel's requantization with its parameters read from the file once per run: the bias, the
/// multiplier and, for the usual right shift by `e ≥ 2`, `2^(e−2)` and `e − 1`, so that an output costs one 64-bit
/// multiply-add, a shift and the clamp ([`round_shift`]; measured on the Cortex-M4: DS-CNN −6.5 %, ResNet −4.3 %;
/// the dense FULLY_CONNECTED's per-output loop, which also decodes each channel, stayed ~38 instructions). Four words, so that decoding a channel is three loads, a few instructions and two
/// double-word stores; `repr(C)`, so that the assembly of [`table_run`] reads them as two double words.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Channel {
    bias: i32,
    multiplier: i32,
    /// `2^(e−2)` for the right shift by `e` (2 ..= 31); 0 marks the general path ([`requantize`]): a shift by 0 or
    /// 1, or a left shift.
    half: i32,
    /// `e − 1` on the fast path; the file's shift on the general path.
    shift: i32,
}

/// `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, m), e)` for `m ≥ 0` and `2 ≤ e ≤ 31` in one
/// 64-bit multiply-add (SMLAL) and one shift, given `half = 2^(e−2)` and `e1 = e − 1`. With `h` the high
/// multiply's result, TFLite's rounding shift is `⌊(h + 2^(e−1) − [h < 0]) / 2^e⌋` (for `e ≥ 1`: the remainder
/// beats the threshold exactly when adding `2^(e−1) − [h < 0]` carries into the quotient), and
/// `h = ⌊(acc·m + 2^30) / 2^31⌋`, so the nested floors are one: `⌊(acc·m + 2^30 + 2^(30+e) − [h < 0]·2^31) /
/// 2^(31+e)⌋`, which is the high word of that 64-bit sum shifted right by `e − 1`. `[h < 0]` may be read as
/// `[acc < 0]`: with `m ≥ 0`, `acc ≥ 0` gives `h ≥ 0`, and `acc < 0` gives `h ≤ 0`, where `h = 0` rounds to 0
/// either way. The constant part is `2^(e−2)·2^32 + 2^30`, less `2^31` when `acc < 0`: high word
/// `2^(e−2) − [acc < 0]`, low word `2^30 | (acc & 2^31)`. No overflow: `|acc·m| < 2^62`, and the added constant
/// is below `2^62`.
#[inline(always)]
fn round_shift(acc: i32, multiplier: i32, (half, e1): (i32, i32)) -> i32 {
    let lo = ((acc & i32::MIN) | (1 << 30)) as u32;
    let hi = half.wrapping_add(acc >> 31);
    let sum = ((i64::from(hi) << 32) | i64::from(lo))
        .wrapping_add(i64::from(acc) * i64::from(multiplier));
    ((sum >> 32) as i32) >> (e1 & 31)
}

impl Channel {
    /// The channel of `bias` and a (multiplier, shift) pair that [`check_multiplier`] accepts (every pair a
    /// loaded model holds: `m ≥ 0`, `−31 ≤ shift ≤ 30`). Other pairs give some int8 value, never a panic: the fast
    /// path tests only `shift ≤ −2` (one comparison per channel decoded, which the FULLY_CONNECTED pays per output).
    #[inline(always)]
    pub(crate) fn new(bias: i32, (multiplier, shift): (i32, i32)) -> Self {
        let fast = shift <= -2;
        let e = shift.wrapping_neg();
        let (half, shift) = if fast {
            (1 << (e.wrapping_sub(2) & 31), e.wrapping_sub(1))
        } else {
            (0, shift)
        };
        Channel {
            bias,
            multiplier,
            half,
            shift,
        }
    }

    /// The channel with `d` added to its bias (wrapping, as the sum it joins).
    #[inline(always)]
    pub(crate) fn with_bias_added(self, d: i32) -> Self {
        Channel {
            bias: self.bias.wrapping_add(d),
            ..self
        }
    }

    /// The int8 output (as its byte) for the sum `acc` of the channel's products: the bias added, requantized
    /// (TFLite's double rounding), clamped and offset as `out` says. The same value as [`to_i8`].
    #[inline(always)]
    pub(crate) fn output(&self, acc: i32, out: &Output) -> u8 {
        let acc = acc.wrapping_add(self.bias);
        let r = if self.half == 0 {
            self.general(acc)
        } else {
            round_shift(acc, self.multiplier, (self.half, self.shift))
        };
        // `max` then `min`, not `clamp`: loading checked lo ≤ hi, and `clamp`'s own check (a panic) costs two
        // instructions per output.
        (r.max(out.lo).min(out.hi) + out.zero_point) as u8
    }

    /// The general path: a shift by 0 or 1, or a left shift (rare: out of line, so that the kernels' copies of
    /// [`Channel::output`] stay small).
    #[cold]
    #[inline(never)]
    fn general(&self, acc: i32) -> i32 {
        requantize(acc, self.multiplier, self.shift)
    }
}

/// Where a kernel's block of output channels finds each channel's requantization: decoded once into a table
/// (`&[Channel]`, for kernels that requantize a channel at every pixel) or read from the file at each output
/// (`weights::Direct`, for the dense FULLY_CONNECTED over inputs too wide for the stack's column, which
/// requantizes each channel once: a table's fill cost as much as it saved there; the widened FULLY_CONNECTED
/// computes its sums first and walks the channels in order, `weights::Quant::outputs`).
pub(crate) trait Channels: Sized {
    /// How many channels.
    fn count(&self) -> usize;
    /// Channel `k` (`k < count()`; a zero channel past it).
    fn channel(&self, k: usize) -> Channel;
    /// The first `at` channels and the rest (`at ≤ count()`).
    fn split(self, at: usize) -> (Self, Self);
}

impl Channels for &[Channel] {
    #[inline(always)]
    fn count(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn channel(&self, k: usize) -> Channel {
        self.get(k).copied().unwrap_or_default()
    }

    #[inline(always)]
    fn split(self, at: usize) -> (Self, Self) {
        self.split_at(at.min(self.len()))
    }
}

/// Where a requantized value lands: the output's zero point and the fused activation's range `[lo, hi]`, both
/// kept as `r` is clamped before the zero point's addition (`clamp(r + zp, lo, hi) = clamp(r, lo − zp, hi − zp) +
/// zp` for int8 bounds and zero points, so the sum cannot overflow).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    zero_point: i32,
    lo: i32,
    hi: i32,
}

impl Output {
    /// The output of zero point `zero_point` (−128 ..= 127) and activation range `(lo, hi)` (int8 bounds).
    pub(crate) fn new(zero_point: i32, (lo, hi): (i32, i32)) -> Self {
        Output {
            zero_point,
            lo: lo - zero_point,
            hi: hi - zero_point,
        }
    }

    /// What [`requantize_run`] takes: `1 + 2·zp`, and the bounds (as stored, the zero point included) packed as
    /// `hi · 2^16 + (lo mod 2^16)`.
    pub(crate) fn packed(&self) -> (i32, i32) {
        let zp = self.zero_point;
        let (lo, hi) = (self.lo + zp, self.hi + zp);
        (1 + 2 * zp, (hi << 16) | (lo & 0xffff))
    }
}

/// A run of channels' requantization as a weighted section stores it, three arrays of little-endian words
/// (channel `k` at byte `4k` of each): what [`outputs_in_order`] walks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Words<'a> {
    /// The int32 biases.
    pub bias: &'a [u8],
    /// The Q31 multipliers.
    pub multipliers: &'a [u8],
    /// The shifts (negative: right).
    pub shifts: &'a [u8],
}

impl<'a> Words<'a> {
    /// How many whole channels all three arrays hold.
    fn len(&self) -> usize {
        self.bias
            .len()
            .min(self.multipliers.len())
            .min(self.shifts.len())
            / 4
    }

    /// The channels from `k` on.
    pub(crate) fn skip(self, k: usize) -> Words<'a> {
        let tail = |b: &'a [u8]| b.get(4 * k..).unwrap_or(&[]);
        Words {
            bias: tail(self.bias),
            multipliers: tail(self.multipliers),
            shifts: tail(self.shifts),
        }
    }

    /// Channel `k` (a zero channel past the end).
    fn channel(&self, k: usize) -> Channel {
        use crate::bytes::i32_at;
        Channel::new(
            i32_at(self.bias, k),
            (i32_at(self.multipliers, k), i32_at(self.shifts, k)),
        )
    }
}

/// The int8 outputs (as bytes) of consecutive channels for the sums of their products, each channel's
/// parameters read from `words` in order: [`requantize_run`] (a loop of assembly on Arm cores) over the channels
/// whose shift it takes, [`Channel::output`] for any other. The same values as [`Channel::output`].
#[inline(always)]
pub(crate) fn outputs_in_order(sums: &[i32], words: Words, out: &Output, ys: &mut [u8]) {
    let done = run(sums, words, out.packed(), ys);
    if done < ys.len().min(sums.len()).min(words.len()) {
        outputs_from(done, sums, words, out, ys);
    }
}

/// [`outputs_in_order`] from channel `k`, whose shift [`requantize_run`] does not take, on: that channel by
/// [`Channel::output`], the rest by the run again (rare: out of line).
#[cold]
#[inline(never)]
fn outputs_from(mut k: usize, sums: &[i32], words: Words, out: &Output, ys: &mut [u8]) {
    let n = ys.len().min(sums.len()).min(words.len());
    while k < n {
        if let (Some(&acc), Some(y)) = (sums.get(k), ys.get_mut(k)) {
            *y = words.channel(k).output(acc, out);
        }
        k += 1;
        let (Some(s), Some(y)) = (sums.get(k..n), ys.get_mut(k..n)) else {
            return;
        };
        k += run(s, words.skip(k), out.packed(), y);
    }
}

/// The int8 outputs (as bytes) of channels decoded into a table, for the sums of their products:
/// [`table_run`] (a loop of assembly on Arm cores) over the channels of the fast path, [`Channel::output`] for any
/// other. The same values as [`Channel::output`].
#[inline(always)]
pub(crate) fn outputs_of_table(sums: &[i32], chans: &[Channel], out: &Output, ys: &mut [u8]) {
    let done = table(sums, chans, out, ys);
    if done < ys.len().min(sums.len()).min(chans.len()) {
        table_from(done, sums, chans, out, ys);
    }
}

/// [`outputs_of_table`] from channel `k`, which takes the general path, on (rare: out of line).
#[cold]
#[inline(never)]
fn table_from(mut k: usize, sums: &[i32], chans: &[Channel], out: &Output, ys: &mut [u8]) {
    let n = ys.len().min(sums.len()).min(chans.len());
    while k < n {
        if let (Some(&acc), Some(c), Some(y)) = (sums.get(k), chans.get(k), ys.get_mut(k)) {
            *y = c.output(acc, out);
        }
        k += 1;
        let (Some(s), Some(c), Some(y)) = (sums.get(k..n), chans.get(k..n), ys.get_mut(k..n))
        else {
            return;
        };
        k += table(s, c, out, y);
    }
}

#[cfg(target_arch = "arm")]
use crate::ops::lanes::loops::table_run as table;
#[cfg(not(target_arch = "arm"))]
use table_run as table;

/// [`Channel::output`] of consecutive channels while each takes the fast path (`half ≠ 0`): returns how many it
/// wrote, stopping at the first other channel or at the end of the shortest slice. The plain Rust of
/// `lanes::loops::table_run`: what the hosts run and test.
#[cfg_attr(target_arch = "arm", allow(dead_code))]
pub(crate) fn table_run(sums: &[i32], chans: &[Channel], out: &Output, ys: &mut [u8]) -> usize {
    for (k, ((y, &acc), c)) in ys.iter_mut().zip(sums).zip(chans).enumerate() {
        if c.half == 0 {
            return k;
        }
        *y = c.output(acc, out);
    }
    ys.len().min(sums.len()).min(chans.len())
}

/// The output's bounds less its zero point, and the zero point: what `lanes::loops::table_run` holds in
/// registers.
impl Output {
    #[cfg_attr(not(target_arch = "arm"), allow(dead_code))]
    pub(crate) fn parts(&self) -> (i32, i32, i32) {
        (self.lo, self.hi, self.zero_point)
    }
}

#[cfg(target_arch = "arm")]
use crate::ops::lanes::loops::requantize_run as run;
#[cfg(target_arch = "x86_64")]
use crate::ops::lanes::x86::requantize_run as run;
#[cfg(not(any(target_arch = "arm", target_arch = "x86_64")))]
use requantize_run as run;

/// The requantization of consecutive channels while each one's right shift `e` is 2 ..= 24 (TFLite's double
/// rounding, clamped to the output's bounds, the zero point added): returns how many it wrote, stopping at the
/// first other shift or at the end of the shortest slice. [`round_shift`] with the zero point folded in:
/// `⌊(acc·m + 2^30 − [acc < 0]·2^31 + (1 + 2·zp)·2^(e−2)·2^32) / 2^(31+e)⌋ = r + zp`, since `zp·2^(31+e)` is a
/// multiple of the divisor; with `e ≤ 24` and `|zp| ≤ 128` the high word stays below `2^31` (`|acc·m| < 2^62`).
/// `packed` is [`Output::packed`]. The plain Rust of `lanes::loops::requantize_run`, instruction for instruction:
/// what the hosts run and test.
#[cfg_attr(target_arch = "arm", allow(dead_code))]
#[inline(always)]
pub(crate) fn requantize_run(
    sums: &[i32],
    words: Words,
    (c, bounds): (i32, i32),
    ys: &mut [u8],
) -> usize {
    let (lo, hi) = (i32::from(bounds as i16), bounds >> 16);
    let n = ys.len().min(sums.len()).min(words.len());
    let word = |b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    // The channels up to the first shift the run does not take, found first, so that the loop below has no exit
    // and no index (on x86-64 the per-channel test and bounds checks had been a quarter of a small FC's time).
    let shifts = words.shifts.chunks_exact(4).take(n);
    let run = shifts
        .map(|s| (!word(s)).wrapping_sub(1) as u32)
        .position(|e2| e2 > 22)
        .unwrap_or(n);
    let params = words
        .bias
        .chunks_exact(4)
        .zip(words.multipliers.chunks_exact(4))
        .zip(words.shifts.chunks_exact(4));
    for ((y, &sum), ((b, m), s)) in ys.iter_mut().zip(sums).zip(params).take(run) {
        let e1 = !word(s);
        let e2 = e1.wrapping_sub(1);
        let acc = sum.wrapping_add(word(b));
        let high = (c << (e2 & 31)).wrapping_add(acc >> 31);
        let low = ((acc & i32::MIN) | (1 << 30)) as u32;
        let total = ((i64::from(high) << 32) | i64::from(low))
            .wrapping_add(i64::from(acc) * i64::from(word(m)));
        let r = ((total >> 32) as i32) >> (e1 & 31);
        *y = r.max(lo).min(hi) as u8;
    }
    run
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn high_mul_matches_tflite_edge_cases() {
        assert_eq!(sat_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(sat_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
        // 3 · 2^30 · 2 / 2^32 = 1.5 → rounds half up to 2; −1.5 → −1 (ties toward +∞).
        assert_eq!(sat_rounding_doubling_high_mul(3, 1 << 30), 2);
        assert_eq!(sat_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(
            sat_rounding_doubling_high_mul(i32::MAX, i32::MAX),
            i32::MAX - 1
        );
        assert_eq!(sat_rounding_doubling_high_mul(0, i32::MAX), 0);
    }

    #[test]
    fn the_short_high_mul_is_tflites() {
        let edges = [
            0,
            1,
            -1,
            2,
            -2,
            3,
            -3,
            1 << 29,
            -(1 << 29),
            1 << 30,
            -(1 << 30),
            i32::MAX,
            i32::MIN,
        ];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(
                    high_mul(a, b),
                    sat_rounding_doubling_high_mul(a, b),
                    "{a} · {b}"
                );
            }
        }
        // Products around every tie: p = k · 2^30 + d for small d, both signs.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let (a, b) = ((state >> 32) as i32, state as i32 >> (state % 31));
            assert_eq!(
                high_mul(a, b),
                sat_rounding_doubling_high_mul(a, b),
                "{a} · {b}"
            );
            let (a, b) = (((state >> 40) as i32) << 8 | 0x40, 1 << 24);
            assert_eq!(
                high_mul(a, b),
                sat_rounding_doubling_high_mul(a, b),
                "{a} · {b}"
            );
        }
    }

    /// A xorshift64 generator from `state`.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// An accumulator for draw `i` of value `r`: any i32, a small one, or an edge.
    fn accumulator(i: u32, r: u64) -> i32 {
        match i % 3 {
            0 => r as i32,
            1 => (r as i32) >> (r % 31),
            _ => [i32::MIN, i32::MAX, 0, -1, 1][(r % 5) as usize],
        }
    }

    #[test]
    fn the_int8_output_path_is_the_general_one() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15u64);
        for i in 0..300_000 {
            let r = next();
            let acc = accumulator(i, r);
            let m = ((r >> 32) as i32 & i32::MAX) >> ((r >> 40) % 8);
            let shift = -(((r >> 48) % 33) as i32) + if i % 10 == 0 { 3 } else { 0 };
            let zp = ((r >> 56) as u8 as i8) as i32;
            let (lo, hi) = if i % 2 == 0 {
                (-128, 127)
            } else {
                (zp.max(-128), 127)
            };
            let want = requantize(acc, m, shift).saturating_add(zp).clamp(lo, hi) as i8;
            assert_eq!(
                to_i8(acc, (m, shift), zp, (lo, hi)),
                want,
                "{acc} {m} {shift} {zp}"
            );
        }
    }

    #[test]
    fn a_channel_table_gives_the_general_path() {
        let mut next = xorshift(0x2545_F491_4F6C_DD1Du64);
        for i in 0..300_000 {
            let r = next();
            let acc = accumulator(i, r);
            let bias = [0, (r >> 8) as i32 >> 12, i32::MAX, i32::MIN][(r >> 4) as usize % 4];
            // Pairs as loading accepts them (`check_multiplier`).
            let m = match i % 7 {
                0 => 0,
                1 => i32::MAX,
                _ => ((r >> 32) as i32 & i32::MAX) >> ((r >> 40) % 8),
            };
            let shift = match i % 11 {
                0 => (r >> 48) as i32 % 31,
                1 => -((r >> 48) as i32 % 3),
                _ => -(((r >> 48) % 32) as i32),
            };
            let zp = ((r >> 56) as u8 as i8) as i32;
            let range = if i % 2 == 0 {
                (-128, 127)
            } else {
                (zp.max(-128), 127)
            };
            let want = requantize(acc.wrapping_add(bias), m, shift)
                .saturating_add(zp)
                .clamp(range.0, range.1) as i8 as u8;
            let got = Channel::new(bias, (m, shift)).output(acc, &Output::new(zp, range));
            assert_eq!(got, want, "{acc} {bias} {m} {shift} {zp}");
        }
    }

    #[test]
    fn the_one_multiply_add_rounding_is_tflites_at_every_tie() {
        // m = 2^30 makes the high multiply ⌊(acc + 1) / 2⌋, so acc = 2h reaches every h: the quotients and the
        // ties of the rounding shift (h = k·2^e ± 2^(e−1) + d), both signs, every fast shift.
        for e in 2..=31u32 {
            for k in [-3i64, -2, -1, 0, 1, 2] {
                for d in -2i64..=2 {
                    for half in [-(1i64 << (e - 1)), 1i64 << (e - 1)] {
                        let h = (k << e) + half + d;
                        let Ok(acc) = i32::try_from(2 * h) else {
                            continue;
                        };
                        let m = 1 << 30;
                        let want = rounding_divide_by_pot(high_mul(acc, m), e);
                        let got = round_shift(acc, m, (1 << (e - 2), e as i32 - 1));
                        assert_eq!(got, want, "acc {acc} e {e}");
                    }
                }
            }
        }
        for (acc, m) in [
            (i32::MIN, i32::MAX),
            (i32::MAX, i32::MAX),
            (i32::MIN, 0),
            (-1, 1),
        ] {
            for e in 2..=31u32 {
                let want = rounding_divide_by_pot(high_mul(acc, m), e);
                assert_eq!(
                    round_shift(acc, m, (1 << (e - 2), e as i32 - 1)),
                    want,
                    "{acc} {m} {e}"
                );
            }
        }
    }

    fn le_words(v: &[i32]) -> std::vec::Vec<u8> {
        v.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn the_run_with_its_zero_point_folded_in_is_tflites_at_every_tie() {
        // As above, m = 2^30 reaches every tie of every shift the run takes (2 ..= 24), for extreme zero points
        // and bounds, plus sums at the ends of the range; each output against TFLite's two steps, clamped.
        for e in 2..=24i32 {
            let mut sums = std::vec::Vec::new();
            for k in [-3i64, -1, 0, 1, 3] {
                for d in -2i64..=2 {
                    for half in [-(1i64 << (e - 1)), 1i64 << (e - 1)] {
                        if let Ok(acc) = i32::try_from(2 * ((k << e) + half + d)) {
                            sums.push(acc);
                        }
                    }
                }
            }
            sums.extend([i32::MIN, i32::MAX, -1, 0, 1]);
            let n = sums.len();
            for (zp, range) in [
                (-128, (-128, 127)),
                (127, (127, 127)),
                (-5, (-5, 40)),
                (0, (-128, 127)),
            ] {
                for m in [1 << 30, i32::MAX, 1_518_500_250] {
                    let bias = le_words(&std::vec![7; n]);
                    let words = Words {
                        bias: &bias,
                        multipliers: &le_words(&std::vec![m; n]),
                        shifts: &le_words(&std::vec![-e; n]),
                    };
                    let out = Output::new(zp, range);
                    let mut got = std::vec![0u8; n];
                    assert_eq!(requantize_run(&sums, words, out.packed(), &mut got), n);
                    for (&acc, &g) in sums.iter().zip(&got) {
                        let want = to_i8(acc.wrapping_add(7), (m, -e), zp, range) as u8;
                        assert_eq!(g, want, "acc {acc} m {m} e {e} zp {zp}");
                    }
                }
            }
        }
    }

    #[test]
    fn outputs_in_order_take_every_shift() {
        // Shifts the run does not take (0, −1, left shifts, −25 ..= −31) between ones it does: each channel's
        // output as `Channel::output` gives it, and nothing written past the shortest input.
        let shifts: std::vec::Vec<i32> = (0..40)
            .map(|k| [-3, 0, -1, 4, -25, -31, -2, -24][k % 8])
            .collect();
        let multipliers: std::vec::Vec<i32> =
            (0..40).map(|k| 1_100_000_000 + k * 19_000_000).collect();
        let bias: std::vec::Vec<i32> = (0..40).map(|k| k * 1_001 - 20_000).collect();
        let sums: std::vec::Vec<i32> = (0..40).map(|k| k * k * 7_919 - 3_000_000).collect();
        let (b, m, s) = (le_words(&bias), le_words(&multipliers), le_words(&shifts));
        let words = Words {
            bias: &b,
            multipliers: &m,
            shifts: &s,
        };
        let out = Output::new(3, (3, 127));
        let mut got = [0xAAu8; 42];
        outputs_in_order(&sums, words, &out, &mut got);
        for k in 0..40 {
            let want = Channel::new(bias[k], (multipliers[k], shifts[k])).output(sums[k], &out);
            assert_eq!(got[k], want, "channel {k}, shift {}", shifts[k]);
        }
        assert_eq!(got[40..], [0xAA, 0xAA]);
    }

    #[test]
    fn divide_by_pot_rounds_half_away_from_zero() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(4, 1), 2);
        assert_eq!(rounding_divide_by_pot(-4, 1), -2);
        assert_eq!(rounding_divide_by_pot(7, 0), 7);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(-1, 31), 0);
    }

    #[test]
    fn requantize_matches_exact_rounding_for_a_range_of_inputs() {
        // multiplier 2^30 with shift 0 is M = 0.5: x/2 rounded half up then half away from zero.
        assert_eq!(requantize(3, 1 << 30, 0), 2);
        assert_eq!(requantize(-3, 1 << 30, 0), -1);
        // Shifts: M = 0.5 · 2^-3 = 1/16.
        assert_eq!(requantize(160, 1 << 30, -3), 10);
        assert_eq!(requantize(-168, 1 << 30, -3), -11);
        // Left shift saturates instead of overflowing.
        assert_eq!(requantize(i32::MAX, i32::MAX, 30), i32::MAX - 1);
        assert_eq!(requantize(i32::MIN, 1 << 30, 30), i32::MIN / 2);
        // Out-of-range shifts from a caller do not overflow either.
        assert_eq!(requantize(5, 1 << 30, i32::MIN), 0);
        // x << 31 saturates to i32::MAX, and M = 0.5 halves it: 2^30.
        assert_eq!(requantize(5, 1 << 30, i32::MAX), 1 << 30);
        // Against i64 arithmetic, M = 0.75 · 2^-5 = 0.0234375, away from ties.
        for x in (-100_000..100_000).step_by(997) {
            let exact = (x as f64 * 0.0234375).round() as i32;
            let got = requantize(x, 3 << 29, -5);
            assert!((got - exact).abs() <= 1, "{x}: {got} vs {exact}");
        }
    }
}
