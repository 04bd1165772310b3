//! A MAX_POOL_2D fused into the prepared convolution before it (integer path, prepared models only).
//!
//! With a multiplier ≥ 0 (which every prepared operator has), requantization and clamping are non-decreasing in
//! the accumulator, so the largest of a pooling window's requantized outputs is the requantized largest
//! accumulator: the convolution can take the maximum of the window's [`super::prepared`] sums and requantize
//! once, where it would requantize every pixel and MAX_POOL_2D would then read them back. Bytes are exactly
//! those of the two operators run one after the other; the convolution's output is never written, so the plan
//! gives it no memory. Fused when:
//! - the convolution (CONV_2D or DEPTHWISE_CONV_2D) has a prepared form and the MAX_POOL_2D comes right after it;
//! - nothing else reads the convolution's output, and it is not the graph's output;
//! - the pooling window has [`WINDOW_CELLS`] cells (2 × 2, 1 × 4 or 4 × 1), its stride is its size and it has no
//!   padding (every window whole, none overlapping: the windows tile the convolution's output);
//! - the two activation ranges overlap (then clamping to one and then the other is clamping to their
//!   intersection).

use super::window::Geometry;
use super::{max_pool_2d, Op, Tensors};
use crate::error::Result;
use crate::format::{OpKind, NO_TENSOR};

/// Cells of a pooling window the fused kernel takes: one pass of the prepared convolution's pixels.
pub(crate) const WINDOW_CELLS: usize = super::prepared::PIXELS;

/// The pooling a fused convolution applies before writing its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pool {
    /// Window (and stride) height and width.
    pub kh: usize,
    pub kw: usize,
    /// Pooled output height and width.
    pub oh: usize,
    pub ow: usize,
    /// The intersection of the two activation ranges.
    pub range: (i32, i32),
}

/// The intersection of two activation ranges, if they overlap.
fn intersect(a: (i8, i8), b: (i8, i8)) -> Option<(i32, i32)> {
    let (lo, hi) = (a.0.max(b.0), a.1.min(b.1));
    (lo <= hi).then_some((i32::from(lo), i32::from(hi)))
}

/// Whether operator `i` of `ops` is a prepared convolution that the MAX_POOL_2D after it can be fused into
/// (the module's conditions); `output` is the graph's output tensor.
pub(crate) fn fusable(ops: &[Op], i: usize, output: u16) -> bool {
    let (Some(conv), Some(pool)) = (ops.get(i), ops.get(i + 1)) else {
        return false;
    };
    let conv_kind = matches!(conv.kind, OpKind::Conv2d | OpKind::DepthwiseConv2d);
    let y = conv.output;
    let w = pool.window();
    let tiles = w.kh == w.sh && w.kw == w.sw && w.pad == [0; 4];
    let cells = usize::from(w.kh) * usize::from(w.kw) == WINDOW_CELLS;
    let only_reader = ops
        .iter()
        .enumerate()
        .all(|(j, o)| j == i + 1 || !o.inputs.contains(&y));
    conv_kind
        && conv.prepared > 0
        && pool.kind == OpKind::MaxPool2d
        && pool.inputs == [y, NO_TENSOR]
        && y != output
        && only_reader
        && tiles
        && cells
        && intersect(conv.range, pool.range).is_some()
}

/// The pooling of `pool` (operator `index`, with its tensors `t`) fused into `conv`.
pub(crate) fn pool(conv: &Op, pool: &Op, index: u16, t: &Tensors) -> Result<Pool> {
    let g: Geometry = max_pool_2d::geometry(pool, index, t)?;
    let range = intersect(conv.range, pool.range).ok_or(crate::error::Error::PathUnavailable)?;
    Ok(Pool {
        kh: g.kh,
        kw: g.kw,
        oh: g.oh,
        ow: g.ow,
        range,
    })
}
