//! SOFTMAX over the last dimension. The integer path is TFLite's int8 → int8 reference kernel (the gemmlowp
//! fixed-point path that TFLite Micro uses for int8: `reference_ops::Softmax` with `exp_on_negative_values` and
//! `one_over_one_plus_x_for_x_in_0_1`), with the input multiplier, left shift and `diff_min` computed by the
//! writer exactly as TFLite's `CalculateSoftmaxParams` does; the output has scale 1/256 and zero point −128.

use super::{Io, Op, Tensors};
use crate::bytes::Reader;
use crate::error::{Error, Result, Section};
use crate::format::FLAG_INT;
use crate::quant::{rounding_divide_by_pot, sat_rounding_doubling_high_mul as mul};

/// Parameters: β for the f32 path (as f32 bits), the input's rescaling for the integer path.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Params {
    #[cfg_attr(feature = "integer-only", allow(dead_code))]
    pub beta: u32,
    pub input_multiplier: i32,
    pub input_left_shift: i32,
    pub diff_min: i32,
}

impl Params {
    /// Reads the 16 bytes.
    pub fn read(r: &mut Reader) -> Result<Params> {
        Ok(Params {
            beta: r.u32()?,
            input_multiplier: r.i32()?,
            input_left_shift: r.i32()?,
            diff_min: r.i32()?,
        })
    }
}

fn params(op: &Op) -> Params {
    match op.params {
        super::Params::Softmax(p) => p,
        _ => Params::default(),
    }
}

/// Input and output have one shape; the integer parameters are in range.
#[inline(never)]
pub(crate) fn prepare(op: &Op, index: u16, t: &Tensors, flags: u16) -> Result<()> {
    if t.input.shape != t.output.shape {
        return Err(super::mismatch(
            index,
            t.input.shape.len(),
            t.output.shape.len(),
        ));
    }
    let p = params(op);
    let bad = |field, value: i32| Error::InvalidValue {
        section: Section::Operator(index),
        field,
        value: value as u64,
    };
    if flags & FLAG_INT != 0 {
        if p.input_multiplier < 0 || !(0..=31).contains(&p.input_left_shift) {
            return Err(bad("softmax input multiplier", p.input_multiplier));
        }
        if p.diff_min > 0 {
            return Err(bad("softmax diff_min", p.diff_min));
        }
    }
    #[cfg(not(feature = "integer-only"))]
    if flags & crate::format::FLAG_F32 != 0 && !f32::from_bits(p.beta).is_finite() {
        return Err(bad("softmax beta", p.beta as i32));
    }
    Ok(())
}

// --- gemmlowp's fixed point, as TFLite uses it: `FixedPoint<i32, I>` is a raw i32 with 31 − I fraction bits. ---

/// `SaturatingRoundingMultiplyByPOT<e>` for a positive exponent: a left shift saturating to i32.
fn saturating_shl(x: i32, e: u32) -> i32 {
    let threshold = (1i32 << (31 - e)) - 1;
    if x > threshold {
        i32::MAX
    } else if x < -threshold {
        i32::MIN
    } else {
        x << e
    }
}

/// exp(a) for a in [−1/4, 0), a with 0 integer bits.
fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const CONSTANT_TERM: i32 = 1_895_147_668; // exp(−1/8)
    const ONE_THIRD: i32 = 715_827_883;
    let x = a.wrapping_add(1 << 28);
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = rounding_divide_by_pot(x4, 2);
    let poly = rounding_divide_by_pot(
        mul(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2),
        1,
    );
    CONSTANT_TERM.wrapping_add(mul(CONSTANT_TERM, x.wrapping_add(poly)))
}

