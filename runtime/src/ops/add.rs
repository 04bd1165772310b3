//! ADD: two inputs of one shape, element by element. The integer path is TFLite's: both inputs (less their zero
//! points) are shifted left by `left_shift`, rescaled to a common scale by their own multipliers, added, and
//! requantized to the output; the multipliers are computed by the writer (on the host, from the three scales),
//! so the device needs no floating point.

use super::{Io, Op, Tensors};
use crate::bytes::Reader;
use crate::error::{Error, Result, Section};
use crate::format::FLAG_INT;
use crate::quant::{Channel, Output};

/// The integer path's rescaling, as the record stores it (seven i32: multiplier and shift of input 1, of input 2,
/// of the output, then the left shift).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Params {
    pub input1: (i32, i32),
    pub input2: (i32, i32),
    pub output: (i32, i32),
    pub left_shift: i32,
}

impl Params {
    /// Reads the 28 bytes.
    pub fn read(r: &mut Reader) -> Result<Params> {
        Ok(Params {
            input1: (r.i32()?, r.i32()?),
            input2: (r.i32()?, r.i32()?),
            output: (r.i32()?, r.i32()?),
            left_shift: r.i32()?,
        })
    }
}

fn params(op: &Op) -> Params {
    match op.params {
        super::Params::Add(p) => p,
        _ => Params::default(),
    }
}

/// Both inputs and the output have one shape; on the integer path the multipliers are valid and the left shift
/// is at most 20 (so that a shifted input fits in 29 bits).
#[inline(never)]
pub(crate) fn prepare(op: &Op, index: u16, t: &Tensors, flags: u16) -> Result<()> {
    for s in [t.input2.shape, t.output.shape] {
        if s != t.input.shape {
            return Err(super::mismatch(index, t.input.shape.len(), s.len()));
        }
    }
    if flags & FLAG_INT != 0 {
        let p = params(op);
        let section = Section::Operator(index);
        for (m, s) in [p.input1, p.input2, p.output] {
            crate::quant::check_multiplier(section, m, s)?;
        }
        if !(0..=20).contains(&p.left_shift) {
            return Err(Error::InvalidValue {
                section,
                field: "left shift",
                value: p.left_shift as u64,
            });
        }
    }
    Ok(())
}

/// The integer kernel (TFLite's `reference_integer_ops::Add`). An int8 input has 256 values, so each input's
/// shift-and-rescale is tabulated once (two 1 KB tables on the stack, 512 requantizations), leaving one
/// requantization per element instead of three (measured on the Cortex-M3: the ResNet fixture's adds 399,568 →
/// 167,572 instructions). Tensors of fewer than ~250 elements pay more for the tables than they save, a few
/// thousand instructions at most; one path keeps the code small.
#[inline(never)]
pub(crate) fn run_int8(op: &Op, t: &Tensors, io: &mut Io) -> Result<()> {
    let p = params(op);
    let (z1, z2) = (
        i32::from(t.input.zero_point),
        i32::from(t.input2.zero_point),
    );
    let zo = i32::from(t.output.zero_point);
    let (lo, hi) = super::clamp_range(op);
    let rq = crate::quant::requantize;
    let table = |z: i32, (m, s): (i32, i32)| -> [i32; 256] {
        core::array::from_fn(|v| rq((i32::from(v as u8 as i8) - z) << p.left_shift, m, s))
    };
    let (t1, t2) = (table(z1, p.input1), table(z2, p.input2));
    // The output's requantization decoded once (`quant::Channel`: the same value as `requantize`, zero point and
    // clamp; ResNet's two ADDs on the Cortex-M4 took 153,752 instructions with the general path per element, now
    // 99,368 with the tables).
    let (channel, out) = (Channel::new(0, p.output), Output::new(zo, (lo, hi)));
    for ((y, &a), &b) in io.y.iter_mut().zip(io.x).zip(io.x2) {
        let sum = t1[usize::from(a)].wrapping_add(t2[usize::from(b)]);
        *y = channel.output(sum, &out);
    }
    Ok(())
}

/// The f32 kernel.
#[cfg(not(feature = "integer-only"))]
#[inline(never)]
pub(crate) fn run_f32(op: &Op, io: &mut Io) -> Result<()> {
    let ys = io.y.chunks_exact_mut(4);
    for ((y, a), b) in ys.zip(io.x.chunks_exact(4)).zip(io.x2.chunks_exact(4)) {
        let v = super::activate(op.activation, super::get(a, 0) + super::get(b, 0));
        y.copy_from_slice(&v.to_le_bytes());
    }
    Ok(())
}
