//! The weights of a windowed operator as "taps" grouped by output channel, shared by the f32 and integer
//! kernels: every encoding (dense or sparse, bit-packed, Huffman or zstd) is turned into chunks of (column, value)
//! pairs on the stack, so the kernels' inner loops see plain arrays. Generic over the value type, so it holds no
//! float arithmetic of its own.

use crate::error::{Error, Result};
use crate::stream::Sink;
use crate::weights::{Payload, Scratch, Weights};

/// Taps handed to a kernel at once.
pub(crate) const TAPS: usize = 64;

/// Hands each kept weight to `f` as (linear position, codebook index).
struct Rows<F> {
    row: usize,
    n: usize,
    f: F,
}

impl<F: FnMut(usize, usize)> Sink for Rows<F> {
    #[inline(always)]
    fn weights(&mut self, cols: &[u32], indices: &[u8]) {
        for (&col, &index) in cols.iter().zip(indices) {
            (self.f)(self.row * self.n + col as usize, usize::from(index));
        }
    }
    #[inline(always)]
    fn end_row(&mut self, row: usize) {
        self.row = row + 1;
    }
}

/// Calls `f(o, taps)` with the weights of output channel `o` as (column, value), in chunks of up to [`TAPS`], in
/// channel order (channels without a kept weight are skipped). `dense(j)` gives the value of dense weight `j` (`None`: this path cannot use the
/// encoding), `shared(i)` the value of codebook entry `i`.
pub(crate) fn row_taps<V: Copy + Default>(
    w: &Weights,
    op: u16,
    scratch: &mut Scratch,
    dense: impl Fn(usize) -> Option<V>,
    shared: impl Fn(usize) -> V,
    mut f: impl FnMut(usize, &[(u32, V)]),
) -> Result<()> {
    let n = w.fan_in;
    let mut buf = [(0u32, V::default()); TAPS];
    let (mut len, mut row) = (0usize, 0usize);
    #[inline(always)]
    fn split(p: usize, n: usize) -> (usize, usize) {
        (p / n, p % n)
    }
    let mut push = |p: usize, v: V| {
        let (o, t) = split(p, n);
        if (o != row || len == TAPS) && len > 0 {
            f(row, buf.get(..len).unwrap_or(&[]));
            len = 0;
        }
        row = o;
        if let Some(slot) = buf.get_mut(len) {
            *slot = (t as u32, v);
            len += 1;
        }
    };
    match w.payload {
        Payload::DenseF32(_) | Payload::DenseI8(_) => {
            for j in 0..w.outputs * n {
                match dense(j) {
                    Some(v) => push(j, v),
                    None => return Err(Error::PathUnavailable),
                }
            }
        }
        Payload::Sparse(s) => {
            let mut sink = Rows {
                row: 0,
                n,
                f: |p: usize, i: usize| push(p, shared(i)),
            };
            // Validated at load: unchecked.
            s.walk::<false, _>(n, w.outputs, op, scratch, &mut sink)?;
        }
    }
    if len > 0 {
        f(row, buf.get(..len).unwrap_or(&[]));
    }
    Ok(())
}
