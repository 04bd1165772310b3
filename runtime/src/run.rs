//! Running a loaded model: the input goes into its planned place in the arena, each operator runs on the
//! slices of the arena its tensors and scratch were planned at, and the output is copied out. The entry points
//! check every buffer the caller passes; nothing allocates.

use crate::error::{Error, Result};
use crate::format::OpKind;
use crate::model::Model;
use crate::ops::{self, Io};
use crate::tensor::Path;

/// A byte range of the arena.
type Range = (usize, usize);

/// An operator's memory: its two inputs (read-only) and its output and scratch (writable).
type Carved<'a> = ([&'a [u8]; 2], [&'a mut [u8]; 2]);

/// Splits `arena` into the two writable ranges (which must not overlap each other) and two read-only ranges
/// (which may coincide, but must lie outside the writable ones).
fn carve(arena: &mut [u8], writes: [Range; 2], reads: [Range; 2]) -> Option<Carved<'_>> {
    let [w0, w1] = writes;
    let swap = w1.0 < w0.0;
    let (a, b) = if swap { (w1, w0) } else { (w0, w1) };
    if a.1 > b.0 || a.0 > a.1 || b.0 > b.1 {
        return None;
    }
    let (head, rest) = arena.split_at_mut(a.0.min(arena.len()));
    let (wa, rest) = rest.split_at_mut(a.1.checked_sub(a.0)?.min(rest.len()));
    let (mid, rest) = rest.split_at_mut((b.0 - a.1).min(rest.len()));
    let (wb, tail) = rest.split_at_mut((b.1 - b.0).min(rest.len()));
    if wa.len() != a.1 - a.0 || wb.len() != b.1 - b.0 {
        return None;
    }
    let pieces: [(usize, &[u8]); 3] = [(0, head), (a.1, mid), (b.1, tail)];
    let read = |(from, to): Range| -> Option<&[u8]> {
        pieces.iter().find_map(|&(start, p)| {
            (from >= start && to <= start + p.len())
                .then(|| p.get(from - start..to - start))
                .flatten()
        })
    };
    let r = [read(reads[0])?, read(reads[1])?];
    Some((r, if swap { [wb, wa] } else { [wa, wb] }))
}

