//! Export of a trained model to `.slim`: batch norm folded into the preceding layer, weights encoded as dense
//! f32 or dense int8, and for int8 the activation ranges calibrated on training images so that the runtime's
//! integer-only path works.

use crate::error::{Error, Result};
use crate::quantize::{quantize_multiplier, quantize_per_channel, QParams};
use crate::slim::{
    CodebookValues, CoderChoice, LayerQuant, LayerWeights, OpParams, OpSpec, Paths, SlimFile,
    SparseStreams, TensorSpec, WeightPayload, Window,
};
use candle_core::Tensor;
use slimnet_models::{net, Activation, Dataset, Layer, Model, NetSpec, Params, Role};
use slimnet_runtime::format::{Activation as Act, OpKind, NO_TENSOR};

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
        per_channel,
        multipliers,
        shifts,
        bias,
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
    // Payloads first, with the weights they stand for (kept in candle's layout), stored in the runtime's.
    let mut effective = folded.clone();
    let mut stored: Vec<(WeightPayload, Vec<f32>)> = Vec::new();
    let inputs = layer_inputs(&folded.net);
    for ((li, layer), st) in weighted.iter().zip(storage) {
        let nhwc = nhwc_map(layer, inputs[*li]);
        let map = &nhwc;
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
            Storage::DenseF32 => (WeightPayload::DenseF32(permute(w, map)), Vec::new()),
            Storage::DenseI8 => {
                let (q, scales) = quantize_per_channel(w, outputs);
                let cols = w.len() / outputs.max(1);
                for (i, v) in w.iter_mut().enumerate() {
                    *v = f32::from(q[i]) * scales[i / cols.max(1)];
                }
                (WeightPayload::DenseI8(permute(&q, map)), scales)
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
                let mut kept: Vec<(usize, u32)> = positions
                    .iter()
                    .zip(assignment)
                    .map(|(&p, &a)| {
                        let i = map[a as usize];
                        w[p] = values[i as usize];
                        (p, i)
                    })
                    .collect();
                if let Some(layout) = &nhwc {
                    kept.iter_mut().for_each(|k| k.0 = layout[k.0]);
                    kept.sort_unstable();
                }
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
    let mut g = Graph::new(&folded.net, qin, integer);
    let mut stored = stored.into_iter();
    for (li, layer) in folded.net.layers.iter().enumerate() {
        let qout = integer.then(|| QParams::from_range(ranges[li].0, ranges[li].1));
        match layer {
            Layer::Dense { name, .. } | Layer::Conv2d { name, .. } => {
                let (payload, scales) = stored.next().expect("one per weighted layer");
                let b = &effective
                    .params
                    .get(&format!("{name}.bias"))
                    .ok_or_else(|| Error::Unsupported(format!("missing tensor {name}.bias")))?
                    .data;
                let per_channel = matches!(payload, WeightPayload::DenseI8(_));
                let quant = qout.map(|q| layer_quant(b, &scales, per_channel, g.q, q));
                let weights = LayerWeights {
                    bias: b.clone(),
                    scales,
                    quant,
                    payload,
                };
                g.weighted(layer, weights, qout)?;
            }
            Layer::MaxPool { size } => {
                let size =
                    u8::try_from(*size).map_err(|_| Error::Unsupported(format!("pool {size}")))?;
                g.pool(size);
            }
            // FULLY_CONNECTED reads any shape in row-major order: a flatten is free.
            Layer::Flatten => {}
        }
    }
    Ok(Built {
        file: SlimFile {
            input: 0,
            output: (g.tensors.len() - 1) as u16,
            tensors: g.tensors,
            ops: g.ops,
            normalization: (model.normalization.mean, model.normalization.std),
            input_table: integer.then(|| input_table(model, qin)),
            paths: Paths { f32: true, integer },
        },
        effective,
    })
}

/// The runtime graph as [`build`] lays it out, one candle layer after another (NHWC tensors).
struct Graph {
    tensors: Vec<TensorSpec>,
    ops: Vec<OpSpec>,
    /// The current tensor's shape (NHWC) and quantization.
    shape: Vec<u16>,
    q: QParams,
    integer: bool,
}

impl Graph {
    fn new(net: &NetSpec, q: QParams, integer: bool) -> Graph {
        let s = net.input;
        let mut g = Graph {
            tensors: Vec::new(),
            ops: Vec::new(),
            shape: vec![s.height as u16, s.width as u16, s.channels as u16],
            q,
            integer,
        };
        g.push_tensor();
        g
    }

    fn push_tensor(&mut self) -> u16 {
        self.tensors.push(TensorSpec {
            shape: self.shape.clone(),
            zero_point: if self.integer {
                self.q.zero_point as i8
            } else {
                0
            },
            scale: if self.integer {
                self.q.scale as f32
            } else {
                0.0
            },
        });
        (self.tensors.len() - 1) as u16
    }

    fn current(&self) -> u16 {
        (self.tensors.len() - 1) as u16
    }

    /// A dense or convolution layer: its output tensor and its operator.
    fn weighted(
        &mut self,
        layer: &Layer,
        weights: LayerWeights,
        qout: Option<QParams>,
    ) -> Result<()> {
        let input = self.current();
        let (kind, params, activation) = match layer {
            Layer::Dense {
                outputs,
                activation,
                ..
            } => {
                self.shape = vec![*outputs as u16];
                (OpKind::FullyConnected, OpParams::None, *activation)
            }
            Layer::Conv2d {
                out_channels,
                kernel,
                activation,
                ..
            } => {
                let k = u8::try_from(*kernel)
                    .map_err(|_| Error::Unsupported(format!("kernel {kernel}")))?;
                let (h, w) = (
                    self.shape[0] - u16::from(k) + 1,
                    self.shape[1] - u16::from(k) + 1,
                );
                self.shape = vec![h, w, *out_channels as u16];
                (
                    OpKind::Conv2d,
                    OpParams::Window(Window::valid(k)),
                    *activation,
                )
            }
            _ => unreachable!("weighted layers only"),
        };
        if let Some(q) = qout {
            self.q = q;
        }
        let output = self.push_tensor();
        let relu = activation == Activation::Relu;
        let lo = if relu && self.integer {
            self.q.zero_point.clamp(-128, 127) as i8
        } else {
            -128
        };
        self.ops.push(OpSpec {
            kind,
            activation: if relu { Act::Relu } else { Act::None },
            range: (lo, 127),
            inputs: [input, NO_TENSOR],
            output,
            params,
            weights: Some(weights),
        });
        Ok(())
    }

    /// A max-pooling layer (window = stride, no padding, remainder dropped): same quantization as its input.
    fn pool(&mut self, size: u8) {
        let input = self.current();
        let s = u16::from(size);
        self.shape = vec![self.shape[0] / s, self.shape[1] / s, self.shape[2]];
        let output = self.push_tensor();
        self.ops.push(OpSpec::unary(
            OpKind::MaxPool2d,
            input,
            output,
            OpParams::Window(Window::pool(size)),
        ));
    }
}

/// The candle-side input shape (channels, height, width) of every layer.
fn layer_inputs(net: &NetSpec) -> Vec<(usize, usize, usize)> {
    let s = net.input;
    let mut shape = (s.channels, s.height, s.width);
    let mut out = Vec::new();
    for l in &net.layers {
        out.push(shape);
        shape = match *l {
            Layer::Dense { outputs, .. } => (outputs, 1, 1),
            Layer::Conv2d {
                out_channels,
                kernel,
                ..
            } => (out_channels, shape.1 + 1 - kernel, shape.2 + 1 - kernel),
            Layer::MaxPool { size } => (shape.0, shape.1 / size, shape.2 / size),
            // The flattened vector keeps the order of its elements.
            Layer::Flatten => shape,
        };
    }
    out
}

/// Where each weight of a candle (NCHW) layer goes in the runtime's NHWC layout, `map[old] = new`, or `None`
/// where both orders agree: convolution weights go from OIHW to OHWI, and a dense layer reading a
/// multi-channel image reads it in HWC order instead of CHW.
fn nhwc_map(layer: &Layer, (c, h, w): (usize, usize, usize)) -> Option<Vec<usize>> {
    match *layer {
        Layer::Conv2d {
            out_channels,
            in_channels,
            kernel: k,
            ..
        } if in_channels > 1 && k > 1 => {
            let mut map = vec![0; out_channels * in_channels * k * k];
            for o in 0..out_channels {
                for ci in 0..in_channels {
                    for ky in 0..k {
                        for kx in 0..k {
                            let old = ((o * in_channels + ci) * k + ky) * k + kx;
                            map[old] = ((o * k + ky) * k + kx) * in_channels + ci;
                        }
                    }
                }
            }
            Some(map)
        }
        Layer::Dense {
            inputs, outputs, ..
        } if c > 1 && h * w > 1 && inputs == c * h * w => {
            let mut map = vec![0; outputs * inputs];
            for o in 0..outputs {
                for ci in 0..c {
                    for p in 0..h * w {
                        map[o * inputs + ci * h * w + p] = o * inputs + p * c + ci;
                    }
                }
            }
            Some(map)
        }
        _ => None,
    }
}

/// `values` rearranged by `map` (`out[map[i]] = values[i]`), or as they are.
fn permute<T: Copy + Default>(values: &[T], map: &Option<Vec<usize>>) -> Vec<T> {
    match map {
        Some(m) => {
            let mut out = vec![T::default(); values.len()];
            for (i, &v) in values.iter().enumerate() {
                out[m[i]] = v;
            }
            out
        }
        None => values.to_vec(),
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
