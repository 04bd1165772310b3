//! Messages between nodes: a vector of `f32` encoded as bytes, as it is, quantized to int8, sparsified to its
//! top-k entries, or both; [`ErrorFeedback`] keeps what compression dropped and adds it to the next message, so
//! nothing is lost over steps, only delayed.
//!
//! The int8 scheme is slimnet's weight quantization (symmetric, zero point 0, scale `max|x| / 127`, round to
//! nearest), applied per block of [`BLOCK`] values so one large entry does not flatten a whole message. Top-k
//! positions are written as LEB128 gaps, one or two bytes each at the densities used, instead of four-byte indices.
//!
//! Layout (little-endian): tag `u8` (0 dense, 1 int8, 2 top-k, 3 top-k int8), length `u32`; for top-k the count
//! `u32` and the gaps; then the values: `f32` each, or per block a scale `f32` and the block's `i8`s. Decoding
//! checks every length, so a damaged message is an error, never a panic.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Values per int8 scale.
pub const BLOCK: usize = 256;

/// How messages are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum MessageCompression {
    /// `f32` as they are.
    None,
    /// Symmetric int8 per block.
    Int8,
    /// The `fraction` of entries with the largest magnitudes, as `f32`.
    TopK {
        /// Kept fraction, in (0, 1].
        fraction: f64,
    },
    /// Top-k, then int8.
    TopKInt8 {
        /// Kept fraction, in (0, 1].
        fraction: f64,
    },
}

impl FromStr for MessageCompression {
    type Err = Error;
    /// `none`, `int8`, `top-k:F` or `top-k-int8:F` with F the kept fraction in (0, 1].
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| Error::config("--message-compression", why);
        let fraction = |f: &str| {
            f.parse::<f64>()
                .ok()
                .filter(|f| *f > 0.0 && *f <= 1.0)
                .ok_or_else(|| bad(format!("the kept fraction must be in (0, 1], got `{f}`")))
        };
        match s.split_once(':') {
            None if s == "none" => Ok(MessageCompression::None),
            None if s == "int8" => Ok(MessageCompression::Int8),
            Some(("top-k", f)) => Ok(MessageCompression::TopK {
                fraction: fraction(f)?,
            }),
            Some(("top-k-int8", f)) => Ok(MessageCompression::TopKInt8 {
                fraction: fraction(f)?,
            }),
            _ => Err(bad(format!(
                "unknown compression `{s}` (expected none, int8, top-k:F or top-k-int8:F)"
            ))),
        }
    }
}

impl std::fmt::Display for MessageCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageCompression::None => write!(f, "none"),
            MessageCompression::Int8 => write!(f, "int8"),
            MessageCompression::TopK { fraction } => write!(f, "top-k:{fraction}"),
            MessageCompression::TopKInt8 { fraction } => write!(f, "top-k-int8:{fraction}"),
        }
    }
}

impl MessageCompression {
    /// Whether messages lose information (and so need error feedback).
    pub fn is_lossy(&self) -> bool {
        *self != MessageCompression::None
    }

