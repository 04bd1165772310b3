//! Export of a trained model to `.slim`: batch norm folded into the preceding layer, weights encoded as dense
//! f32 or dense int8, and for int8 the activation ranges calibrated on training images so that the runtime's
//! integer-only path works.

use crate::error::{Error, Result};
use crate::quantize::{quantize_multiplier, quantize_per_channel, QParams};
use crate::slim::{
    CodebookValues, CoderChoice, LayerQuant, LayerWeights, Paths, SlimFile, SlimLayer,
    SparseStreams, WeightPayload,
};
use candle_core::Tensor;
use slimnet_models::{net, Activation, Dataset, Layer, Model, NetSpec, Params, Role};

/// How weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseEncoding {
    /// f32 weights and biases; the f32 path only.
    F32,
    /// int8 weights per output channel with int32 biases; both paths.
    Int8,
}

/// A network with batch norm folded away: the description and the weights the runtime sees.
#[derive(Debug, Clone)]
pub struct Folded {
    /// The architecture without batch norm.
    pub net: NetSpec,
    /// Weights and biases only.
    pub params: Params,
}

/// Folds every batch normalization into its layer: `w' = w·γ/√(σ²+ε)`, `b' = (b − μ)·γ/√(σ²+ε) + β`.
pub fn fold_batch_norm(model: &Model) -> Result<Folded> {
    let mut net = model.net.clone();
    for l in &mut net.layers {
        match l {
            Layer::Dense { batch_norm, .. } | Layer::Conv2d { batch_norm, .. } => {
                *batch_norm = false
            }
            _ => {}
        }
    }
    let mut params = Params::init(&net, 0);
    for p in &mut params.tensors {
        let layer_name = p
            .spec
            .name
            .rsplit_once('.')
            .map(|(l, _)| l.to_string())
            .unwrap_or_default();
        let src = model
            .params
            .get(&p.spec.name)
            .ok_or_else(|| Error::Unsupported(format!("missing tensor {}", p.spec.name)))?;
        p.data = src.data.clone();
        let bn = |s: &str| {
            model
                .params
                .get(&format!("{layer_name}.bn.{s}"))
                .map(|t| t.data.clone())
        };
        if let (Some(g), Some(b), Some(m), Some(v)) = (
            bn("weight"),
            bn("bias"),
            bn("running_mean"),
            bn("running_var"),
        ) {
            let factor: Vec<f32> = g
                .iter()
                .zip(&v)
                .map(|(g, v)| g / (v + net::BN_EPS as f32).sqrt())
                .collect();
            let per = p.data.len() / factor.len();
            match p.spec.role {
                Role::Weight => {
                    for (c, chunk) in p.data.chunks_mut(per).enumerate() {
                        chunk.iter_mut().for_each(|w| *w *= factor[c]);
                    }
                }
                Role::Bias => {
                    for (c, x) in p.data.iter_mut().enumerate() {
                        *x = (*x - m[c]) * factor[c] + b[c];
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Folded { net, params })
}

/// Per-layer output ranges (after the activation) over calibration samples.
pub fn calibrate(
    folded: &Folded,
    model: &Model,
    data: &Dataset,
    samples: usize,
) -> Result<Vec<(f32, f32)>> {
    let tensors = net::constants(&folded.params)?;
    let n = samples.min(data.count).max(1);
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); folded.net.layers.len()];
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(500) {
        let (x, _) = net::batch(&folded.net, data, &model.normalization, chunk)?;
        for (r, t) in ranges
            .iter_mut()
            .zip(net::trace(&folded.net, &tensors, &x)?)
        {
            let flat: Tensor = t.flatten_all()?;
            let lo = flat.min(0)?.to_scalar::<f32>()?;
            let hi = flat.max(0)?.to_scalar::<f32>()?;
            *r = (r.0.min(lo), r.1.max(hi));
        }
    }
    Ok(ranges)
}

/// Quantization parameters of the network's input: the range normalized pixels can take.
pub fn input_qparams(model: &Model) -> QParams {
    let (m, s) = (model.normalization.mean, model.normalization.std);
    QParams::from_range(-m / s, (1.0 - m) / s)
}

/// The pixel → int8 table of the integer path.
pub fn input_table(model: &Model, q: QParams) -> [i8; 256] {
    let (m, s) = (
        f64::from(model.normalization.mean),
        f64::from(model.normalization.std),
    );
    std::array::from_fn(|p| q.quantize((p as f64 / 255.0 - m) / s))
}

/// Integer-path parameters for a layer with per-channel weight scales `w_scales`, input `qin`, output `qout`.
pub fn layer_quant(
    bias: &[f32],
    w_scales: &[f32],
    per_channel: bool,
    qin: QParams,
    qout: QParams,
) -> LayerQuant {
    let (mut multipliers, mut shifts) = (Vec::new(), Vec::new());
    let channels = if per_channel { w_scales.len() } else { 1 };
    for &sw in w_scales.iter().take(channels) {
        let (m, s) = quantize_multiplier(qin.scale * f64::from(sw) / qout.scale);
        multipliers.push(m);
        shifts.push(s);
    }
    let bias = bias
        .iter()
        .enumerate()
        .map(|(c, b)| {
            let sw = f64::from(w_scales[if per_channel { c } else { 0 }]);
            (f64::from(*b) / (qin.scale * sw))
                .round()
                .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
        })
        .collect();
    LayerQuant {
        zp_in: qin.zero_point,
        zp_out: qout.zero_point,
        per_channel,
        multipliers,
        shifts,
        bias,
        input_scale: qin.scale as f32,
    }
}

/// How one weighted layer is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// Dense f32 (f32 path only).
    DenseF32,
    /// Dense int8, one scale per output channel.
    DenseI8,
    /// Sparse shared weights: kept positions, their cluster, and the shared values (stored as an f32 codebook on
    /// the f32 path, quantized to an int8 codebook when the file has the integer path).
    Shared {
        /// Row-major positions of the kept weights, ascending.
        positions: Vec<usize>,
        /// Cluster of each kept weight.
        assignment: Vec<u32>,
        /// The shared values.
        centroids: Vec<f32>,
        /// Bits per cluster index.
        index_bits: u8,
    },
}

/// What [`build`] produces: the file description and, per weighted layer, the weights the runtime will use
/// (dequantized), which a caller can evaluate or calibrate with.
#[derive(Debug, Clone)]
pub struct Built {
    /// The file.
    pub file: SlimFile,
    /// The network as the runtime's f32 path sees it.
    pub effective: Folded,
}

/// The int8 codebook of `centroids`: one scale, values rounded to −127..=127, equal values merged. Returns the
/// codebook, its scale and the old → new index map.
pub fn int8_codebook(centroids: &[f32]) -> (Vec<i8>, f32, Vec<u32>) {
    let max = centroids.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let q: Vec<i8> = centroids
        .iter()
        .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    let mut unique = q.clone();
    unique.sort_unstable();
    unique.dedup();
    let map = q
        .iter()
        .map(|v| unique.binary_search(v).unwrap_or(0) as u32)
        .collect();
    (unique, scale, map)
}

/// Builds the `.slim` description of a batch-norm-free `folded` network with each weighted layer stored as
/// `storage` says (in network order). With `integer`, codebooks become int8, dense layers must be int8, and the
/// activation ranges are calibrated on `samples` images of `calibration` with the weights as stored. Sparse
/// streams are coded as `coder` allows.
pub fn build(
    model: &Model,
    folded: &Folded,
    storage: &[Storage],
    integer: bool,
    coder: CoderChoice,
    calibration: &Dataset,
    samples: usize,
) -> Result<Built> {
    if folded.net.batch_norm() {
        return Err(Error::Unsupported("batch norm must be folded first".into()));
    }
    let weighted: Vec<(usize, &Layer)> = folded
        .net
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.name().is_some())
        .collect();
    if weighted.len() != storage.len() {
        return Err(Error::Unsupported(format!(
            "{} storage plans for {} weighted layers",
            storage.len(),
            weighted.len()
        )));
    }
    // Payloads first, with the weights they stand for.
    let mut effective = folded.clone();
    let mut stored: Vec<(WeightPayload, Vec<f32>)> = Vec::new();
    for ((_, layer), st) in weighted.iter().zip(storage) {
        let name = layer.name().expect("weighted");
        let outputs = layer.outputs().expect("weighted");
        let w = &mut effective
            .params
            .get_mut(&format!("{name}.weight"))
            .ok_or_else(|| Error::Unsupported(format!("missing tensor {name}.weight")))?
            .data;
        let (payload, scales) = match st {
            Storage::DenseF32 if integer => {
                return Err(Error::Unsupported(format!(
                    "{name}: f32 weights in a file with the integer path"
                )))
            }
            Storage::DenseF32 => (WeightPayload::DenseF32(w.clone()), Vec::new()),
            Storage::DenseI8 => {
                let (q, scales) = quantize_per_channel(w, outputs);
                let cols = w.len() / outputs.max(1);
                for (i, v) in w.iter_mut().enumerate() {
                    *v = f32::from(q[i]) * scales[i / cols.max(1)];
                }
                (WeightPayload::DenseI8(q), scales)
            }
            Storage::Shared {
                positions,
                assignment,
                centroids,
                index_bits,
            } => {
                if positions.len() != assignment.len() || positions.iter().any(|&p| p >= w.len()) {
                    return Err(Error::Unsupported(format!(
                        "{name}: bad shared-weight plan"
                    )));
                }
                let (codebook, values, scale, map) = if integer {
                    let (cb, scale, map) = int8_codebook(centroids);
                    let values: Vec<f32> = cb.iter().map(|&q| f32::from(q) * scale).collect();
                    (CodebookValues::I8(cb), values, scale, map)
                } else {
                    let map = (0..centroids.len() as u32).collect();
                    (
                        CodebookValues::F32(centroids.clone()),
                        centroids.clone(),
                        1.0,
                        map,
                    )
                };
                w.iter_mut().for_each(|v| *v = 0.0);
                let kept: Vec<(usize, u32)> = positions
                    .iter()
                    .zip(assignment)
                    .map(|(&p, &a)| {
                        let i = map[a as usize];
                        w[p] = values[i as usize];
                        (p, i)
                    })
                    .collect();
                (
                    WeightPayload::Sparse(SparseStreams::smallest(
                        codebook,
                        &kept,
                        *index_bits,
                        coder,
                    )),
                    vec![scale],
                )
            }
        };
        stored.push((payload, scales));
    }
    let ranges = if integer {
        calibrate(&effective, model, calibration, samples)?
    } else {
        Vec::new()
    };
    let qin = input_qparams(model);
    let mut current = qin;
    let mut stored = stored.into_iter();
    let mut layers = Vec::new();
    for (li, layer) in folded.net.layers.iter().enumerate() {
        let mut weights = |name: &str| -> Result<LayerWeights> {
            let (payload, scales) = stored.next().expect("one per weighted layer");
            let b = &effective
                .params
                .get(&format!("{name}.bias"))
                .ok_or_else(|| Error::Unsupported(format!("missing tensor {name}.bias")))?
                .data;
            let quant = integer.then(|| {
                let qout = QParams::from_range(ranges[li].0, ranges[li].1);
                let per_channel = matches!(payload, WeightPayload::DenseI8(_));
                let q = layer_quant(b, &scales, per_channel, current, qout);
                current = qout;
                q
            });
            Ok(LayerWeights {
                bias: b.clone(),
                scales,
                quant,
                payload,
            })
        };
        let relu = |a: &Activation| *a == Activation::Relu;
        layers.push(match layer {
            Layer::Dense {
                name,
                inputs,
                outputs,
                activation,
                ..
            } => SlimLayer::Dense {
                inputs: *inputs as u32,
                outputs: *outputs as u32,
                relu: relu(activation),
                weights: weights(name)?,
            },
            Layer::Conv2d {
                name,
                in_channels,
                out_channels,
                kernel,
                activation,
                ..
            } => SlimLayer::Conv2d {
                in_channels: *in_channels as u32,
                out_channels: *out_channels as u32,
                kernel: u16::try_from(*kernel)
                    .map_err(|_| Error::Unsupported(format!("kernel {kernel}")))?,
                relu: relu(activation),
                weights: weights(name)?,
            },
            Layer::MaxPool { size } => SlimLayer::MaxPool {
                size: u16::try_from(*size)
                    .map_err(|_| Error::Unsupported(format!("pool {size}")))?,
            },
            Layer::Flatten => SlimLayer::Flatten,
        });
    }
    let s = folded.net.input;
    Ok(Built {
        file: SlimFile {
            input: [s.channels as u32, s.height as u32, s.width as u32],
            classes: folded.net.classes as u32,
            normalization: (model.normalization.mean, model.normalization.std),
            input_table: integer.then(|| input_table(model, qin)),
            layers,
            paths: Paths { f32: true, integer },
        },
        effective,
    })
}

/// Builds the `.slim` description of `model` with dense weights. `calibration` supplies training images for the
/// activation ranges (int8 only).
pub fn export(
    model: &Model,
    encoding: DenseEncoding,
    calibration: &Dataset,
    samples: usize,
) -> Result<SlimFile> {
    let folded = fold_batch_norm(model)?;
    let weighted = folded
        .net
        .layers
        .iter()
        .filter(|l| l.name().is_some())
        .count();
    let (st, integer) = match encoding {
        DenseEncoding::F32 => (Storage::DenseF32, false),
        DenseEncoding::Int8 => (Storage::DenseI8, true),
    };
    let storage = vec![st; weighted];
    Ok(build(
        model,
        &folded,
        &storage,
        integer,
        CoderChoice::Packed,
        calibration,
        samples,
    )?
    .file)
}