/// exp(a) for a ≤ 0 with 5 integer bits (TFLite's `kScaledDiffIntegerBits`); the result has 0 integer bits.
fn exp_on_negative_values(a: i32) -> i32 {
    const FRACTION_BITS: u32 = 26;
    let quarter = 1i32 << (FRACTION_BITS - 2);
    let a_mod_quarter_minus_one_quarter = (a & (quarter - 1)).wrapping_sub(quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(saturating_shl(
        a_mod_quarter_minus_one_quarter,
        5,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    // exp(−2^e) for e = −2 ..= 4, applied for each bit of the remainder.
    const MULTIPLIERS: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    for (e, m) in MULTIPLIERS {
        let bit = (FRACTION_BITS as i32 + e) as u32;
        if remainder & (1 << bit) != 0 {
            result = mul(result, m);
        }
    }
    if a == 0 {
        i32::MAX
    } else {
        result
    }
}

/// 1 / (1 + a) for a in [0, 1), 0 integer bits: Newton–Raphson in 2 integer bits.
fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    let sum = i64::from(a) + i64::from(i32::MAX);
    let half_denominator = ((sum + if sum >= 0 { 1 } else { -1 }) / 2) as i32;
    const C48_17: i32 = 1_515_870_810;
    const CNEG32_17: i32 = -1_010_580_540;
    const ONE_F2: i32 = 1 << 29;
    let mut x = C48_17.wrapping_add(mul(half_denominator, CNEG32_17));
    for _ in 0..3 {
        let hdx = mul(half_denominator, x);
        let one_minus = ONE_F2.wrapping_sub(hdx);
        x = x.wrapping_add(saturating_shl(mul(x, one_minus), 2));
    }
    // Rescale<0> of ExactMulByPot<−1>: from 1 integer bit to 0, a saturating left shift by 1.
    saturating_shl(x, 1)
}

/// TFLite's `GetReciprocal`: the reciprocal of `x` (with `integer_digits` integer bits) and its exponent.
fn reciprocal(x: i32, integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros();
    let bits_over_unit = integer_digits - headroom_plus_one as i32;
    let shifted_minus_one =
        ((x as u32).wrapping_shl(headroom_plus_one)).wrapping_sub(1 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted_minus_one),
        bits_over_unit,
    )
}

/// The integer kernel, row by row over the last dimension.
#[inline(never)]
pub(crate) fn run_int8(op: &Op, t: &Tensors, io: &mut Io) -> Result<()> {
    let p = params(op);
    let depth = t.input.shape.last().max(1);
    let rescaled = |diff: i32| {
        mul(
            diff.wrapping_mul(1 << p.input_left_shift.clamp(0, 31)),
            p.input_multiplier,
        )
    };
    for (xs, ys) in io.x.chunks(depth).zip(io.y.chunks_mut(depth)) {
        let max = xs.iter().map(|&b| i32::from(b as i8)).max().unwrap_or(0);
        let mut sum = 0i32;
        for &b in xs {
            let diff = i32::from(b as i8) - max;
            if diff >= p.diff_min {
                // Rescale<12> of a value with 0 integer bits: a rounding right shift by 12.
                sum = sum.wrapping_add(rounding_divide_by_pot(
                    exp_on_negative_values(rescaled(diff)),
                    12,
                ));
            }
        }
        let (scale, bits_over_unit) = reciprocal(sum, 12);
        let shift = (bits_over_unit + 31 - 8).clamp(0, 31) as u32;
        for (y, &b) in ys.iter_mut().zip(xs) {
            let diff = i32::from(b as i8) - max;
            let v = if diff >= p.diff_min {
                let e = exp_on_negative_values(rescaled(diff));
                let unsat = rounding_divide_by_pot(mul(scale, e), shift);
                (unsat - 128).clamp(-128, 127)
            } else {
                -128
            };
            *y = v as i8 as u8;
        }
    }
    Ok(())
}

/// The f32 kernel: `exp(β·(x − max)) / Σ`, row by row over the last dimension.
#[cfg(not(feature = "integer-only"))]
#[inline(never)]
pub(crate) fn run_f32(op: &Op, t: &Tensors, io: &mut Io) -> Result<()> {
    let beta = f32::from_bits(params(op).beta);
    let depth = 4 * t.input.shape.last().max(1);
    for (xs, ys) in io.x.chunks(depth).zip(io.y.chunks_mut(depth)) {
        let n = xs.len() / 4;
        let max = (0..n)
            .map(|i| super::get(xs, i))
            .fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for i in 0..n {
            let e = libm_exp(beta * (super::get(xs, i) - max));
            super::set(ys, i, e);
            sum += e;
        }
        for i in 0..n {
            super::set(ys, i, super::get(ys, i) / sum);
        }
    }
    Ok(())
}

/// `exp(x)` for x ≤ 0 without `std`: range reduction by ln 2 and a degree-7 polynomial (relative error below
/// 2e-7 on [−87, 0], the range where f32 exp is normal; below that the result is 0).
#[cfg(not(feature = "integer-only"))]
fn libm_exp(x: f32) -> f32 {
    if x < -87.0 {
        return 0.0;
    }
    const LN2: f32 = core::f32::consts::LN_2;
    // x = k·ln2 + r, |r| ≤ ln2/2.
    let k = (x / LN2 - 0.5) as i32; // x ≤ 0: truncation of (x/ln2 − 0.5) rounds to nearest.
                                    // Cody–Waite: ln 2 in two parts, so that k·ln2 is subtracted without rounding away r's low bits.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let r = (x - k as f32 * LN2_HI) - k as f32 * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // 2^k by the exponent field (k ≥ −126 here).
    p * f32::from_bits(((k + 127).max(1) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_exp_matches_the_real_function() {
        // a in Q5.26: exp(a) in Q0.31.
        for i in 0..200 {
            let real = -(i as f64) * 0.05;
            let a = (real * (1u64 << 26) as f64) as i32;
            let got = exp_on_negative_values(a) as f64 / 2f64.powi(31);
            assert!((got - real.exp()).abs() < 1e-6, "{real}: {got}");
        }
    }

    #[test]
    fn reciprocal_matches_the_real_function() {
        for s in [1.0f64, 1.5, 2.0, 3.7, 10.0, 100.0, 1000.0] {
            let raw = (s * (1u64 << 19) as f64) as i32; // 12 integer bits
            let (r, bits) = reciprocal(raw, 12);
            let got = r as f64 / 2f64.powi(31) / 2f64.powi(bits);
            assert!((got - 1.0 / s).abs() < 1e-6 / s, "{s}: {got}");
        }
    }

    #[cfg(not(feature = "integer-only"))]
    #[test]
    fn f32_exp_is_accurate() {
        for i in 0..1000 {
            let x = -(i as f32) * 0.087;
            let (a, b) = (libm_exp(x) as f64, (x as f64).exp());
            assert!((a - b).abs() <= 3e-7 * b + 1e-38, "{x}: {a} vs {b}");
        }
    }
}
