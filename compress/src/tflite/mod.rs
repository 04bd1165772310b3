//! TFLite import: a `.tflite` flatbuffer (as the TFLite converter writes it from Keras) becomes a [`SlimFile`]
//! that the runtime runs exactly. Full-integer int8 models (int8 input and output, per-channel weights) become
//! integer-path files whose requantization parameters are computed here as TFLite Micro computes them at
//! `Prepare` (so that the outputs are TFLM's byte for byte); float32 models become f32-path files. The graph is
//! kept as it is, operator for operator, NHWC; only DEPTHWISE_CONV_2D filters are transposed (TFLite stores them
//! `[1, kh, kw, channels]`, the format one row per channel). Anything outside the runtime's operator set, or an
//! option it does not implement, is refused with its name and index, never guessed.
//!
//! The flatbuffer is read with `planus` through code generated from TFLite's `schema.fbs` (`schema.rs`, see
//! `schema.fbs` here for how it was made).

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, missing_docs, dead_code, unused_imports, non_camel_case_types)]
mod schema;

use crate::error::{Error, Result};
use crate::quantize::quantize_multiplier;
use crate::slim::{
    AddParams, LayerQuant, LayerWeights, OpParams, OpSpec, Paths, SlimFile, SoftmaxParams,
    TensorSpec, WeightPayload, Window,
};
use planus::ReadAsRoot;
use schema::tflite as tfl;
use slimnet_runtime::format::{Activation, OpKind, NO_TENSOR};
use std::collections::HashMap;

/// The identifier TFLite files carry at bytes 4..8.
pub const FILE_IDENTIFIER: &[u8; 4] = b"TFL3";

/// Whether `bytes` look like a TFLite flatbuffer (by its file identifier).
pub fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(FILE_IDENTIFIER)
}

fn bad(what: impl Into<String>) -> Error {
    Error::Tflite(what.into())
}

fn corrupt(e: planus::Error) -> Error {
    bad(format!("not a readable TFLite flatbuffer ({e})"))
}

/// One TFLite tensor, read.
struct Tensor<'a> {
    name: String,
    dtype: tfl::TensorType,
    shape: Vec<i32>,
    data: Option<&'a [u8]>,
    scales: Vec<f32>,
    zero_points: Vec<i64>,
    quantized_dimension: i32,
}

impl Tensor<'_> {
    fn label(&self, index: usize) -> String {
        format!("tensor {index} ({})", self.name)
    }
}

/// Which numeric path the model takes: its input's type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Numeric {
    Int8,
    F32,
}

impl Numeric {
    fn activation_type(self) -> tfl::TensorType {
        match self {
            Numeric::Int8 => tfl::TensorType::Int8,
            Numeric::F32 => tfl::TensorType::Float32,
        }
    }
}

