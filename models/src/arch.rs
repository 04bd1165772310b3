//! Network descriptions: the one place an architecture is written down. `models` builds candle graphs from a
//! [`NetSpec`]; `compress` walks the same description to prune, cluster and export.
//!
//! Spec strings (`NetSpec::parse`):
//! - `lenet-300-100` — 784-300-100-10, ReLU (Deep Compression's MLP);
//! - `lenet-5` — Caffe's LeNet as used by Deep Compression: conv 20@5×5 → max-pool 2 → conv 50@5×5 → max-pool 2 →
//!   fc 500 ReLU → fc 10 (no ReLU after the convolutions, as in Caffe's prototxt); 431,080 parameters;
//! - `mlp:H1-H2-…` — fully connected hidden layers of the given widths, ReLU;
//! - `cnn:TOKENS` — tokens joined by `-`: `cNkK` (N filters of K×K, stride 1, no padding, ReLU), `pK` (max-pool K×K,
//!   stride K), `fN` (fully connected, N units, ReLU).
//!
//! Every network ends with a fully connected layer to the classes (no activation: it gives logits). Weighted
//! layers are named `conv1, conv2, …` and `fc1, fc2, …` in order; their tensors follow PyTorch's names and layouts.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Input shape of one sample: channels × height × width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Channels.
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl Shape {
    /// A single-channel image.
    pub fn image(height: usize, width: usize) -> Shape {
        Shape {
            channels: 1,
            height,
            width,
        }
    }

    /// Number of values: channels × height × width.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether the shape holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.channels, self.height, self.width)
    }
}

/// What follows a weighted layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Identity.
    None,
    /// max(0, x).
    Relu,
}

/// One layer of a network. Weighted layers own `NAME.weight` and `NAME.bias`, and with batch normalization
/// `NAME.bn.{weight,bias,running_mean,running_var}` (applied between the layer and its activation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Layer {
    /// Fully connected: weight `[outputs, inputs]`.
    Dense {
        /// Layer name (`fc1`, …).
        name: String,
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
        /// Activation after the layer.
        activation: Activation,
        /// Whether a batch normalization sits between the layer and its activation.
        batch_norm: bool,
    },
    /// 2-D convolution, stride 1, no padding: weight `[out_channels, in_channels, kernel, kernel]`.
    Conv2d {
        /// Layer name (`conv1`, …).
        name: String,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel height and width.
        kernel: usize,
        /// Activation after the layer.
        activation: Activation,
        /// Whether a batch normalization sits between the layer and its activation.
        batch_norm: bool,
    },
    /// Max-pooling over `size × size` windows with stride `size` (the remainder is dropped).
    MaxPool {
        /// Window size and stride.
        size: usize,
    },
    /// Flattens channels × height × width into one vector (PyTorch's order).
    Flatten,
}