impl Model<'_> {
    /// Runs every operator on `path`; the input is already in place in the arena.
    fn execute(&self, path: Path, arena: &mut [u8]) -> Result<()> {
        let p = path as usize;
        let bytes = path.element_bytes();
        let mut prepared = self.prepared_forms();
        let mut fused = false;
        for (i, op) in self.ops.iter().take(self.op_count).enumerate() {
            let form = match path {
                Path::Int => prepared.next_for(op),
                Path::F32 => &[],
            };
            // A MAX_POOL_2D fused into the convolution before it ran with it.
            if op.kind == OpKind::Reshape || core::mem::take(&mut fused) {
                continue;
            }
            let t = self.op_tensors(op);
            let (output, pool) = self.pooling(op, i, path, form)?;
            fused = pool.is_some();
            let span = |offset: usize, elements: usize| (offset, offset + elements * bytes);
            let x = span(t.input.offset[p], t.input.shape.len());
            let x2 = span(t.input2.offset[p], t.input2.shape.len());
            let y = span(output.offset[p], output.shape.len());
            let prepared = (self.is_prepared(), t.input.shape.len());
            let scratch_len = op.scratch_len(p, self.arena_decoding(), prepared);
            let s = match scratch_len {
                // No scratch: an empty range just past the output, which nothing can overlap.
                0 => (y.1, y.1),
                n => (op.scratch_offset[p], op.scratch_offset[p] + n),
            };
            let ([x, x2], [y, scratch]) = carve(arena, [y, s], [x, x2]).ok_or(Error::Overflow)?;
            let mut io = Io {
                x,
                x2,
                y,
                scratch,
                arena_decoding: self.arena_decoding(),
                prepared: form,
                pool,
            };
            let index = i as u16;
            match path {
                Path::Int => ops::run_int8(op, index, &t, self.flags, &mut io)?,
                #[cfg(not(feature = "integer-only"))]
                Path::F32 => ops::run_f32(op, index, &t, self.flags, &mut io)?,
                #[cfg(feature = "integer-only")]
                Path::F32 => return Err(Error::PathUnavailable),
            }
        }
        Ok(())
    }

    /// The tensor operator `i` writes on `path`, and the pooling fused into it: for a prepared convolution with a
    /// MAX_POOL_2D fused into it (`ops::fuse`), the pooling's output and its window.
    fn pooling(
        &self,
        op: &ops::Op,
        i: usize,
        path: Path,
        form: &[u8],
    ) -> Result<(crate::tensor::Tensor, Option<ops::fuse::Pool>)> {
        let next = self.ops.get(i + 1).filter(|_| i + 1 < self.op_count);
        match next {
            Some(pool) if path == Path::Int && op.pooled => {
                // Planned fused (the convolution's output has no memory): it must run prepared.
                if form.is_empty() {
                    return Err(Error::Overflow);
                }
                let index = u16::try_from(i + 1).map_err(|_| Error::Overflow)?;
                let fused = ops::fuse::pool(op, pool, index, &self.op_tensors(pool))?;
                Ok((self.tensor(pool.output), Some(fused)))
            }
            _ => Ok((self.tensor(op.output), None)),
        }
    }

    /// Checks the caller's buffers for a run on `path`.
    fn check(&self, path: Path, (input, arena, output): (usize, usize, usize)) -> Result<()> {
        let available = match path {
            Path::Int => self.has_integer(),
            Path::F32 => self.has_f32(),
        };
        if !available {
            return Err(Error::PathUnavailable);
        }
        let needed = [
            ("input", self.input_len(), input),
            ("arena", self.arena[path as usize], arena),
            ("output", self.output_len(), output),
        ];
        for (buffer, needed, provided) in needed {
            if provided < needed {
                return Err(Error::BufferTooSmall {
                    buffer,
                    needed,
                    provided,
                });
            }
        }
        Ok(())
    }

    /// The arena bytes of the input (or output) tensor on `path`.
    fn tensor_bytes<'r>(
        &self,
        arena: &'r mut [u8],
        path: Path,
        tensor: u16,
    ) -> Result<&'r mut [u8]> {
        let t = self
            .tensors
            .get(usize::from(tensor))
            .ok_or(Error::Overflow)?;
        let from = t.offset[path as usize];
        let len = t.shape.len() * path.element_bytes();
        arena.get_mut(from..from + len).ok_or(Error::Overflow)
    }

    /// Runs the integer-only path on one int8 input tensor (`input_len()` values, quantized with
    /// [`Model::input_quantization`]) and writes the int8 output tensor into `output`. `arena` must hold at least
    /// [`Model::arena_len_int8`] bytes.
    pub fn run_int8(&self, input: &[i8], arena: &mut [u8], output: &mut [i8]) -> Result<()> {
        self.check(Path::Int, (input.len(), arena.len(), output.len()))?;
        let x = self.tensor_bytes(arena, Path::Int, self.input)?;
        x.iter_mut().zip(input).for_each(|(d, &v)| *d = v as u8);
        self.finish_int8(arena, output)
    }

    /// Runs the integer-only path on raw pixels (0–255, quantized through the file's input table) and writes the
    /// int8 output (the logits of a classifier) into `output`.
    pub fn run_u8_int8(&self, pixels: &[u8], arena: &mut [u8], output: &mut [i8]) -> Result<()> {
        self.check(Path::Int, (pixels.len(), arena.len(), output.len()))?;
        if !self.has_input_table() {
            return Err(Error::PathUnavailable);
        }
        // The table as an array: indexed by a byte, the loop has no bounds check.
        let lut: &[u8; 256] = self.lut.try_into().map_err(|_| Error::PathUnavailable)?;
        let x = self.tensor_bytes(arena, Path::Int, self.input)?;
        for (d, &p) in x.iter_mut().zip(pixels) {
            *d = lut[usize::from(p)];
        }
        self.finish_int8(arena, output)
    }

    fn finish_int8(&self, arena: &mut [u8], output: &mut [i8]) -> Result<()> {
        self.execute(Path::Int, arena)?;
        let y = self.tensor_bytes(arena, Path::Int, self.output)?;
        output
            .iter_mut()
            .zip(y.iter())
            .for_each(|(d, &v)| *d = v as i8);
        Ok(())
    }

    /// The class with the highest int8 output (the first on ties), integer-only path, raw pixels.
    pub fn predict_int8(&self, pixels: &[u8], arena: &mut [u8]) -> Result<usize> {
        let mut out = [0i8; 256];
        let out = out
            .get_mut(..self.output_len().min(256))
            .ok_or(Error::Overflow)?;
        if self.output_len() > 256 {
            return Err(Error::BufferTooSmall {
                buffer: "output",
                needed: self.output_len(),
                provided: 256,
            });
        }
        self.run_u8_int8(pixels, arena, out)?;
        Ok(crate::argmax(out))
    }
}

