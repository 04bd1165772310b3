//! The f32 path: for targets with a floating-point unit. Activations live in the caller's arena as
//! little-endian f32; int8-encoded weights are dequantized on the fly (`q · scale`).

use crate::bytes::f32_at;
use crate::error::{Error, Result};
use crate::model::{Codebook, LayerInfo, Model, Op, Payload, Scratch, Weights};
use crate::stream::Sink;

#[inline(always)]
fn get(buf: &[u8], i: usize) -> f32 {
    f32_at(buf, i)
}

#[inline(always)]
fn set(buf: &mut [u8], i: usize, v: f32) {
    if let Some(b) = buf.get_mut(4 * i..4 * i + 4) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

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

fn finish(v: f32, relu: bool) -> f32 {
    if relu && v < 0.0 {
        0.0
    } else {
        v
    }
}

/// The multiplier that turns an accumulated `Σ q·x` of output `o` into real units (1 for f32 weights).
fn scale(w: &Weights, o: usize) -> f32 {
    match w.payload {
        Payload::DenseI8(_) => f32_at(w.scales, o),
        Payload::Sparse(_) => f32_at(w.scales, 0),
        Payload::DenseF32(_) => 1.0,
    }
}

/// The f32 bias of output `o`: stored, or `bias_q · s_in · s_w` in files that also carry the integer path.
fn bias(w: &Weights, o: usize) -> f32 {
    match w.quant {
        Some(q) if w.bias_f32.is_empty() => {
            crate::bytes::i32_at(q.bias, o) as f32 * f32_at(w.input_scale, 0) * scale(w, o)
        }
        _ => get(w.bias_f32, o),
    }
}

fn codebook_value(cb: Codebook, i: usize) -> f32 {
    match cb {
        Codebook::I8(c) => c.get(i).map_or(0.0, |&q| f32::from(q as i8)),
        Codebook::F32(c) => f32_at(c, i),
    }
}

/// A sparse dense layer's kernel: accumulates `c[index] · x[col]` along a row, scales and adds the bias at its end.
struct SparseDense<'x, 'w> {
    x: &'x [u8],
    y: &'x mut [u8],
    w: &'x Weights<'w>,
    codebook: Codebook<'w>,
    scale: f32,
    relu: bool,
    acc: f32,
}

impl Sink for SparseDense<'_, '_> {
    #[inline(always)]
    fn weights(&mut self, cols: &[u32], indices: &[u8]) {
        // Locals, so that the loop keeps them in registers instead of reloading them through `self`.
        let (mut acc, x, codebook) = (self.acc, self.x, self.codebook);
        for (&col, &index) in cols.iter().zip(indices) {
            acc += codebook_value(codebook, usize::from(index)) * get(x, col as usize);
        }
        self.acc = acc;
    }

    #[inline(always)]
    fn end_row(&mut self, row: usize) {
        let v = self.acc * self.scale + bias(self.w, row);
        set(self.y, row, finish(v, self.relu));
        self.acc = 0.0;
    }
}

fn dense(
    l: &LayerInfo,
    w: &Weights,
    x: &[u8],
    y: &mut [u8],
    layer: u16,
    scratch: &mut Scratch,
) -> Result<()> {
    let n = w.fan_in;
    match w.payload {
        Payload::DenseF32(ws) => {
            for (o, row) in ws.chunks_exact(4 * n).enumerate().take(w.outputs) {
                set(y, o, finish(dot_f32(row, x) + bias(w, o), l.relu));
            }
        }
        Payload::DenseI8(ws) => {
            for (o, row) in ws.chunks_exact(n).enumerate().take(w.outputs) {
                let v = dot_i8_f32(row, x) * scale(w, o) + bias(w, o);
                set(y, o, finish(v, l.relu));
            }
        }
        Payload::Sparse(s) => {
            let mut sink = SparseDense {
                x,
                y,
                w,
                codebook: s.codebook,
                scale: scale(w, 0),
                relu: l.relu,
                acc: 0.0,
            };
            // Validated at load: unchecked.
            s.walk::<false, _>(n, w.outputs, layer, scratch, &mut sink)?;
        }
    }
    Ok(())
}

/// Output pixels accumulated at once, in registers.
const SPAN: usize = 64;

/// Adds the taps of output channel `o` to its plane in `y`, [`SPAN`] output pixels at a time in registers.
fn accumulate(l: &LayerInfo, x: &[u8], y: &mut [u8], o: usize, taps: &[(usize, f32)]) {
    let (iw, oh, ow) = (l.input.w, l.output.h, l.output.w);
    for oy in 0..oh {
        for ox0 in (0..ow).step_by(SPAN) {
            let len = SPAN.min(ow - ox0);
            let base = 4 * ((o * oh + oy) * ow + ox0);
            let Some(out) = y.get_mut(base..base + 4 * len) else {
                return;
            };
            let mut acc = [0f32; SPAN];
            for (a, b) in acc.iter_mut().zip(out.chunks_exact(4)) {
                *a = get(b, 0);
            }
            let origin = oy * iw + ox0;
            for &(offset, v) in taps {
                let src = 4 * (origin + offset);
                if let Some(xs) = x.get(src..src + 4 * len) {
                    for (a, xb) in acc.iter_mut().zip(xs.chunks_exact(4)) {
                        *a += v * get(xb, 0);
                    }
                }
            }
            for (a, b) in acc.iter().zip(out.chunks_exact_mut(4)) {
                b.copy_from_slice(&a.to_le_bytes());
            }
        }
    }
}

fn conv(
    l: &LayerInfo,
    w: &Weights,
    x: &[u8],
    y: &mut [u8],
    layer: u16,
    scratch: &mut Scratch,
) -> Result<()> {
    let plane = l.output.h * l.output.w;
    for i in 0..l.output.len() {
        set(y, i, 0.0);
    }
    // The encoding is matched once, not per weight.
    let (f32s, i8s): (&[u8], &[u8]) = match w.payload {
        Payload::DenseF32(ws) => (ws, &[]),
        Payload::DenseI8(ws) => (&[], ws),
        Payload::Sparse(_) => (&[], &[]),
    };
    let dense = |j: usize| match i8s.get(j) {
        Some(&q) => Some(f32::from(q as i8)),
        None => f32s.get(4 * j..4 * j + 4).map(|b| get(b, 0)),
    };
    let shared = |i: usize| match w.payload {
        Payload::Sparse(s) => codebook_value(s.codebook, i),
        _ => 0.0,
    };
    crate::taps::conv_taps(l, w, layer, scratch, dense, shared, |o, taps| {
        accumulate(l, x, y, o, taps)
    })?;
    for o in 0..w.outputs {
        let (sc, b) = (scale(w, o), bias(w, o));
        for i in o * plane..(o + 1) * plane {
            set(y, i, finish(get(y, i) * sc + b, l.relu));
        }
    }
    Ok(())
}

fn max_pool(l: &LayerInfo, x: &[u8], y: &mut [u8]) {
    let s = l.size;
    let (ih, iw) = (l.input.h, l.input.w);
    let (oh, ow) = (l.output.h, l.output.w);
    for c in 0..l.output.c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..s {
                    for kx in 0..s {
                        m = m.max(get(x, (c * ih + oy * s + ky) * iw + ox * s + kx));
                    }
                }
                set(y, (c * oh + oy) * ow + ox, m);
            }
        }
    }
}

