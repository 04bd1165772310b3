//! Export of a trained model to `.slim`: batch norm folded into the preceding layer, weights encoded as dense
//! f32 or dense int8, and for int8 the activation ranges calibrated on training images so that the runtime's
//! integer-only path works.

use crate::error::{Error, Result};
use crate::quantize::{quantize_multiplier, quantize_per_channel, QParams};
use crate::slim::{LayerQuant, LayerWeights, Paths, SlimFile, SlimLayer, WeightPayload};
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
    }
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
    let int8 = encoding == DenseEncoding::Int8;
    let ranges = if int8 {
        calibrate(&folded, model, calibration, samples)?
    } else {
        Vec::new()
    };
    let qin = input_qparams(model);
    let mut current = qin;
    let mut layers = Vec::new();
    for (li, layer) in folded.net.layers.iter().enumerate() {
        let weights = |name: &str, outputs: usize| -> Result<LayerWeights> {
            let w = &folded
                .params
                .get(&format!("{name}.weight"))
                .expect("folded")
                .data;
            let b = &folded
                .params
                .get(&format!("{name}.bias"))
                .expect("folded")
                .data;
            Ok(match encoding {
                DenseEncoding::F32 => LayerWeights {
                    bias: b.clone(),
                    scales: Vec::new(),
                    quant: None,
                    payload: WeightPayload::DenseF32(w.clone()),
                },
                DenseEncoding::Int8 => {
                    let (q, scales) = quantize_per_channel(w, outputs);
                    let (lo, hi) = ranges[li];
                    let qout = QParams::from_range(lo, hi);
                    LayerWeights {
                        bias: b.clone(),
                        quant: Some(layer_quant(b, &scales, true, current, qout)),
                        scales,
                        payload: WeightPayload::DenseI8(q),
                    }
                }
            })
        };
        let relu = |a: &Activation| *a == Activation::Relu;
        let slim = match layer {
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
                weights: weights(name, *outputs)?,
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
                weights: weights(name, *out_channels)?,
            },
            Layer::MaxPool { size } => SlimLayer::MaxPool {
                size: u16::try_from(*size)
                    .map_err(|_| Error::Unsupported(format!("pool {size}")))?,
            },
            Layer::Flatten => SlimLayer::Flatten,
        };
        if int8 && layer.name().is_some() {
            current = QParams::from_range(ranges[li].0, ranges[li].1);
        }
        layers.push(slim);
    }
    let s = folded.net.input;
    Ok(SlimFile {
        input: [s.channels as u32, s.height as u32, s.width as u32],
        classes: folded.net.classes as u32,
        normalization: (model.normalization.mean, model.normalization.std),
        input_table: int8.then(|| input_table(model, qin)),
        layers,
        paths: Paths {
            f32: true,
            integer: int8,
        },
    })
}
