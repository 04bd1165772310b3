//! FULLY_CONNECTED: `y[o] = act(Σ_j W[o][j] · x[j] + b[o])` over the input's elements in row-major order (a
//! flatten before it is free), int8 per output channel (or per tensor) on the integer path. Dense weights run as
//! dot products; sparse shared weights straight from their streams, a row at a time.

use super::{Io, Op, Prepared, Tensors};
use crate::bytes::i32_at;
use crate::error::{Error, Result};
use crate::stream::Sink;
use crate::weights::{Codebook, Payload, Quant};

/// (outputs, fan-in): the output's and the input's element counts.
fn dims(t: &Tensors) -> (usize, usize) {
    (t.output.shape.len(), t.input.shape.len())
}

/// Checks the weights against the tensors; no scratch beyond the streams' decoding memory.
#[inline(never)]
pub(crate) fn prepare(op: &Op, index: u16, t: &Tensors, flags: u16) -> Result<Prepared> {
    let w = super::weights(op, index, t, flags, dims(t), true)?;
    super::weighted(&w, [0, 0])
}

/// Σ w·(x − zp) over int8 weights and activations. A plain integer reduction: integer addition is associative,
/// so the compiler vectorizes it for whatever SIMD the target has (measured on LeNet-300-100: 1.5× faster than
/// a hand-unrolled array of partial sums on baseline x86-64, which it left scalar; 8× with AVX2 enabled).
#[inline(always)]
fn dot_i8(w: &[u8], x: &[u8], zp: i32) -> i32 {
    // Both factors fit in i16 (|w| ≤ 127, |x − zp| ≤ 255): written as i16 values widened to i32, the product and
    // its sum match SSE2's pmaddwd (and NEON's smlal), which the compiler then picks.
    let zp = zp as i16;
    w.iter()
        .zip(x)
        .map(|(&a, &b)| i32::from(i16::from(a as i8)) * i32::from(i16::from(b as i8) - zp))
        .fold(0i32, i32::wrapping_add)
}

/// The integer kernel.
#[inline(never)]
pub(crate) fn run_int8(op: &Op, index: u16, t: &Tensors, flags: u16, io: &mut Io) -> Result<()> {
    let w = super::weights(op, index, t, flags, dims(t), false)?;
    let q = w.quant.ok_or(Error::PathUnavailable)?;
    let out = Out {
        q,
        zp_out: i32::from(t.output.zero_point),
        range: super::clamp_range(op),
    };
    let zp_in = i32::from(t.input.zero_point);
    let p = io.parts(0)?;
    match w.payload {
        Payload::DenseI8(ws) => {
            for ((o, row), yo) in ws
                .chunks_exact(w.fan_in.max(1))
                .enumerate()
                .zip(p.y.iter_mut())
                .take(w.outputs)
            {
                *yo = out.value(dot_i8(row, p.x, zp_in).wrapping_add(i32_at(q.bias, o)), o);
            }
        }
        Payload::Sparse(s) => {
            // Integer-path files have int8 codebooks (checked at load), copied into a table of 256 (indices have
            // at most 8 bits) so that the kernel reads it without a bounds check.
            let mut table = [0i8; 256];
            if let Codebook::I8(c) = s.codebook {
                table.iter_mut().zip(c).for_each(|(t, &c)| *t = c as i8);
            }
            let mut sink = SparseInt8 {
                x: p.x,
                y: p.y,
                codebook: &table,
                zp_in,
                out,
                acc: 0,
            };
            // Validated at load: unchecked.
            s.walk::<false, _>(w.fan_in, w.outputs, index, &mut { p.streams }, &mut sink)?;
        }
        Payload::DenseF32(_) => return Err(Error::PathUnavailable),
    }
    Ok(())
}

/// How an accumulator becomes an int8 output.
struct Out<'q> {
    q: Quant<'q>,
    zp_out: i32,
    range: (i32, i32),
}

impl Out<'_> {
    #[inline(always)]
    fn value(&self, acc: i32, o: usize) -> u8 {
        crate::quant::to_i8(acc, self.q.channel(o), self.zp_out, self.range) as u8
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
        let acc = self.acc.wrapping_add(i32_at(self.out.q.bias, row));
        if let Some(v) = self.y.get_mut(row) {
            *v = self.out.value(acc, row);
        }
        self.acc = 0;
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