impl Model<'_> {
    fn check_f32(&self, arena: &[u8], output_len: usize) -> Result<()> {
        if !self.has_f32() {
            return Err(Error::PathUnavailable);
        }
        if arena.len() < self.arena_len() {
            return Err(Error::BufferTooSmall {
                buffer: "arena",
                needed: self.arena_len(),
                provided: arena.len(),
            });
        }
        if output_len < self.classes {
            return Err(Error::BufferTooSmall {
                buffer: "output",
                needed: self.classes,
                provided: output_len,
            });
        }
        Ok(())
    }

    /// Runs the f32 path on one normalized input (`input_len()` values, channel-major) and writes the
    /// `classes()` logits into `output`. `arena` must hold at least [`Model::arena_len`] bytes.
    pub fn run(&self, input: &[f32], arena: &mut [u8], output: &mut [f32]) -> Result<()> {
        self.check_f32(arena, output.len())?;
        if input.len() < self.input.len() {
            return Err(Error::BufferTooSmall {
                buffer: "input",
                needed: self.input.len(),
                provided: input.len(),
            });
        }
        for (b, v) in arena
            .chunks_exact_mut(4)
            .zip(input.iter().take(self.input.len()))
        {
            b.copy_from_slice(&v.to_le_bytes());
        }
        self.run_arena(arena, output)
    }

    /// Runs the f32 path on raw pixels (0–255), normalized with the model's stored mean and standard deviation.
    pub fn run_u8(&self, pixels: &[u8], arena: &mut [u8], output: &mut [f32]) -> Result<()> {
        self.check_f32(arena, output.len())?;
        if pixels.len() < self.input.len() {
            return Err(Error::BufferTooSmall {
                buffer: "input",
                needed: self.input.len(),
                provided: pixels.len(),
            });
        }
        let (mean, std) = self.normalization();
        let (inv, shift) = (1.0 / (255.0 * std), mean / std);
        for (b, &p) in arena
            .chunks_exact_mut(4)
            .zip(pixels.iter().take(self.input.len()))
        {
            b.copy_from_slice(&(f32::from(p) * inv - shift).to_le_bytes());
        }
        self.run_arena(arena, output)
    }

    /// The class with the highest logit (the first on ties), f32 path, normalized input.
    pub fn predict(&self, input: &[f32], arena: &mut [u8]) -> Result<usize> {
        let mut out = [0f32; 256];
        let n = self.classes.min(256);
        let out = out.get_mut(..n).ok_or(Error::Overflow)?;
        self.run(input, arena, out)?;
        Ok(crate::argmax(out))
    }

    /// The class with the highest logit, f32 path, raw pixels.
    pub fn predict_u8(&self, pixels: &[u8], arena: &mut [u8]) -> Result<usize> {
        let mut out = [0f32; 256];
        let n = self.classes.min(256);
        let out = out.get_mut(..n).ok_or(Error::Overflow)?;
        self.run_u8(pixels, arena, out)?;
        Ok(crate::argmax(out))
    }

    /// Runs every layer; the input is already in the arena's first region.
    fn run_arena(&self, arena: &mut [u8], output: &mut [f32]) -> Result<()> {
        let (input, rest) = arena.split_at_mut(4 * self.input.len());
        let (a, rest) = rest.split_at_mut(4 * self.buffers[0]);
        let (b, scratch) = rest.split_at_mut(4 * self.buffers[1]);
        let scratch = &mut Scratch {
            bytes: scratch
                .get_mut(..self.decode_len())
                .ok_or(Error::Overflow)?,
            arena: self.arena_decoding(),
        };
        let last = self.walk(input, a, b, |l, weighted, x, y| {
            match (l.op, &l.weights) {
                (Op::Dense, Some(w)) => dense(l, w, x, y, weighted, scratch)?,
                (Op::Conv2d, Some(w)) => conv(l, w, x, y, weighted, scratch)?,
                (Op::MaxPool, _) => max_pool(l, x, y),
                _ => {}
            }
            Ok(())
        })?;
        for (i, o) in output.iter_mut().take(self.classes).enumerate() {
            *o = get(last, i);
        }
        Ok(())
    }
}