    /// Encodes `x`.
    pub fn encode(&self, x: &[f32]) -> Vec<u8> {
        let n = u32::try_from(x.len()).expect("messages hold fewer than 2^32 values");
        let (tag, positions) = match *self {
            MessageCompression::None => (0u8, None),
            MessageCompression::Int8 => (1, None),
            MessageCompression::TopK { fraction } => (2, Some(top_k(x, fraction))),
            MessageCompression::TopKInt8 { fraction } => (3, Some(top_k(x, fraction))),
        };
        let mut out = Vec::with_capacity(16 + x.len());
        out.push(tag);
        out.extend_from_slice(&n.to_le_bytes());
        let values: Vec<f32> = match &positions {
            Some(p) => {
                out.extend_from_slice(&(p.len() as u32).to_le_bytes());
                let mut prev = 0usize;
                for &i in p {
                    write_varint(&mut out, (i - prev) as u32);
                    prev = i;
                }
                p.iter().map(|&i| x[i]).collect()
            }
            None => x.to_vec(),
        };
        if tag == 1 || tag == 3 {
            for block in values.chunks(BLOCK) {
                let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
                out.extend_from_slice(&scale.to_le_bytes());
                out.extend(
                    block
                        .iter()
                        .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8 as u8),
                );
            }
        } else {
            for v in values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Decodes a message of `len` values into `out` (overwritten; entries a top-k message leaves out are 0).
    pub fn decode(bytes: &[u8], out: &mut [f32]) -> Result<()> {
        out.iter_mut().for_each(|v| *v = 0.0);
        Self::decode_scaled_add(bytes, 1.0, out)
    }

    /// Adds `weight ×` the decoded message to `out` (whose length must be the message's).
    pub fn decode_scaled_add(bytes: &[u8], weight: f32, out: &mut [f32]) -> Result<()> {
        let mut r = Reader { bytes, at: 0 };
        let tag = r.u8()?;
        let n = r.u32()? as usize;
        if n != out.len() {
            return Err(bad(format!("holds {n} values, {} expected", out.len())));
        }
        let positions = if tag == 2 || tag == 3 {
            let k = r.u32()? as usize;
            if k > n {
                return Err(bad(format!("keeps {k} of {n} values")));
            }
            let mut p = Vec::with_capacity(k);
            let mut at = 0usize;
            for j in 0..k {
                let gap = r.varint()? as usize;
                at = at
                    .checked_add(gap)
                    .filter(|&a| a < n && (j == 0 || gap > 0))
                    .ok_or_else(|| bad(format!("position {j} is out of order or beyond {n}")))?;
                p.push(at);
            }
            Some(p)
        } else if tag <= 1 {
            None
        } else {
            return Err(bad(format!("unknown tag {tag}")));
        };
        let count = positions.as_ref().map_or(n, Vec::len);
        let target = |j: usize| positions.as_ref().map_or(j, |p| p[j]);
        if tag == 1 || tag == 3 {
            let mut j = 0;
            while j < count {
                let scale = r.f32()? * weight;
                let len = BLOCK.min(count - j);
                for (k, q) in r.take(len)?.iter().enumerate() {
                    out[target(j + k)] += scale * f32::from(*q as i8);
                }
                j += len;
            }
        } else {
            let values = r.take(count.checked_mul(4).ok_or_else(|| bad("too long".into()))?)?;
            for (j, c) in values.chunks_exact(4).enumerate() {
                out[target(j)] += weight * f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        if r.at != bytes.len() {
            return Err(bad(format!("{} bytes left over", bytes.len() - r.at)));
        }
        Ok(())
    }
}

fn bad(reason: String) -> Error {
    Error::Distributed(format!("corrupt message: {reason}"))
}

/// Positions of the `ceil(fraction · n)` entries of largest magnitude, ascending.
fn top_k(x: &[f32], fraction: f64) -> Vec<usize> {
    let k = ((fraction * x.len() as f64).ceil() as usize)
        .clamp(1, x.len().max(1))
        .min(x.len());
    if k == x.len() {
        return (0..x.len()).collect();
    }
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.select_nth_unstable_by(k - 1, |&a, &b| x[b].abs().total_cmp(&x[a].abs()));
    order.truncate(k);
    order.sort_unstable();
    order
}

fn write_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(len).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| bad(format!("truncated at byte {}", self.bytes.len())))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_bits(self.u32()?))
    }
    fn varint(&mut self) -> Result<u32> {
        let mut v = 0u32;
        for shift in (0..35).step_by(7) {
            let b = self.u8()?;
            v |= u32::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("a position gap runs past five bytes".into()))
    }
}

/// Compression with error feedback (Seide et al. 2014; Karimireddy et al. 2019): each message encodes the input
/// plus what earlier messages left out, and keeps the new remainder. Over any number of steps, the decoded
/// messages plus the remainder equal the sum of the inputs.
#[derive(Debug, Clone)]
pub struct ErrorFeedback {
    compression: MessageCompression,
    residual: Vec<f32>,
    decoded: Vec<f32>,
}

impl ErrorFeedback {
    /// For messages of `len` values.
    pub fn new(compression: MessageCompression, len: usize) -> Self {
        ErrorFeedback {
            compression,
            residual: vec![0.0; len],
            decoded: vec![0.0; len],
        }
    }

    /// Encodes `x` plus the remainder, and keeps the new remainder. Returns the message and what it decodes to.
    pub fn encode(&mut self, x: &[f32]) -> (Vec<u8>, &[f32]) {
        for (r, v) in self.residual.iter_mut().zip(x) {
            *r += v;
        }
        let msg = self.compression.encode(&self.residual);
        MessageCompression::decode(&msg, &mut self.decoded)
            .expect("a message just encoded decodes");
        for (r, d) in self.residual.iter_mut().zip(&self.decoded) {
            *r -= d;
        }
        (msg, &self.decoded)
    }

    /// What has not been sent yet.
    pub fn residual(&self) -> &[f32] {
        &self.residual
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn vector(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| rng.random_range(-1.0f32..1.0).powi(3))
            .collect()
    }