/// Reads a `.tflite` file and returns the `.slim` description of the same graph.
pub fn import(bytes: &[u8]) -> Result<SlimFile> {
    if !is_tflite(bytes) {
        return Err(bad("not a TFLite file (no TFL3 identifier)"));
    }
    let model = tfl::ModelRef::read_as_root(bytes).map_err(corrupt)?;
    let subgraphs = model
        .subgraphs()
        .map_err(corrupt)?
        .ok_or_else(|| bad("no subgraph"))?;
    if subgraphs.len() != 1 {
        return Err(bad(format!(
            "{} subgraphs (one is supported)",
            subgraphs.len()
        )));
    }
    let graph = subgraphs
        .get(0)
        .ok_or_else(|| bad("no subgraph"))?
        .map_err(corrupt)?;
    let buffers: Vec<Option<&[u8]>> = match model.buffers().map_err(corrupt)? {
        Some(v) => v
            .iter()
            .map(|b| b.and_then(|b| b.data()).map_err(corrupt))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let tensors = read_tensors(&graph, &buffers)?;
    let codes = read_codes(&model)?;
    let mut b = Builder::new(&tensors, &graph)?;
    let ops = graph
        .operators()
        .map_err(corrupt)?
        .ok_or_else(|| bad("no operators"))?;
    for (i, op) in ops.iter().enumerate() {
        let op = op.map_err(corrupt)?;
        let index = op.opcode_index().map_err(corrupt)? as usize;
        let code = *codes
            .get(index)
            .ok_or_else(|| bad(format!("operator {i}: opcode index {index} out of range")))?;
        b.operator(i, code, &op)?;
    }
    b.finish(&graph)
}

fn read_tensors<'a>(
    graph: &tfl::SubGraphRef<'a>,
    buffers: &[Option<&'a [u8]>],
) -> Result<Vec<Tensor<'a>>> {
    let Some(ts) = graph.tensors().map_err(corrupt)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for t in ts.iter() {
        let t = t.map_err(corrupt)?;
        let q = t.quantization().map_err(corrupt)?;
        let (scales, zero_points, quantized_dimension) = match q {
            Some(q) => (
                q.scale()
                    .map_err(corrupt)?
                    .map(|v| v.iter().collect())
                    .unwrap_or_default(),
                q.zero_point()
                    .map_err(corrupt)?
                    .map(|v| v.iter().collect())
                    .unwrap_or_default(),
                q.quantized_dimension().map_err(corrupt)?,
            ),
            None => (Vec::new(), Vec::new(), 0),
        };
        let buffer = t.buffer().map_err(corrupt)? as usize;
        out.push(Tensor {
            name: t.name().map_err(corrupt)?.unwrap_or("").to_string(),
            dtype: t.type_().map_err(corrupt)?,
            shape: t
                .shape()
                .map_err(corrupt)?
                .map(|v| v.iter().collect())
                .unwrap_or_default(),
            data: buffers
                .get(buffer)
                .copied()
                .flatten()
                .filter(|d| !d.is_empty()),
            scales,
            zero_points,
            quantized_dimension,
        });
    }
    Ok(out)
}

/// Each operator code's builtin operator (TFLite's `GetBuiltinCode`: the larger of the two fields).
fn read_codes(model: &tfl::ModelRef) -> Result<Vec<tfl::BuiltinOperator>> {
    let Some(codes) = model.operator_codes().map_err(corrupt)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, c) in codes.iter().enumerate() {
        let c = c.map_err(corrupt)?;
        let deprecated = i32::from(c.deprecated_builtin_code().map_err(corrupt)?);
        let code = c.builtin_code().map_err(corrupt)?;
        let code = if (code as i32) < deprecated {
            tfl::BuiltinOperator::try_from(deprecated)
                .map_err(|_| bad(format!("operator code {i}: unknown builtin {deprecated}")))?
        } else {
            code
        };
        out.push(code);
    }
    Ok(out)
}

/// The `.slim` graph under construction.
struct Builder<'t, 'a> {
    tensors: &'t [Tensor<'a>],
    numeric: Numeric,
    /// TFLite tensor index → `.slim` tensor id, for activations.
    ids: HashMap<usize, u16>,
    out_tensors: Vec<TensorSpec>,
    ops: Vec<OpSpec>,
}

/// A TFLite index as usize (negative: absent).
fn idx(v: i32) -> Option<usize> {
    usize::try_from(v).ok()
}

