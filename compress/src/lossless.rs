//! Lossless recoding of an integer model's weights: every dense int8 weight matrix becomes sparse shared weights
//! whose codebook is the matrix's own distinct non-zero int8 values (zeros dropped, positions and indices
//! entropy coded), where that is smaller; per-channel scales and requantization are kept. The integer path then
//! computes the very same sums (a zero weight adds nothing), so the outputs stay bit-identical while the file
//! shrinks.

use crate::error::Result;
use crate::slim::{CodebookValues, CoderChoice, SlimFile, SparseStreams, WeightPayload};

/// What recoding did to one weighted operator.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recoded {
    /// Operator index in the graph.
    pub op: usize,
    /// Weights in the matrix.
    pub weights: usize,
    /// Non-zero weights.
    pub kept: usize,
    /// Distinct non-zero values (codebook entries).
    pub codebook: usize,
    /// Bytes of the weights section before and after.
    pub bytes_before: usize,
    /// After (the smaller of dense and sparse).
    pub bytes_after: usize,
}

/// Recodes `file` in place, choosing per operator the smaller of its dense int8 form and sparse shared weights
/// coded as `coder` allows; returns what it did.
pub fn recode(file: &mut SlimFile, coder: CoderChoice) -> Result<Vec<Recoded>> {
    let mut out = Vec::new();
    let before = section_sizes(file)?;
    for (i, op) in file.ops.iter_mut().enumerate() {
        let Some(w) = op.weights.as_mut() else {
            continue;
        };
        let WeightPayload::DenseI8(values) = &w.payload else {
            continue;
        };
        let mut codebook: Vec<i8> = values.iter().copied().filter(|&v| v != 0).collect();
        codebook.sort_unstable();
        codebook.dedup();
        if codebook.is_empty() {
            continue;
        }
        let index_bits = (usize::BITS - (codebook.len() - 1).leading_zeros()).max(1) as u8;
        let kept: Vec<(usize, u32)> = values
            .iter()
            .enumerate()
            .filter(|(_, &v)| v != 0)
            .map(|(p, v)| (p, codebook.binary_search(v).unwrap_or(0) as u32))
            .collect();
        let (n, k) = (values.len(), kept.len());
        let sparse = SparseStreams::smallest(
            CodebookValues::I8(codebook.clone()),
            &kept,
            index_bits,
            coder,
        );
        let dense = std::mem::replace(&mut w.payload, WeightPayload::Sparse(sparse));
        out.push((i, n, k, codebook.len(), dense));
    }
    let after = section_sizes(file)?;
    let mut report = Vec::new();
    for (i, n, k, c, dense) in out {
        let (b, a) = (before[i], after[i]);
        if a >= b {
            // Sparse is no smaller for this operator: keep it dense.
            if let Some(w) = file.ops[i].weights.as_mut() {
                w.payload = dense;
            }
        }
        report.push(Recoded {
            op: i,
            weights: n,
            kept: k,
            codebook: c,
            bytes_before: b,
            bytes_after: a.min(b),
        });
    }
    Ok(report)
}

/// Bytes of each operator's weights section (0 without one).
fn section_sizes(file: &SlimFile) -> Result<Vec<usize>> {
    file.ops
        .iter()
        .enumerate()
        .map(|(i, _)| file.weights_section_bytes(i))
        .collect()
}

/// A `.tflite` file recoded losslessly: the `.slim` file and the sizes to judge it by.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Bytes of the `.tflite` file.
    pub tflite_bytes: usize,
    /// Bytes of `zstd -19` of the `.tflite` file.
    pub tflite_zstd19_bytes: usize,
    /// Bytes of the `.slim` file imported as it is (dense int8).
    pub imported_bytes: usize,
    /// Bytes of the recoded `.slim` file.
    pub bytes: usize,
    /// Per weighted operator.
    pub operators: Vec<Recoded>,
}

/// Imports an int8 `.tflite` file and recodes its weights losslessly: the `.slim` bytes and their account.
pub fn recode_tflite(tflite: &[u8], coder: CoderChoice) -> Result<(Vec<u8>, Summary)> {
    let mut file = crate::tflite::import(tflite)?;
    if !file.paths.integer {
        return Err(crate::Error::Tflite(
            "--lossless recodes int8 weights: this is a float32 model".into(),
        ));
    }
    let imported = file.to_bytes()?.len();
    let operators = recode(&mut file, coder)?;
    let bytes = file.to_bytes()?;
    let zstd19 = zstd::bulk::compress(tflite, 19)
        .map_err(|e| crate::Error::Unsupported(format!("zstd: {e}")))?
        .len();
    let summary = Summary {
        tflite_bytes: tflite.len(),
        tflite_zstd19_bytes: zstd19,
        imported_bytes: imported,
        bytes: bytes.len(),
        operators,
    };
    Ok((bytes, summary))
}