impl Layer {
    /// The weighted layer's name, if it has weights.
    pub fn name(&self) -> Option<&str> {
        match self {
            Layer::Dense { name, .. } | Layer::Conv2d { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Weight tensor shape of a weighted layer.
    pub fn weight_shape(&self) -> Option<Vec<usize>> {
        match *self {
            Layer::Dense {
                inputs, outputs, ..
            } => Some(vec![outputs, inputs]),
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => Some(vec![out_channels, in_channels, kernel, kernel]),
            _ => None,
        }
    }

    /// Output channels (conv) or features (dense).
    pub fn outputs(&self) -> Option<usize> {
        match *self {
            Layer::Dense { outputs, .. } => Some(outputs),
            Layer::Conv2d { out_channels, .. } => Some(out_channels),
            _ => None,
        }
    }

    /// Whether batch normalization follows.
    pub fn has_batch_norm(&self) -> bool {
        matches!(
            self,
            Layer::Dense {
                batch_norm: true,
                ..
            } | Layer::Conv2d {
                batch_norm: true,
                ..
            }
        )
    }
}

/// The role of a tensor in a network, which decides how training treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A weight matrix or kernel (L1/L2 penalties apply; pruned and clustered later).
    Weight,
    /// A bias vector.
    Bias,
    /// Batch-norm scale γ.
    BnScale,
    /// Batch-norm shift β.
    BnShift,
    /// Batch-norm running mean (a buffer: not trained by the optimizer).
    BnMean,
    /// Batch-norm running variance (a buffer).
    BnVar,
}

impl Role {
    /// Whether the optimizer updates tensors of this role.
    pub fn trainable(self) -> bool {
        !matches!(self, Role::BnMean | Role::BnVar)
    }
}

/// A named tensor the network needs, with its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Name, e.g. `fc1.weight`.
    pub name: String,
    /// Shape, PyTorch layout.
    pub shape: Vec<usize>,
    /// What it is.
    pub role: Role,
    /// Index of the layer in [`NetSpec::layers`] it belongs to.
    pub layer: usize,
}

/// A whole network: input shape, layers, classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSpec {
    /// The spec string it was parsed from (`lenet-300-100`, `mlp:512-256`, …).
    pub arch: String,
    /// Shape of one input sample.
    pub input: Shape,
    /// Number of output classes.
    pub classes: usize,
    /// Layers in order; the last is a dense layer to `classes` logits.
    pub layers: Vec<Layer>,
}

/// Where the feature map stands while walking a spec.
#[derive(Clone, Copy)]
enum Flow {
    Map(Shape),
    Flat(usize),
}

struct Builder<'a> {
    spec: &'a str,
    flow: Flow,
    layers: Vec<Layer>,
    batch_norm: bool,
    convs: usize,
    denses: usize,
}

impl Builder<'_> {
    fn err(&self, reason: impl Into<String>) -> Error {
        Error::ArchSpec {
            spec: self.spec.to_string(),
            reason: reason.into(),
        }
    }

    fn conv(&mut self, filters: usize, kernel: usize, activation: Activation) -> Result<()> {
        let Flow::Map(s) = self.flow else {
            return Err(self.err("a convolution cannot follow a fully connected layer"));
        };
        if filters == 0 || kernel == 0 {
            return Err(self.err("filters and kernel size must be at least 1"));
        }
        if kernel > s.height || kernel > s.width {
            return Err(self.err(format!(
                "conv{} kernel {kernel}×{kernel} does not fit its {}×{} input",
                self.convs + 1,
                s.height,
                s.width
            )));
        }
        self.convs += 1;
        self.layers.push(Layer::Conv2d {
            name: format!("conv{}", self.convs),
            in_channels: s.channels,
            out_channels: filters,
            kernel,
            activation,
            batch_norm: self.batch_norm,
        });
        self.flow = Flow::Map(Shape {
            channels: filters,
            height: s.height - kernel + 1,
            width: s.width - kernel + 1,
        });
        Ok(())
    }

    fn pool(&mut self, size: usize) -> Result<()> {
        let Flow::Map(s) = self.flow else {
            return Err(self.err("max-pooling cannot follow a fully connected layer"));
        };
        if size < 2 || size > s.height || size > s.width {
            return Err(self.err(format!(
                "max-pool {size} does not fit its {}×{} input (size must be 2 or more)",
                s.height, s.width
            )));
        }
        self.layers.push(Layer::MaxPool { size });
        self.flow = Flow::Map(Shape {
            channels: s.channels,
            height: s.height / size,
            width: s.width / size,
        });
        Ok(())
    }

    fn dense(&mut self, outputs: usize, activation: Activation, batch_norm: bool) -> Result<()> {
        if outputs == 0 {
            return Err(self.err("a layer needs at least one unit"));
        }
        let inputs = match self.flow {
            Flow::Map(s) => {
                self.layers.push(Layer::Flatten);
                s.len()
            }
            Flow::Flat(n) => n,
        };
        self.denses += 1;
        self.layers.push(Layer::Dense {
            name: format!("fc{}", self.denses),
            inputs,
            outputs,
            activation,
            batch_norm,
        });
        self.flow = Flow::Flat(outputs);
        Ok(())
    }
}

