//! Magnitude pruning without retraining and a linear int8 codebook per layer, for fully connected networks: a
//! measuring aid for the runtime's sparse kernels (tests, `examples/sparse_demo.rs`, instruction counts) until the
//! compressor's real pipeline (pruning with retraining, k-means, centroid fine-tuning) lands. Its accuracy is not
//! representative of compressed models; its sparsity and stream shapes are.

use crate::error::{Error, Result};
use crate::export::{calibrate, fold_batch_norm, input_qparams, input_table, layer_quant};
use crate::quantize::QParams;
use crate::slim::{
    CodebookValues, LayerWeights, Paths, SlimFile, SlimLayer, SparseStreams, WeightPayload,
};
use slimnet_models::{Activation, Dataset, Layer, Model};

/// Keeps the largest `keep[l]` fraction of each dense layer's weights, shares them through `2^index_bits` int8
/// values spread linearly over the layer's range, codes positions as `position_bits`-bit relative offsets, and returns the `.slim` description with the dense weights it
/// stands for (one vector per dense layer). Activation ranges for the integer path come from the unpruned model.
pub fn prune_and_share(
    model: &Model,
    keep: &[f64],
    index_bits: u8,
    position_bits: u8,
    huffman: bool,
    integer: bool,
    calibration: &Dataset,
) -> Result<(SlimFile, Vec<Vec<f32>>)> {
    let folded = fold_batch_norm(model)?;
    let ranges = calibrate(&folded, model, calibration, 500)?;
    let mut current = input_qparams(model);
    let mut layers = Vec::new();
    let mut dense_equivalent = Vec::new();
    let levels = 1usize << index_bits;
    for (li, l) in folded.net.layers.iter().enumerate() {
        let Layer::Dense {
            name,
            inputs,
            outputs,
            activation,
            ..
        } = l
        else {
            match l {
                Layer::Flatten => layers.push(SlimLayer::Flatten),
                _ => {
                    return Err(Error::Unsupported(
                        "naive::prune_and_share handles fully connected networks".into(),
                    ))
                }
            }
            continue;
        };
        let keep_fraction = *keep
            .get(dense_equivalent.len())
            .ok_or_else(|| Error::Unsupported(format!("no keep fraction for {name}")))?;
        let w = &folded
            .params
            .get(&format!("{name}.weight"))
            .expect("folded")
            .data;
        let b = folded
            .params
            .get(&format!("{name}.bias"))
            .expect("folded")
            .data
            .clone();
        let mut mags: Vec<f32> = w.iter().map(|v| v.abs()).collect();
        mags.sort_by(|a, b| b.total_cmp(a));
        let kept_count = ((w.len() as f64 * keep_fraction) as usize).clamp(1, w.len());
        let threshold = mags[kept_count - 1];
        let scale = mags[0].max(f32::MIN_POSITIVE) / 127.0;
        let codebook: Vec<i8> = (0..levels)
            .map(|i| (-127.0 + 254.0 * i as f32 / (levels - 1).max(1) as f32).round() as i8)
            .collect();
        let mut kept = Vec::new();
        let mut dense = vec![0f32; w.len()];
        for (p, &v) in w.iter().enumerate() {
            if v.abs() >= threshold && kept.len() < kept_count {
                let i = codebook
                    .iter()
                    .enumerate()
                    .min_by(|a, b| {
                        (f32::from(*a.1) * scale - v)
                            .abs()
                            .total_cmp(&(f32::from(*b.1) * scale - v).abs())
                    })
                    .map_or(0, |(i, _)| i);
                kept.push((p, i as u32));
                dense[p] = f32::from(codebook[i]) * scale;
            }
        }
        dense_equivalent.push(dense);
        let qout = QParams::from_range(ranges[li].0, ranges[li].1);
        let quant = integer.then(|| layer_quant(&b, &[scale], false, current, qout));
        current = qout;
        layers.push(SlimLayer::Dense {
            inputs: *inputs as u32,
            outputs: *outputs as u32,
            relu: *activation == Activation::Relu,
            weights: LayerWeights {
                bias: b,
                scales: vec![scale],
                quant,
                payload: WeightPayload::Sparse(SparseStreams::from_positions(
                    CodebookValues::I8(codebook),
                    &kept,
                    index_bits,
                    position_bits,
                    huffman,
                )),
            },
        });
    }
    let s = folded.net.input;
    Ok((
        SlimFile {
            input: [s.channels as u32, s.height as u32, s.width as u32],
            classes: folded.net.classes as u32,
            normalization: (model.normalization.mean, model.normalization.std),
            input_table: integer.then(|| input_table(model, input_qparams(model))),
            layers,
            paths: Paths { f32: true, integer },
        },
        dense_equivalent,
    ))
}
