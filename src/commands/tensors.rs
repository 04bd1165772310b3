//! `slimnet run --input X.npy --output Y.npy`: a batch of raw tensors through a model, in and out as NumPy files
//! (the `npyz` crate reads and writes them).

use anyhow::{anyhow, bail, Result};
use npyz::WriterBuilder;
use slimnet_runtime::Model;
use std::path::Path;

/// Reads `path` as an `.npy` array: its shape and its values.
fn read_npy<T: npyz::Deserialize>(path: &Path, kind: &str) -> Result<(Vec<u64>, Vec<T>)> {
    let bytes = slimnet_models::input::read_limited(path, slimnet_models::input::DATA_LIMIT)?;
    let f = npyz::NpyFile::new(&bytes[..])
        .map_err(|e| anyhow!("{}: not an .npy file ({e})", path.display()))?;
    let shape = f.shape().to_vec();
    let values = f
        .into_vec::<T>()
        .map_err(|e| anyhow!("{}: expected {kind} values ({e})", path.display()))?;
    Ok((shape, values))
}

/// Writes `values` as an `.npy` array of `shape`, atomically.
fn write_npy<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[u64],
    values: &[T],
) -> Result<()> {
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut buf)
        .begin_nd()?;
    w.extend(values.iter().copied())?;
    w.finish()?;
    slimnet_models::atomic::write_atomic(path, &buf)?;
    Ok(())
}

/// The batch size of `shape` for a model taking `input_len` values per sample: a leading batch dimension before
/// the model's own shape (or any shape whose trailing dimensions hold `input_len` values).
fn batch(path: &Path, shape: &[u64], input_len: usize, dims: &[u16]) -> Result<usize> {
    let per_sample: u64 = shape.iter().skip(1).product();
    match shape.first() {
        Some(&n) if per_sample == input_len as u64 => Ok(n as usize),
        _ => bail!(
            "{}: shape {shape:?}; the model takes [N, {}]",
            path.display(),
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs every sample of `input` and writes the outputs to `output`.
pub fn run_batch(
    model: &Path,
    m: &Model,
    input: &Path,
    output: &Path,
    integer: bool,
) -> Result<()> {
    super::check_output(output, &[model, input])?;
    let fail = |e| anyhow!("{}: {e}", model.display());
    let (n_in, n_out) = (m.input_len(), m.output_len());
    let mut out_shape = vec![0u64];
    out_shape.extend(m.output_shape().dims().iter().map(|&d| u64::from(d)));
    if integer {
        let (shape, x) = read_npy::<i8>(input, "int8")?;
        let n = batch(input, &shape, n_in, m.input_shape().dims())?;
        let mut arena = vec![0u8; m.arena_len_int8()];
        let mut y = vec![0i8; n * n_out];
        for (xs, ys) in x
            .chunks_exact(n_in.max(1))
            .zip(y.chunks_exact_mut(n_out.max(1)))
        {
            m.run_int8(xs, &mut arena, ys).map_err(fail)?;
        }
        out_shape[0] = n as u64;
        write_npy(output, &out_shape, &y)?;
        eprintln!(
            "{}: {n} outputs (int8, integer-only path)",
            output.display()
        );
    } else {
        let (shape, x) = read_npy::<f32>(input, "float32")?;
        let n = batch(input, &shape, n_in, m.input_shape().dims())?;
        let mut arena = vec![0u8; m.arena_len()];
        let mut y = vec![0f32; n * n_out];
        for (xs, ys) in x
            .chunks_exact(n_in.max(1))
            .zip(y.chunks_exact_mut(n_out.max(1)))
        {
            m.run_f32(xs, &mut arena, ys).map_err(fail)?;
        }
        out_shape[0] = n as u64;
        write_npy(output, &out_shape, &y)?;
        eprintln!("{}: {n} outputs (f32 path)", output.display());
    }
    Ok(())
}
