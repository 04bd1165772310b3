//! The geometry shared by the windowed operators (CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D):
//! kernel or filter size, stride, explicit padding, and which output pixels a window cell reaches inside the
//! input, so that kernels loop over valid pixels only and never test bounds per pixel.

use crate::bytes::Reader;
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// Window, stride and padding, as the operator record stores them (one byte each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Window {
    pub kh: u8,
    pub kw: u8,
    pub sh: u8,
    pub sw: u8,
    /// Padding above, left of, below and right of the input.
    pub pad: [u8; 4],
}

impl Window {
    /// Reads the 8 bytes: kernel h, w; stride h, w; padding top, left, bottom, right.
    pub fn read(r: &mut Reader) -> Result<Window> {
        let b = r.take(8)?;
        Ok(Window {
            kh: b[0],
            kw: b[1],
            sh: b[2],
            sw: b[3],
            pad: [b[4], b[5], b[6], b[7]],
        })
    }
}

/// A window over a concrete input and output: everything a kernel needs, in counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub ih: usize,
    pub iw: usize,
    pub ic: usize,
    pub oh: usize,
    pub ow: usize,
    pub oc: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pt: usize,
    pub pl: usize,
}

/// Output extent of one axis: `(input + pads − kernel) / stride + 1`, or `None` when the window does not fit.
fn extent(input: usize, before: usize, after: usize, k: usize, s: usize) -> Option<usize> {
    let padded = input + before + after;
    (k >= 1 && s >= 1 && padded >= k && before < k && after < k).then(|| (padded - k) / s + 1)
}

impl Geometry {
    /// Checks that `input` and `output` are rank-3 images and that the window maps one onto the other;
    /// `channels` is the output channel count the operator implies.
    pub fn new(
        w: Window,
        input: Shape,
        output: Shape,
        channels: usize,
        op: u16,
    ) -> Result<Geometry> {
        let mismatch = |expected: usize, found: usize| Error::ShapeMismatch {
            op,
            expected: expected as u32,
            found: found as u32,
        };
        let (ih, iw, ic) = input.hwc().ok_or(mismatch(3, input.rank()))?;
        let (oh, ow, oc) = output.hwc().ok_or(mismatch(3, output.rank()))?;
        let (kh, kw, sh, sw) = (
            usize::from(w.kh),
            usize::from(w.kw),
            usize::from(w.sh),
            usize::from(w.sw),
        );
        let [pt, pl, pb, pr] = w.pad.map(usize::from);
        let eh = extent(ih, pt, pb, kh, sh).ok_or(mismatch(ih, kh))?;
        let ew = extent(iw, pl, pr, kw, sw).ok_or(mismatch(iw, kw))?;
        if (eh, ew) != (oh, ow) {
            return Err(mismatch(eh * ew, oh * ow));
        }
        if oc != channels {
            return Err(mismatch(channels, oc));
        }
        Ok(Geometry {
            ih,
            iw,
            ic,
            oh,
            ow,
            oc,
            kh,
            kw,
            sh,
            sw,
            pt,
            pl,
        })
    }

    /// Output rows `[lo, hi)` whose window cell `ky` falls inside the input (the f32 kernels' loop bounds).
    #[cfg_attr(feature = "integer-only", allow(dead_code))]
    #[inline(always)]
    pub fn rows(&self, ky: usize) -> (usize, usize) {
        span(ky, self.pt, self.sh, self.ih, self.oh)
    }

    /// Output columns `[lo, hi)` whose window cell `kx` falls inside the input.
    #[cfg_attr(feature = "integer-only", allow(dead_code))]
    #[inline(always)]
    pub fn cols(&self, kx: usize) -> (usize, usize) {
        span(kx, self.pl, self.sw, self.iw, self.ow)
    }

    /// Window cells `[lo, hi)` of output row `oy` that fall inside the input, and the input row of cell 0 plus
    /// the padding (`oy · stride`; input row = that + cell − pad).
    #[inline(always)]
    pub fn cells_y(&self, oy: usize) -> (usize, usize) {
        cells(oy * self.sh, self.pt, self.kh, self.ih)
    }

    /// Window cells `[lo, hi)` of output column `ox` that fall inside the input.
    #[inline(always)]
    pub fn cells_x(&self, ox: usize) -> (usize, usize) {
        cells(ox * self.sw, self.pl, self.kw, self.iw)
    }

    /// Pixels of one output channel.
    pub fn plane(&self) -> usize {
        self.oh * self.ow
    }
}

/// The cells `k` in `[0, window)` for which `origin + k − pad` lies in `[0, input)`.
#[inline(always)]
fn cells(origin: usize, pad: usize, window: usize, input: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(origin).min(window);
    let hi = (input + pad).saturating_sub(origin).min(window);
    (lo, hi.max(lo))
}

#[cfg_attr(feature = "integer-only", allow(dead_code))]
/// The outputs `o` in `[0, n)` for which `o·s + k − pad` lies in `[0, input)`.
#[inline(always)]
fn span(k: usize, pad: usize, s: usize, input: usize, n: usize) -> (usize, usize) {
    let s = s.max(1);
    // o·s ≥ pad − k: o ≥ ceil((pad − k) / s).
    let lo = pad.saturating_sub(k).div_ceil(s);
    // o·s + k − pad ≤ input − 1: o ≤ (input − 1 + pad − k) / s.
    let top = input + pad;
    let hi = if top > k {
        ((top - 1 - k) / s + 1).min(n)
    } else {
        0
    };
    (lo.min(hi), hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_exactly_the_valid_outputs() {
        for (input, pad, s, k) in [
            (5, 1, 1, 3),
            (7, 2, 2, 5),
            (4, 0, 1, 2),
            (9, 3, 3, 4),
            (3, 2, 1, 5),
        ] {
            let n = (input + 2 * pad - k) / s + 1;
            for ky in 0..k {
                let (lo, hi) = span(ky, pad, s, input, n);
                for o in 0..n {
                    let i = (o * s + ky) as isize - pad as isize;
                    assert_eq!(
                        (lo..hi).contains(&o),
                        (0..input as isize).contains(&i),
                        "{input} {pad} {s} {k}: ky {ky} o {o}"
                    );
                }
            }
        }
    }
}