fn number(token: &str, what: &str, spec: &str) -> Result<usize> {
    token.parse::<usize>().map_err(|_| Error::ArchSpec {
        spec: spec.to_string(),
        reason: format!("`{token}` is not a {what}"),
    })
}

impl NetSpec {
    /// Parses a spec string for inputs of `input` shape and `classes` outputs; with `batch_norm`, every hidden
    /// weighted layer gets a batch normalization.
    pub fn parse(spec: &str, input: Shape, classes: usize, batch_norm: bool) -> Result<NetSpec> {
        let mut b = Builder {
            spec,
            flow: Flow::Map(input),
            layers: Vec::new(),
            batch_norm,
            convs: 0,
            denses: 0,
        };
        if classes < 2 {
            return Err(b.err(format!("{classes} classes: a classifier needs at least 2")));
        }
        if input.is_empty() {
            return Err(b.err("empty input shape"));
        }
        match spec {
            "lenet-300-100" => {
                b.dense(300, Activation::Relu, batch_norm)?;
                b.dense(100, Activation::Relu, batch_norm)?;
            }
            "lenet-5" => {
                b.conv(20, 5, Activation::None)?;
                b.pool(2)?;
                b.conv(50, 5, Activation::None)?;
                b.pool(2)?;
                b.dense(500, Activation::Relu, batch_norm)?;
            }
            _ => {
                if let Some(rest) = spec.strip_prefix("mlp:") {
                    for tok in rest.split('-') {
                        let n = number(tok, "layer width", spec)?;
                        b.dense(n, Activation::Relu, batch_norm)?;
                    }
                } else if let Some(rest) = spec.strip_prefix("cnn:") {
                    for tok in rest.split('-') {
                        if let Some(p) = tok.strip_prefix('p') {
                            b.pool(number(p, "pool size", spec)?)?;
                        } else if let Some(f) = tok.strip_prefix('f') {
                            b.dense(
                                number(f, "layer width", spec)?,
                                Activation::Relu,
                                batch_norm,
                            )?;
                        } else if let Some((c, k)) =
                            tok.strip_prefix('c').and_then(|t| t.split_once('k'))
                        {
                            let filters = number(c, "filter count", spec)?;
                            let kernel = number(k, "kernel size", spec)?;
                            b.conv(filters, kernel, Activation::Relu)?;
                        } else {
                            return Err(b.err(format!(
                                "unknown token `{tok}` (expected cNkK, pK or fN, e.g. cnn:c8k3-p2-c16k3-p2-f64)"
                            )));
                        }
                    }
                } else {
                    return Err(b.err(
                        "unknown architecture (expected lenet-300-100, lenet-5, mlp:H1-H2-… or cnn:c8k3-p2-f64)",
                    ));
                }
            }
        }
        b.dense(classes, Activation::None, false)?;
        Ok(NetSpec {
            arch: spec.to_string(),
            input,
            classes,
            layers: b.layers,
        })
    }

    /// Whether any layer uses batch normalization.
    pub fn batch_norm(&self) -> bool {
        self.layers.iter().any(Layer::has_batch_norm)
    }