impl<'t, 'a> Builder<'t, 'a> {
    fn new(tensors: &'t [Tensor<'a>], graph: &tfl::SubGraphRef) -> Result<Builder<'t, 'a>> {
        let inputs: Vec<i32> = graph
            .inputs()
            .map_err(corrupt)?
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let outputs: Vec<i32> = graph
            .outputs()
            .map_err(corrupt)?
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        if inputs.len() != 1 || outputs.len() != 1 {
            return Err(bad(format!(
                "{} inputs and {} outputs (one of each is supported)",
                inputs.len(),
                outputs.len()
            )));
        }
        let input = idx(inputs[0])
            .filter(|&i| i < tensors.len())
            .ok_or_else(|| bad("input tensor out of range"))?;
        let numeric = match tensors[input].dtype {
            tfl::TensorType::Int8 => Numeric::Int8,
            tfl::TensorType::Float32 => Numeric::F32,
            t => {
                return Err(bad(format!(
                    "{}: input type {t:?} (int8 or float32 models are supported)",
                    tensors[input].label(input)
                )))
            }
        };
        let mut b = Builder {
            tensors,
            numeric,
            ids: HashMap::new(),
            out_tensors: Vec::new(),
            ops: Vec::new(),
        };
        b.activation(input)?;
        Ok(b)
    }

    fn tensor(&self, op: usize, i: Option<usize>) -> Result<(usize, &'t Tensor<'a>)> {
        let i = i.ok_or_else(|| bad(format!("operator {op}: a required input is missing")))?;
        let t = self
            .tensors
            .get(i)
            .ok_or_else(|| bad(format!("operator {op}: tensor {i} out of range")))?;
        Ok((i, t))
    }

    /// Registers TFLite tensor `i` as an activation tensor of the graph and returns its id.
    fn activation(&mut self, i: usize) -> Result<u16> {
        let t = &self.tensors[i];
        if t.dtype != self.numeric.activation_type() {
            return Err(bad(format!(
                "{}: type {:?} in a {:?} model (mixed types, e.g. QUANTIZE/DEQUANTIZE, are not supported)",
                t.label(i),
                t.dtype,
                self.numeric.activation_type()
            )));
        }
        let mut dims = t.shape.clone();
        if dims.len() >= 2 {
            if dims[0] != 1 {
                return Err(bad(format!(
                    "{}: batch of {} (batch 1 is supported)",
                    t.label(i),
                    dims[0]
                )));
            }
            dims.remove(0);
        }
        let shape = dims
            .iter()
            .map(|&d| u16::try_from(d).ok().filter(|&d| d > 0))
            .collect::<Option<Vec<u16>>>()
            .filter(|s| !s.is_empty() && s.len() <= 4)
            .ok_or_else(|| bad(format!("{}: shape {:?} not supported", t.label(i), t.shape)))?;
        let (zero_point, scale) = match self.numeric {
            Numeric::Int8 => {
                if t.scales.len() != 1 || t.zero_points.len() != 1 {
                    return Err(bad(format!("{}: not quantized per tensor", t.label(i))));
                }
                let zp = i8::try_from(t.zero_points[0])
                    .map_err(|_| bad(format!("{}: zero point {}", t.label(i), t.zero_points[0])))?;
                (zp, t.scales[0])
            }
            Numeric::F32 => (0, 0.0),
        };
        self.out_tensors.push(TensorSpec {
            shape,
            zero_point,
            scale,
        });
        let id = (self.out_tensors.len() - 1) as u16;
        self.ids.insert(i, id);
        Ok(id)
    }

    /// The id of an activation tensor already computed.
    fn input(&self, op: usize, i: Option<usize>) -> Result<u16> {
        let (i, t) = self.tensor(op, i)?;
        if t.data.is_some() {
            return Err(bad(format!(
                "operator {op}: {} is a constant where an activation is expected",
                t.label(i)
            )));
        }
        self.ids.get(&i).copied().ok_or_else(|| {
            bad(format!(
                "operator {op}: {} is read before it is computed",
                t.label(i)
            ))
        })
    }

    fn spec(&self, id: u16) -> &TensorSpec {
        &self.out_tensors[usize::from(id)]
    }

    fn operator(
        &mut self,
        i: usize,
        code: tfl::BuiltinOperator,
        op: &tfl::OperatorRef,
    ) -> Result<()> {
        let inputs: Vec<Option<usize>> = op
            .inputs()
            .map_err(corrupt)?
            .map(|v| v.iter().map(idx).collect())
            .unwrap_or_default();
        let outputs: Vec<Option<usize>> = op
            .outputs()
            .map_err(corrupt)?
            .map(|v| v.iter().map(idx).collect())
            .unwrap_or_default();
        let kind = op_kind(i, code)?;
        if outputs.len() != 1 {
            return Err(bad(format!(
                "operator {i} ({}): {} outputs",
                kind.name(),
                outputs.len()
            )));
        }
        let x = self.input(i, inputs.first().copied().flatten())?;
        let (out_index, _) = self.tensor(i, outputs[0])?;
        let y = self.activation(out_index)?;
        let options = op.builtin_options().map_err(corrupt)?;
        let spec = match kind {
            OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::FullyConnected => {
                self.weighted(i, kind, &inputs, (x, y), options)?
            }
            OpKind::Add => self.add(i, &inputs, (x, y), options)?,
            OpKind::MaxPool2d | OpKind::AveragePool2d => self.pool(i, kind, (x, y), options)?,
            OpKind::Reshape => OpSpec::unary(kind, x, y, OpParams::None),
            OpKind::Softmax => {
                let beta = match options {
                    Some(tfl::BuiltinOptionsRef::SoftmaxOptions(o)) => o.beta().map_err(corrupt)?,
                    _ => 1.0,
                };
                let params = self.softmax_params(i, x, y, beta)?;
                OpSpec::unary(kind, x, y, OpParams::Softmax(params))
            }
        };
        self.ops.push(spec);
        Ok(())
    }

    /// ADD: the second input, the fused activation, TFLite's rescaling.
    fn add(
        &self,
        i: usize,
        inputs: &[Option<usize>],
        (x, y): (u16, u16),
        options: Option<tfl::BuiltinOptionsRef>,
    ) -> Result<OpSpec> {
        let x2 = self.input(i, inputs.get(1).copied().flatten())?;
        let act = match options {
            Some(tfl::BuiltinOptionsRef::AddOptions(o)) => {
                o.fused_activation_function().map_err(corrupt)?
            }
            _ => tfl::ActivationFunctionType::None,
        };
        let (activation, range) = self.activation_range(i, act, y)?;
        Ok(OpSpec {
            kind: OpKind::Add,
            activation,
            range,
            inputs: [x, x2],
            output: y,
            params: OpParams::Add(self.add_params(x, x2, y)),
            weights: None,
        })
    }

    /// MAX_POOL_2D and AVERAGE_POOL_2D: the window and the fused activation (an int8 average pool must keep its
    /// input's quantization, as TFLite's kernel assumes).
    fn pool(
        &self,
        i: usize,
        kind: OpKind,
        (x, y): (u16, u16),
        options: Option<tfl::BuiltinOptionsRef>,
    ) -> Result<OpSpec> {
        let Some(tfl::BuiltinOptionsRef::Pool2DOptions(o)) = options else {
            return Err(bad(format!(
                "operator {i} ({}): no Pool2DOptions",
                kind.name()
            )));
        };
        let k = [
            o.filter_height().map_err(corrupt)?,
            o.filter_width().map_err(corrupt)?,
        ];
        let s = [
            o.stride_h().map_err(corrupt)?,
            o.stride_w().map_err(corrupt)?,
        ];
        let window = self.window(i, x, y, k, s, o.padding().map_err(corrupt)?)?;
        let act = o.fused_activation_function().map_err(corrupt)?;
        let (activation, range) = self.activation_range(i, act, y)?;
        if kind == OpKind::AveragePool2d && self.numeric == Numeric::Int8 {
            let (a, b) = (self.spec(x), self.spec(y));
            if a.scale != b.scale || a.zero_point != b.zero_point {
                return Err(bad(format!(
                    "operator {i} (AVERAGE_POOL_2D): input and output quantized differently"
                )));
            }
        }
        Ok(OpSpec {
            activation,
            range,
            ..OpSpec::unary(kind, x, y, OpParams::Window(window))
        })
    }

    /// The fused activation and the integer path's clamp (TFLite's `CalculateActivationRangeQuantized`).
    fn activation_range(
        &self,
        op: usize,
        act: tfl::ActivationFunctionType,
        y: u16,
    ) -> Result<(Activation, (i8, i8))> {
        use tfl::ActivationFunctionType as A;
        let a = match act {
            A::None => Activation::None,
            A::Relu => Activation::Relu,
            A::Relu6 => Activation::Relu6,
            other => {
                return Err(bad(format!(
                    "operator {op}: fused activation {other:?} is not supported"
                )))
            }
        };
        if self.numeric == Numeric::F32 {
            return Ok((a, (-128, 127)));
        }
        let t = self.spec(y);
        let zp = i32::from(t.zero_point);
        // TFLite quantizes the bounds in f32: zero_point + round(value / scale).
        let q = |v: f32| zp.saturating_add((v / t.scale).round() as i32);
        let (lo, hi) = match a {
            Activation::None => (-128, 127),
            Activation::Relu => (q(0.0).max(-128), 127),
            Activation::Relu6 => (q(0.0).max(-128), q(6.0).min(127)),
        };
        Ok((a, (lo.clamp(-128, 127) as i8, hi.clamp(-128, 127) as i8)))
    }

    /// A window from TFLite's filter, strides and padding (`ComputePaddingHeightWidth`), checked against the
    /// output tensor's shape.
    fn window(
        &self,
        op: usize,
        x: u16,
        y: u16,
        k: [i32; 2],
        s: [i32; 2],
        padding: tfl::Padding,
    ) -> Result<Window> {
        let (input, output) = (&self.spec(x).shape, &self.spec(y).shape);
        if input.len() != 3 || output.len() != 3 {
            return Err(bad(format!(
                "operator {op}: a window over tensors of rank {}",
                input.len()
            )));
        }
        let mut pad = [0u8; 4];
        let mut kernel = [0u8; 2];
        let mut stride = [0u8; 2];
        for axis in 0..2 {
            let (n, kk, ss) = (i32::from(input[axis]), k[axis], s[axis]);
            let small = |v: i32| u8::try_from(v).ok().filter(|&v| v > 0);
            let (Some(k8), Some(s8)) = (small(kk), small(ss)) else {
                return Err(bad(format!(
                    "operator {op}: filter {kk} or stride {ss} out of range"
                )));
            };
            let out = match padding {
                tfl::Padding::Same => (n + ss - 1) / ss,
                tfl::Padding::Valid => (n - kk + ss) / ss,
            };
            let total = ((out - 1) * ss + kk - n).max(0);
            let (before, after) = (total / 2, total - total / 2);
            if out != i32::from(output[axis]) || before >= kk || after >= kk {
                return Err(bad(format!(
                    "operator {op}: output extent {} where the window gives {out}",
                    output[axis]
                )));
            }
            (kernel[axis], stride[axis]) = (k8, s8);
            (pad[axis], pad[axis + 2]) = (before as u8, after as u8);
        }
        Ok(Window {
            kernel,
            stride,
            pad,
        })
    }

    /// ADD's rescaling as TFLite Micro's `CalculateOpDataAdd` computes it for int8.
    fn add_params(&self, x1: u16, x2: u16, y: u16) -> AddParams {
        if self.numeric == Numeric::F32 {
            return AddParams::default();
        }
        let left_shift = 20;
        let (s1, s2, so) = (self.spec(x1).scale, self.spec(x2).scale, self.spec(y).scale);
        let twice_max = 2.0 * f64::from(s1.max(s2));
        let m1 = f64::from(s1) / twice_max;
        let m2 = f64::from(s2) / twice_max;
        let mo = twice_max / (f64::from(1u32 << left_shift) * f64::from(so));
        AddParams {
            input1: quantize_multiplier(m1),
            input2: quantize_multiplier(m2),
            output: quantize_multiplier(mo),
            left_shift,
        }
    }

    /// SOFTMAX's parameters as TFLite's `CalculateSoftmaxParams` computes them for int8.
    fn softmax_params(&self, op: usize, x: u16, y: u16, beta: f32) -> Result<SoftmaxParams> {
        let mut p = SoftmaxParams {
            beta,
            ..SoftmaxParams::default()
        };
        if self.numeric == Numeric::F32 {
            return Ok(p);
        }
        let out = self.spec(y);
        if out.zero_point != -128 || out.scale != 1.0 / 256.0 {
            return Err(bad(format!(
                "operator {op} (SOFTMAX): output not quantized with scale 1/256, zero point -128"
            )));
        }
        const INTEGER_BITS: i32 = 5;
        let real = (f64::from(beta)
            * f64::from(self.spec(x).scale)
            * f64::from(1u32 << (31 - INTEGER_BITS)))
        .min(f64::from(i32::MAX));
        let (multiplier, shift) = quantize_multiplier(real);
        let radius = f64::from((1 << INTEGER_BITS) - 1) * f64::from(1u32 << (31 - INTEGER_BITS))
            / 2f64.powi(shift);
        (p.input_multiplier, p.input_left_shift) = (multiplier, shift.max(0));
        p.diff_min = -(radius.floor() as i32);
        Ok(p)
    }

    /// CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED: options, weights, biases and (int8) requantization.
    fn weighted(
        &self,
        op: usize,
        kind: OpKind,
        inputs: &[Option<usize>],
        (x, y): (u16, u16),
        options: Option<tfl::BuiltinOptionsRef>,
    ) -> Result<OpSpec> {
        let (wi, w) = self.tensor(op, inputs.get(1).copied().flatten())?;
        let bias = inputs
            .get(2)
            .copied()
            .flatten()
            .map(|b| self.tensor(op, Some(b)))
            .transpose()?;
        let rows = *w.shape.first().unwrap_or(&0) as usize;
        let (params, act, rows, dims) = self.weighted_params(op, kind, w, rows, (x, y), options)?;
        let (activation, range) = self.activation_range(op, act, y)?;
        let weights = self.weights(op, (wi, w), bias, rows, dims == 3, (x, y))?;
        Ok(OpSpec {
            kind,
            activation,
            range,
            inputs: [x, NO_TENSOR],
            output: y,
            params,
            weights: Some(weights),
        })
    }

    /// A weighted operator's parameters from its options: (parameters, fused activation, output channels, the
    /// filter's channel dimension — 3 for depthwise filters, else 0).
    fn weighted_params(
        &self,
        op: usize,
        kind: OpKind,
        w: &Tensor,
        rows: usize,
        (x, y): (u16, u16),
        options: Option<tfl::BuiltinOptionsRef>,
    ) -> Result<(OpParams, tfl::ActivationFunctionType, usize, i32)> {
        use tfl::BuiltinOptionsRef as O;
        Ok(match (kind, options) {
            (OpKind::Conv2d, Some(O::Conv2DOptions(o))) => {
                check_dilation(
                    op,
                    o.dilation_h_factor().map_err(corrupt)?,
                    o.dilation_w_factor().map_err(corrupt)?,
                )?;
                let k = [
                    w.shape.get(1).copied().unwrap_or(0),
                    w.shape.get(2).copied().unwrap_or(0),
                ];
                let s = [
                    o.stride_h().map_err(corrupt)?,
                    o.stride_w().map_err(corrupt)?,
                ];
                let window = self.window(op, x, y, k, s, o.padding().map_err(corrupt)?)?;
                (
                    OpParams::Window(window),
                    o.fused_activation_function().map_err(corrupt)?,
                    rows,
                    0,
                )
            }
            (OpKind::DepthwiseConv2d, Some(O::DepthwiseConv2DOptions(o))) => {
                check_dilation(
                    op,
                    o.dilation_h_factor().map_err(corrupt)?,
                    o.dilation_w_factor().map_err(corrupt)?,
                )?;
                let k = [
                    w.shape.get(1).copied().unwrap_or(0),
                    w.shape.get(2).copied().unwrap_or(0),
                ];
                let s = [
                    o.stride_h().map_err(corrupt)?,
                    o.stride_w().map_err(corrupt)?,
                ];
                let window = self.window(op, x, y, k, s, o.padding().map_err(corrupt)?)?;
                let (c, oc) = (
                    usize::from(*self.spec(x).shape.last().unwrap_or(&0)),
                    *w.shape.get(3).unwrap_or(&0) as usize,
                );
                if c == 0 || oc % c != 0 || oc / c > 255 {
                    return Err(bad(format!(
                        "operator {op}: {oc} depthwise filters for {c} channels"
                    )));
                }
                let m = (oc / c) as u8;
                (
                    OpParams::Depthwise(window, m),
                    o.fused_activation_function().map_err(corrupt)?,
                    oc,
                    3,
                )
            }
            (OpKind::FullyConnected, o) => {
                let act = match o {
                    Some(O::FullyConnectedOptions(o)) => {
                        if o.weights_format().map_err(corrupt)?
                            != tfl::FullyConnectedOptionsWeightsFormat::Default
                        {
                            return Err(bad(format!(
                                "operator {op}: shuffled FULLY_CONNECTED weights"
                            )));
                        }
                        o.fused_activation_function().map_err(corrupt)?
                    }
                    _ => tfl::ActivationFunctionType::None,
                };
                (OpParams::None, act, rows, 0)
            }
            _ => {
                return Err(bad(format!(
                    "operator {op} ({}): missing options",
                    kind.name()
                )))
            }
        })
    }

    /// The weights section: values one row per output channel, biases, and on the integer path the per-channel
    /// multipliers (`effective scale = s_in · s_w / s_out`, in f64 from the f32 scales, as TFLite Micro does).
    fn weights(
        &self,
        op: usize,
        (wi, w): (usize, &Tensor),
        bias: Option<(usize, &Tensor)>,
        rows: usize,
        depthwise: bool,
        (x, y): (u16, u16),
    ) -> Result<LayerWeights> {
        let data = w
            .data
            .ok_or_else(|| bad(format!("operator {op}: {} has no data", w.label(wi))))?;
        let elements: usize = w.shape.iter().map(|&d| d.max(0) as usize).product();
        let element_bytes = match (self.numeric, w.dtype) {
            (Numeric::Int8, tfl::TensorType::Int8) => 1,
            (Numeric::F32, tfl::TensorType::Float32) => 4,
            (_, t) => {
                return Err(bad(format!(
                    "operator {op}: {} has type {t:?}",
                    w.label(wi)
                )))
            }
        };
        if rows == 0 || !elements.is_multiple_of(rows) || data.len() != elements * element_bytes {
            return Err(bad(format!(
                "operator {op}: {} holds {} bytes for shape {:?}",
                w.label(wi),
                data.len(),
                w.shape
            )));
        }
        let fan_in = elements / rows;
        // TFLite's depthwise filters are [1][kh][kw][channels]: one row per channel here.
        let order = |j: usize| {
            if depthwise {
                (j % fan_in) * rows + j / fan_in
            } else {
                j
            }
        };
        let bias_bytes = match bias {
            Some((bi, b)) => {
                let want = match self.numeric {
                    Numeric::Int8 => tfl::TensorType::Int32,
                    Numeric::F32 => tfl::TensorType::Float32,
                };
                let d = b.data.filter(|d| d.len() == 4 * rows && b.dtype == want);
                Some(d.ok_or_else(|| {
                    bad(format!(
                        "operator {op}: bias {} is not {rows} {want:?} values",
                        b.label(bi)
                    ))
                })?)
            }
            None => None,
        };
        let values: Vec<u8> = (0..elements)
            .flat_map(|j| {
                let at = order(j) * element_bytes;
                data[at..at + element_bytes].to_vec()
            })
            .collect();
        let matrix = Matrix {
            values,
            bias: bias_bytes,
            rows,
        };
        match self.numeric {
            Numeric::F32 => Ok(f32_weights(matrix)),
            Numeric::Int8 => self.int8_weights(op, (wi, w), matrix, depthwise, (x, y)),
        }
    }

    /// The integer path's weights: the per-channel requantization (`effective scale = s_in · s_w / s_out`, in
    /// f64 from the f32 scales, as TFLite Micro does) and int32 biases.
    fn int8_weights(
        &self,
        op: usize,
        (wi, w): (usize, &Tensor),
        m: Matrix,
        depthwise: bool,
        (x, y): (u16, u16),
    ) -> Result<LayerWeights> {
        let per_channel = w.scales.len() > 1;
        let channel_dim = if depthwise { 3 } else { 0 };
        if w.scales.is_empty()
            || per_channel && (w.scales.len() != m.rows || w.quantized_dimension != channel_dim)
            || w.zero_points.iter().any(|&z| z != 0)
        {
            return Err(bad(format!(
                "operator {op}: {} is not quantized symmetrically per tensor or per output channel",
                w.label(wi)
            )));
        }
        let (s_in, s_out) = (f64::from(self.spec(x).scale), f64::from(self.spec(y).scale));
        let (multipliers, shifts) = w
            .scales
            .iter()
            .map(|&s| quantize_multiplier(s_in * f64::from(s) / s_out))
            .unzip();
        let bias = (0..m.rows)
            .map(|o| m.bias.map_or(0, |d| i32::from_le_bytes(word(d, o))))
            .collect();
        Ok(LayerWeights {
            bias: Vec::new(),
            scales: Vec::new(),
            quant: Some(LayerQuant {
                per_channel,
                multipliers,
                shifts,
                bias,
            }),
            payload: WeightPayload::DenseI8(m.values.iter().map(|&v| v as i8).collect()),
        })
    }

    fn finish(self, graph: &tfl::SubGraphRef) -> Result<SlimFile> {
        let outputs: Vec<i32> = graph
            .outputs()
            .map_err(corrupt)?
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let out = idx(outputs[0]).and_then(|o| self.ids.get(&o).copied());
        let output = out.ok_or_else(|| bad("the graph output is not computed by any operator"))?;
        if self.ops.is_empty() {
            return Err(bad("no operators"));
        }
        Ok(SlimFile {
            tensors: self.out_tensors,
            ops: self.ops,
            input: 0,
            output,
            normalization: (0.0, 1.0),
            input_table: None,
            paths: Paths {
                f32: self.numeric == Numeric::F32,
                integer: self.numeric == Numeric::Int8,
            },
        })
    }
}

