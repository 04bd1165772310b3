//! The arena plan: an offset for every tensor and every operator's scratch, per numeric path, such that buffers
//! alive at the same time never overlap. Planned once at load (and again when the stream decoding mode changes),
//! without allocating: buffers are placed largest first at the lowest offset that clears every placed buffer
//! whose lifetime meets theirs (TFLite Micro's greedy planner). A RESHAPE's output shares its input's buffer.
//! `arena_len` is the plan's exact high-water mark.

use crate::error::{Error, Result};
use crate::format::{MAX_OPS, MAX_TENSORS, NO_TENSOR};
use crate::ops::Op;
use crate::tensor::{Path, Tensor};

/// Most buffers a plan places: every tensor and every operator's scratch.
const MAX_BUFFERS: usize = MAX_TENSORS + MAX_OPS;

/// One buffer to place: bytes and the operators `[first, last]` during which it is alive.
#[derive(Debug, Clone, Copy, Default)]
struct Buffer {
    bytes: usize,
    first: usize,
    last: usize,
    offset: usize,
}

/// Rounds up to a multiple of 4, so that every buffer starts word-aligned.
fn align4(n: usize) -> Result<usize> {
    n.checked_add(3).map(|v| v & !3).ok_or(Error::Overflow)
}

/// The tensor whose memory `t` uses (following RESHAPE outputs back to their inputs).
pub(crate) fn root(ops: &[Op], t: u16) -> u16 {
    let mut t = t;
    // A chain is at most as long as the graph.
    for _ in 0..ops.len() {
        match ops
            .iter()
            .find(|o| o.output == t && o.kind == crate::format::OpKind::Reshape)
        {
            Some(o) => t = o.inputs[0],
            None => break,
        }
    }
    t
}

/// Plans `path`'s arena for the graph: writes every tensor's and operator's offset and returns the arena bytes.
pub(crate) fn plan(
    tensors: &mut [Tensor],
    ops: &mut [Op],
    (input, output): (u16, u16),
    path: Path,
    (arena_decoding, prepared): (bool, bool),
) -> Result<usize> {
    let mut bufs = [Buffer::default(); MAX_BUFFERS];
    let n_t = tensors.len();
    let end = ops.len();
    // Tensor buffers, indexed by tensor id; a RESHAPE output's lifetime is its root's.
    for (i, t) in tensors.iter().enumerate() {
        let b = bufs.get_mut(i).ok_or(Error::Overflow)?;
        b.bytes = align4(
            t.shape
                .len()
                .checked_mul(path.element_bytes())
                .ok_or(Error::Overflow)?,
        )?;
        (b.first, b.last) = (end, 0);
    }
    let touch = |bufs: &mut [Buffer; MAX_BUFFERS], t: u16, at: usize| {
        if let Some(b) = bufs.get_mut(usize::from(root(ops, t))) {
            b.first = b.first.min(at);
            b.last = b.last.max(at);
        }
    };
    touch(&mut bufs, input, 0);
    touch(&mut bufs, output, end);
    for i in 0..ops.len() {
        for t in tensors_touched(ops, i, path)
            .into_iter()
            .filter(|&t| t != NO_TENSOR)
        {
            touch(&mut bufs, t, i);
        }
    }
    for (i, op) in ops.iter().enumerate() {
        let b = bufs.get_mut(n_t + i).ok_or(Error::Overflow)?;
        let input = tensors
            .get(usize::from(op.inputs[0]))
            .map_or(0, |t| t.shape.len());
        b.bytes = align4(op.scratch_len(path as usize, arena_decoding, (prepared, input)))?;
        (b.first, b.last) = (i, i);
    }
    let count = n_t + ops.len();
    // Tensors nothing touches (RESHAPE outputs, which live in their root's buffer) take no memory.
    for b in bufs.iter_mut().take(n_t) {
        if b.first > b.last {
            b.bytes = 0;
        }
    }
    let mut placed = [0u16; MAX_BUFFERS];
    let mut done = [false; MAX_BUFFERS];
    let mut high = 0usize;
    for k in 0..count {
        // The largest buffer not yet placed (ties: the lowest index), so that the plan is deterministic.
        let next = (0..count)
            .filter(|&i| !done[i])
            .max_by(|&a, &b| bufs[a].bytes.cmp(&bufs[b].bytes).then(b.cmp(&a)))
            .ok_or(Error::Overflow)?;
        let offset = lowest_fit(&bufs, placed.get(..k).unwrap_or(&[]), next);
        bufs[next].offset = offset;
        high = high.max(
            offset
                .checked_add(bufs[next].bytes)
                .ok_or(Error::Overflow)?,
        );
        placed[k] = next as u16;
        done[next] = true;
    }
    for (i, t) in tensors.iter_mut().enumerate() {
        t.offset[path as usize] = bufs[usize::from(root(ops, i as u16))].offset;
    }
    for (i, op) in ops.iter_mut().enumerate() {
        op.scratch_offset[path as usize] = bufs[n_t + i].offset;
    }
    Ok(high)
}

/// The tensors operator `i` reads and writes on `path`. A convolution with a MAX_POOL_2D fused into it (integer
/// path, `Op::pooled`) writes the pooling's output and not its own, which the pooling then does not read: that
/// tensor takes no memory.
fn tensors_touched(ops: &[Op], i: usize, path: Path) -> [u16; 3] {
    let int = path == Path::Int;
    let Some(op) = ops.get(i) else {
        return [NO_TENSOR; 3];
    };
    let fused_into_previous = int && i > 0 && ops.get(i - 1).is_some_and(|p| p.pooled);
    let output = match ops.get(i + 1) {
        Some(pool) if int && op.pooled => pool.output,
        _ => op.output,
    };
    if fused_into_previous {
        return [NO_TENSOR, NO_TENSOR, output];
    }
    [op.inputs[0], op.inputs[1], output]
}

/// The lowest offset at which buffer `b` overlaps no buffer of `placed` that is alive at the same time.
fn lowest_fit(bufs: &[Buffer; MAX_BUFFERS], placed: &[u16], b: usize) -> usize {
    let me = bufs[b];
    if me.bytes == 0 || me.first > me.last {
        return 0;
    }
    let mut offset = 0usize;
    // Each pass moves past one conflicting buffer; at most one pass per placed buffer (plus the final check).
    for _ in 0..=placed.len() {
        let conflict = placed.iter().map(|&p| bufs[usize::from(p)]).find(|o| {
            o.bytes > 0
                && o.first <= me.last
                && me.first <= o.last
                && o.offset < offset.saturating_add(me.bytes)
                && offset < o.offset.saturating_add(o.bytes)
        });
        match conflict {
            Some(o) => offset = o.offset.saturating_add(o.bytes),
            None => return offset,
        }
    }
    offset
}
