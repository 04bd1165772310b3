//! 32 → 8-bit quantization in TFLite's scheme (see `QUANTIZATION.md`): symmetric int8 weights per output channel,
//! asymmetric int8 activations per tensor, int32 biases at scale `s_in · s_w`, Q31 requantization multipliers.
//! Everything here runs on the host at export time; the device only sees integers.

/// Scale and zero point of an asymmetric int8 tensor: `real = (q − zero_point) · scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Real value of one step.
    pub scale: f64,
    /// The int8 value that stands for real 0.
    pub zero_point: i32,
}

impl QParams {
    /// Parameters covering `[min, max]` (widened to include 0, as TFLite requires).
    pub fn from_range(min: f32, max: f32) -> QParams {
        let (min, max) = (f64::from(min.min(0.0)), f64::from(max.max(0.0)));
        let scale = if max > min { (max - min) / 255.0 } else { 1.0 };
        let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i32;
        QParams { scale, zero_point }
    }

    /// Quantizes a real value.
    pub fn quantize(&self, x: f64) -> i8 {
        ((x / self.scale).round() + f64::from(self.zero_point)).clamp(-128.0, 127.0) as i8
    }
}

/// Symmetric int8 quantization of each row (output channel) of `w` (`rows × cols`): `(q, scale per row)`,
/// with `q` in [−127, 127].
pub fn quantize_per_channel(w: &[f32], rows: usize) -> (Vec<i8>, Vec<f32>) {
    let cols = w.len() / rows.max(1);
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows);
    for row in w.chunks(cols.max(1)) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales.push(scale);
        q.extend(
            row.iter()
                .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

/// `M = multiplier · 2^shift / 2³¹` with `multiplier` in [2³⁰, 2³¹) (TFLite's `QuantizeMultiplier`).
pub fn quantize_multiplier(m: f64) -> (i32, i32) {
    if m == 0.0 || !m.is_finite() {
        return (0, 0);
    }
    let (mut q, mut shift) = frexp(m);
    let mut mult = (q * (1u64 << 31) as f64).round() as i64;
    if mult == 1i64 << 31 {
        mult /= 2;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    if shift > 30 {
        // Saturate: larger multipliers do not occur for sane scales.
        shift = 30;
        q = 1.0;
        mult = (q * ((1u64 << 31) - 1) as f64) as i64;
    }
    (mult as i32, shift)
}

/// `x = q · 2^e` with `q` in [0.5, 1).
fn frexp(x: f64) -> (f64, i32) {
    let mut e = x.abs().log2().floor() as i32 + 1;
    let mut q = x / 2f64.powi(e);
    // Guard the rounding of log2 at exact powers of two.
    while q.abs() >= 1.0 {
        q /= 2.0;
        e += 1;
    }
    while q.abs() < 0.5 {
        q *= 2.0;
        e -= 1;
    }
    (q, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipliers_encode_the_real_factor() {
        for m in [0.5, 0.75, 0.001234, 1.0, 3.7, 1e-9] {
            let (mult, shift) = quantize_multiplier(m);
            assert!(
                (1 << 30..=i32::MAX).contains(&mult) || m < 1e-9,
                "{m}: {mult}"
            );
            let back = f64::from(mult) * 2f64.powi(shift) / 2f64.powi(31);
            assert!((back - m).abs() <= m * 1e-9, "{m} → {back}");
        }
        assert_eq!(quantize_multiplier(0.0), (0, 0));
        assert_eq!(quantize_multiplier(1e-20), (0, 0));
    }

    #[test]
    fn ranges_include_zero_and_map_it_exactly() {
        let q = QParams::from_range(0.5, 6.0);
        assert_eq!(q.zero_point, -128);
        assert_eq!(q.quantize(0.0), -128);
        let q = QParams::from_range(-1.0, 1.0);
        let zero = q.quantize(0.0);
        assert_eq!(i32::from(zero), q.zero_point);
        assert_eq!(q.quantize(1.0), 127);
    }

    #[test]
    fn per_channel_weights_use_the_full_symmetric_range() {
        let (q, s) = quantize_per_channel(&[0.5, -1.0, 0.0, 0.0, 2.0, 1.0], 2);
        assert_eq!(q[..3], [64, -127, 0]);
        assert_eq!(q[3..], [0, 127, 64]);
        assert!((s[1] - 2.0 / 127.0).abs() < 1e-9);
        let (q, s) = quantize_per_channel(&[0.0, 0.0], 1);
        assert_eq!((q, s), (vec![0, 0], vec![1.0]));
    }
}