#[cfg(not(feature = "integer-only"))]
impl Model<'_> {
    /// Runs the f32 path on one input tensor (`input_len()` values, already normalized, channels last) and writes
    /// the output tensor into `output`. `arena` must hold at least [`Model::arena_len`] bytes.
    pub fn run_f32(&self, input: &[f32], arena: &mut [u8], output: &mut [f32]) -> Result<()> {
        self.check(Path::F32, (input.len(), arena.len(), output.len()))?;
        let x = self.tensor_bytes(arena, Path::F32, self.input)?;
        for (b, v) in x.chunks_exact_mut(4).zip(input) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        self.finish_f32(arena, output)
    }

    /// Runs the f32 path on raw pixels (0–255), normalized with the model's stored mean and standard deviation.
    pub fn run_u8(&self, pixels: &[u8], arena: &mut [u8], output: &mut [f32]) -> Result<()> {
        self.check(Path::F32, (pixels.len(), arena.len(), output.len()))?;
        let (mean, std) = self.normalization();
        let (inv, shift) = (1.0 / (255.0 * std), mean / std);
        let x = self.tensor_bytes(arena, Path::F32, self.input)?;
        for (b, &p) in x.chunks_exact_mut(4).zip(pixels) {
            b.copy_from_slice(&(f32::from(p) * inv - shift).to_le_bytes());
        }
        self.finish_f32(arena, output)
    }

    fn finish_f32(&self, arena: &mut [u8], output: &mut [f32]) -> Result<()> {
        self.execute(Path::F32, arena)?;
        let y = self.tensor_bytes(arena, Path::F32, self.output)?;
        for (o, b) in output.iter_mut().zip(y.chunks_exact(4)) {
            *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Ok(())
    }

    /// The class with the highest output (the first on ties), f32 path, normalized input.
    pub fn predict(&self, input: &[f32], arena: &mut [u8]) -> Result<usize> {
        let mut out = [0f32; 256];
        let out = self.class_buffer(&mut out)?;
        self.run_f32(input, arena, out)?;
        Ok(crate::argmax(out))
    }

    /// The class with the highest output, f32 path, raw pixels.
    pub fn predict_u8(&self, pixels: &[u8], arena: &mut [u8]) -> Result<usize> {
        let mut out = [0f32; 256];
        let out = self.class_buffer(&mut out)?;
        self.run_u8(pixels, arena, out)?;
        Ok(crate::argmax(out))
    }

    fn class_buffer<'o>(&self, out: &'o mut [f32; 256]) -> Result<&'o mut [f32]> {
        let n = self.output_len();
        out.get_mut(..n).ok_or(Error::BufferTooSmall {
            buffer: "output",
            needed: n,
            provided: 256,
        })
    }
}
