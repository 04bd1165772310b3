//! RESHAPE (and flatten): the same elements in another shape. Row-major NHWC data needs no movement, so the
//! arena planner gives the output the input's memory and the operator runs nothing.

use super::Tensors;
use crate::error::Result;

/// The element counts must agree.
#[inline(never)]
pub(crate) fn prepare(index: u16, t: &Tensors) -> Result<()> {
    let (a, b) = (t.input.shape.len(), t.output.shape.len());
    if a != b {
        return Err(super::mismatch(index, a, b));
    }
    Ok(())
}
