//! Preparing a model: its sparse operators' streams decoded once into memory the caller provides, in the layout
//! of `ops::prepared`, so that the integer path runs them at a few instructions per kept weight. The memory's
//! exact size is known at load ([`Model::prepared_len_int8`]), as the arena's is; nothing allocates. Preparing is
//! optional and per model: a device short of RAM runs the stored streams in place with the same entry points.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::ops::{self, Op};

/// Bytes of one operator's prepared form in the model's prepared memory (word-aligned, so that the next one
/// starts on a word); 0 for operators without one.
fn form_len(op: &Op) -> usize {
    (op.prepared as usize).saturating_add(3) & !3
}

/// The prepared forms of a model's operators, handed out in operator order.
pub(crate) struct Forms<'a> {
    rest: &'a [u8],
}

impl<'a> Forms<'a> {
    /// The prepared form of `op`, the next operator (empty when it has none or the model is not prepared).
    pub fn next_for(&mut self, op: &Op) -> &'a [u8] {
        let n = form_len(op);
        if n == 0 || self.rest.len() < n {
            return &[];
        }
        let (form, rest) = self.rest.split_at(n);
        self.rest = rest;
        form
    }
}

impl<'a> Model<'a> {
    /// Exact bytes [`Model::prepare_int8`] needs: the sum of the sparse operators' prepared forms (for
    /// LeNet-300-100's default file 32,196 bytes, 2.8 per kept weight); 0 when no operator has one (dense,
    /// zstd-coded or f32-only files) and in builds without the `prepare` feature.
    pub fn prepared_len_int8(&self) -> usize {
        self.ops
            .iter()
            .take(self.op_count)
            .fold(0usize, |n, op| n.saturating_add(form_len(op)))
    }

    /// Whether [`Model::prepare_int8`] has prepared this model.
    pub fn is_prepared(&self) -> bool {
        !self.prepared.is_empty()
    }

    /// Decodes every sparse operator's streams once into `memory` (at least [`Model::prepared_len_int8`] bytes,
    /// which it then holds for the model's lifetime) in the layout the integer path's prepared kernels read, and
    /// plans the arenas again: a prepared operator needs its input's size plus 256 bytes of scratch instead of a
    /// plane of accumulators or decoding memory, and a MAX_POOL_2D of four cells right after a prepared convolution
    /// that alone reads its output is fused into it (one requantization per pooling window; the convolution's
    /// output then takes no memory), so [`Model::arena_len_int8`] changes (read it after preparing).
    /// Outputs are exactly those of the stored streams. The f32 path is not affected.
    ///
    /// Errors: [`Error::PathUnavailable`] without the integer path, [`Error::BufferTooSmall`] (`"prepared"`),
    /// [`Error::CorruptStream`] if a stream does not decode to what its header promised; on error the model is
    /// left as it was (running from its streams).
    pub fn prepare_int8(&mut self, memory: &'a mut [u8]) -> Result<()> {
        if !self.has_integer() {
            return Err(Error::PathUnavailable);
        }
        let needed = self.prepared_len_int8();
        if memory.len() < needed {
            return Err(Error::BufferTooSmall {
                buffer: "prepared",
                needed,
                provided: memory.len(),
            });
        }
        if !ops::prepared::PREPARE {
            // Without the `prepare` feature no operator has a prepared form (`needed` is 0).
            return Ok(());
        }
        let memory = memory.get_mut(..needed).ok_or(Error::Overflow)?;
        let mut rest = &mut *memory;
        for (i, op) in self.ops.iter().take(self.op_count).enumerate() {
            let n = form_len(op);
            if n == 0 {
                continue;
            }
            let (form, tail) = core::mem::take(&mut rest).split_at_mut(n);
            rest = tail;
            ops::fill_prepared(op, i as u16, &self.op_tensors(op), self.flags, form)?;
        }
        if needed == 0 {
            return Ok(());
        }
        let old = self.prepared;
        self.prepared = memory;
        if let Err(e) = self.plan() {
            self.prepared = old;
            self.plan()?;
            return Err(e);
        }
        Ok(())
    }

    /// The prepared forms, for a run.
    pub(crate) fn prepared_forms(&self) -> Forms<'a> {
        Forms {
            rest: self.prepared,
        }
    }
}