/// A weight matrix in the runtime's order (one row per output channel), as little-endian bytes, and its biases.
struct Matrix<'a> {
    values: Vec<u8>,
    bias: Option<&'a [u8]>,
    rows: usize,
}

/// Word `i` of little-endian data (checked in length by the caller).
fn word(d: &[u8], i: usize) -> [u8; 4] {
    [d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]]
}

/// The f32 path's weights: values and biases as they are.
fn f32_weights(m: Matrix) -> LayerWeights {
    let values = m
        .values
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let bias = (0..m.rows)
        .map(|o| m.bias.map_or(0.0, |d| f32::from_le_bytes(word(d, o))))
        .collect();
    LayerWeights {
        bias,
        scales: Vec::new(),
        quant: None,
        payload: WeightPayload::DenseF32(values),
    }
}

/// The runtime's operator for a TFLite builtin, or a refusal naming it.
fn op_kind(i: usize, code: tfl::BuiltinOperator) -> Result<OpKind> {
    use tfl::BuiltinOperator as B;
    Ok(match code {
        B::Conv2d => OpKind::Conv2d,
        B::DepthwiseConv2d => OpKind::DepthwiseConv2d,
        B::FullyConnected => OpKind::FullyConnected,
        B::Add => OpKind::Add,
        B::MaxPool2d => OpKind::MaxPool2d,
        B::AveragePool2d => OpKind::AveragePool2d,
        B::Reshape => OpKind::Reshape,
        B::Softmax => OpKind::Softmax,
        other => {
            return Err(bad(format!(
                "operator {i}: {other:?} is not supported (the runtime runs CONV_2D, DEPTHWISE_CONV_2D, \
                 FULLY_CONNECTED, ADD, MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE, SOFTMAX)"
            )))
        }
    })
}

fn check_dilation(op: usize, h: i32, w: i32) -> Result<()> {
    if (h, w) != (1, 1) {
        return Err(bad(format!(
            "operator {op}: dilation {h}×{w} (1 is supported)"
        )));
    }
    Ok(())
}