    /// Every tensor the network owns, in a fixed order (layer by layer: weight, bias, then batch norm).
    pub fn tensors(&self) -> Vec<TensorSpec> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let (Some(name), Some(shape), Some(outputs)) =
                (layer.name(), layer.weight_shape(), layer.outputs())
            else {
                continue;
            };
            let mut push = |suffix: &str, shape: Vec<usize>, role| {
                out.push(TensorSpec {
                    name: format!("{name}.{suffix}"),
                    shape,
                    role,
                    layer: i,
                })
            };
            push("weight", shape, Role::Weight);
            push("bias", vec![outputs], Role::Bias);
            if layer.has_batch_norm() {
                push("bn.weight", vec![outputs], Role::BnScale);
                push("bn.bias", vec![outputs], Role::BnShift);
                push("bn.running_mean", vec![outputs], Role::BnMean);
                push("bn.running_var", vec![outputs], Role::BnVar);
            }
        }
        out
    }

    /// Number of parameters (batch-norm running statistics excluded).
    pub fn parameter_count(&self) -> usize {
        self.tensors()
            .iter()
            .filter(|t| t.role.trainable())
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }

    /// Bytes of the parameters stored densely as f32.
    pub fn dense_f32_bytes(&self) -> usize {
        4 * self.parameter_count()
    }

    /// A one-line description: `fc1 784→300 relu, fc2 300→100 relu, fc3 100→10`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .layers
            .iter()
            .map(|l| match l {
                Layer::Dense {
                    name,
                    inputs,
                    outputs,
                    activation,
                    batch_norm,
                } => format!(
                    "{name} {inputs}→{outputs}{}{}",
                    if *batch_norm { " bn" } else { "" },
                    if *activation == Activation::Relu {
                        " relu"
                    } else {
                        ""
                    }
                ),
                Layer::Conv2d {
                    name,
                    in_channels,
                    out_channels,
                    kernel,
                    activation,
                    batch_norm,
                } => format!(
                    "{name} {in_channels}→{out_channels}@{kernel}×{kernel}{}{}",
                    if *batch_norm { " bn" } else { "" },
                    if *activation == Activation::Relu {
                        " relu"
                    } else {
                        ""
                    }
                ),
                Layer::MaxPool { size } => format!("maxpool {size}"),
                Layer::Flatten => "flatten".into(),
            })
            .collect();
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mnist(spec: &str) -> Result<NetSpec> {
        NetSpec::parse(spec, Shape::image(28, 28), 10, false)
    }

    #[test]
    fn lenets_have_the_published_parameter_counts() {
        assert_eq!(mnist("lenet-300-100").unwrap().parameter_count(), 266_610);
        let l5 = mnist("lenet-5").unwrap();
        assert_eq!(l5.parameter_count(), 431_080);
        assert_eq!(l5.dense_f32_bytes(), 1_724_320);
        let names: Vec<_> = l5.tensors().into_iter().map(|t| t.name).collect();
        assert_eq!(names[0], "conv1.weight");
        assert_eq!(names.last().unwrap(), "fc2.bias");
    }

    #[test]
    fn mlp_and_cnn_specs_parse() {
        let m = mnist("mlp:512-256-128").unwrap();
        assert_eq!(m.layers.len(), 5); // flatten + 4 dense
        assert_eq!(m.layers[4].weight_shape().unwrap(), vec![10, 128]);
        let c = mnist("cnn:c8k3-p2-c16k3-p2-f64").unwrap();
        // 28 → 26 → 13 → 11 → 5: 16·5·5 = 400 inputs to fc1.
        assert_eq!(c.layers[5].weight_shape().unwrap(), vec![64, 400]);
        assert_eq!(c.layers[4], Layer::Flatten);
    }

    #[test]
    fn batch_norm_adds_its_tensors_to_hidden_layers_only() {
        let m = NetSpec::parse("lenet-300-100", Shape::image(28, 28), 10, true).unwrap();
        let names: Vec<_> = m.tensors().into_iter().map(|t| t.name).collect();
        assert!(names.contains(&"fc2.bn.running_var".to_string()));
        assert!(!names.iter().any(|n| n.starts_with("fc3.bn")));
        assert_eq!(m.parameter_count(), 266_610 + 2 * 400);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, needle) in [
            ("resnet", "unknown architecture"),
            ("mlp:", "is not a layer width"),
            ("mlp:10-x", "`x` is not a layer width"),
            ("mlp:0", "at least one unit"),
            ("cnn:c8k30", "does not fit"),
            ("cnn:f10-c8k3", "cannot follow"),
            ("cnn:q3", "unknown token `q3`"),
            ("cnn:p1", "max-pool 1"),
        ] {
            let e = mnist(spec).unwrap_err().to_string();
            assert!(e.contains(spec) && e.contains(needle), "{spec}: {e}");
        }
        assert!(NetSpec::parse("lenet-5", Shape::image(28, 28), 1, false).is_err());
    }
}