    fn all() -> Vec<MessageCompression> {
        ["none", "int8", "top-k:0.1", "top-k-int8:0.05", "top-k:1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect()
    }

    #[test]
    fn messages_round_trip_within_their_precision() {
        let x = vector(1000, 1);
        for c in all() {
            let msg = c.encode(&x);
            let mut y = vec![9.0; x.len()];
            MessageCompression::decode(&msg, &mut y).unwrap();
            match c {
                MessageCompression::None => assert_eq!(x, y),
                MessageCompression::Int8 => {
                    assert_eq!(msg.len(), 5 + 1000 + 4 * 4);
                    for (a, b) in x.iter().zip(&y) {
                        assert!((a - b).abs() <= 0.5 / 127.0 + 1e-6, "{a} {b}");
                    }
                }
                MessageCompression::TopK { fraction }
                | MessageCompression::TopKInt8 { fraction } => {
                    let kept = y.iter().filter(|v| **v != 0.0).count();
                    assert!(kept <= (fraction * 1000.0).ceil() as usize);
                    // The kept entries are the largest: every dropped one is no larger than every kept one.
                    let min_kept = x
                        .iter()
                        .zip(&y)
                        .filter(|(_, y)| **y != 0.0)
                        .map(|(x, _)| x.abs());
                    let max_dropped = x
                        .iter()
                        .zip(&y)
                        .filter(|(_, y)| **y == 0.0)
                        .map(|(x, _)| x.abs());
                    let (lo, hi) = (
                        min_kept.fold(f32::MAX, f32::min),
                        max_dropped.fold(0.0, f32::max),
                    );
                    assert!(hi <= lo, "{c}: dropped {hi} > kept {lo}");
                }
            }
        }
    }

    #[test]
    fn compressed_messages_are_smaller() {
        let x = vector(100_000, 2);
        let size = |s: &str| s.parse::<MessageCompression>().unwrap().encode(&x).len();
        assert_eq!(size("none"), 5 + 400_000);
        assert!(size("int8") * 3 < size("none"));
        // 1 % kept: ~1,000 gaps of 1–2 bytes and 1,000 int8 values.
        assert!(
            size("top-k-int8:0.01") < 3_500,
            "{}",
            size("top-k-int8:0.01")
        );
    }

    #[test]
    fn error_feedback_loses_nothing_over_steps() {
        for c in all() {
            let mut ef = ErrorFeedback::new(c, 500);
            let mut sent = vec![0f64; 500];
            let mut total = vec![0f64; 500];
            for step in 0..50 {
                let x = vector(500, 100 + step);
                let (msg, decoded) = ef.encode(&x);
                let mut check = vec![0.0; 500];
                MessageCompression::decode(&msg, &mut check).unwrap();
                assert_eq!(check, decoded);
                for i in 0..500 {
                    sent[i] += f64::from(decoded[i]);
                    total[i] += f64::from(x[i]);
                }
            }
            for i in 0..500 {
                let gap = (total[i] - sent[i] - f64::from(ef.residual()[i])).abs();
                assert!(gap < 1e-3, "{c}: {gap} lost at {i}");
            }
            if !c.is_lossy() {
                assert!(ef.residual().iter().all(|r| *r == 0.0));
            }
            // The remainder stays bounded: it does not grow with the steps.
            let norm = ef.residual().iter().map(|r| r * r).sum::<f32>().sqrt();
            assert!(norm < 40.0, "{c}: remainder {norm}");
        }
    }

    #[test]
    fn corrupt_messages_are_errors() {
        let x = vector(300, 3);
        for c in all() {
            let msg = c.encode(&x);
            let mut y = vec![0.0; 300];
            for cut in [0, 1, 4, 5, msg.len() - 1] {
                assert!(
                    MessageCompression::decode(&msg[..cut], &mut y).is_err(),
                    "{c} cut {cut}"
                );
            }
            let mut longer = msg.clone();
            longer.push(0);
            assert!(MessageCompression::decode(&longer, &mut y).is_err());
            assert!(MessageCompression::decode(&msg, &mut [0.0; 299]).is_err());
        }
        let mut bad_tag = MessageCompression::None.encode(&x);
        bad_tag[0] = 9;
        assert!(MessageCompression::decode(&bad_tag, &mut [0.0; 300]).is_err());
        for s in ["top-k:0", "top-k:1.5", "top-k", "zip", "int8:3"] {
            assert!(s.parse::<MessageCompression>().is_err(), "{s}");
        }
    }
}
