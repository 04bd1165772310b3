//! The candle graph of a [`NetSpec`]: forward pass in training or evaluation mode, and the losses.
//!
//! Tensors are passed in [`NetSpec::tensors`] order, so the same code runs on trainable `Var`s while training
//! and on constants while evaluating.

use crate::arch::{Activation, Layer, NetSpec};
use crate::data::{Dataset, Normalization};
use crate::error::Result;
use candle_core::{DType, Device, Tensor, D};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// ε in batch normalization's denominator (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

/// Evaluation or training (batch statistics for batch norm, dropout active).
pub enum Mode<'a> {
    /// Running statistics, no dropout.
    Eval,
    /// Batch statistics; dropout with rate `dropout` on hidden fully connected layers, masks drawn from `rng`.
    Train {
        /// Probability of zeroing a hidden unit.
        dropout: f32,
        /// Source of dropout masks.
        rng: &'a mut ChaCha8Rng,
    },
}

/// Batch statistics seen by one batch-norm layer in training mode, for the running averages.
#[derive(Debug, Clone)]
pub struct BatchStats {
    /// Index (in [`NetSpec::tensors`] order) of the layer's `running_mean`; `running_var` follows it.
    pub running_mean_index: usize,
    /// Per-channel mean of the batch.
    pub mean: Vec<f32>,
    /// Per-channel unbiased variance of the batch.
    pub var: Vec<f32>,
}

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Softmax cross-entropy, computed with the max-subtracted log-sum-exp.
    CrossEntropy,
    /// Mean squared error between the logits and one-hot targets (mean over samples and classes).
    Mse,
}

impl std::str::FromStr for Loss {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cross-entropy" | "ce" => Ok(Loss::CrossEntropy),
            "mse" => Ok(Loss::Mse),
            other => Err(crate::Error::config(
                "--loss",
                format!("unknown loss `{other}` (expected cross-entropy or mse)"),
            )),
        }
    }
}

/// Numerically stable log-softmax over the last dimension: `x − max − log Σ exp(x − max)`.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?;
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// Mean loss over the batch. `labels` is a `u32` vector of class indices.
pub fn loss(kind: Loss, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    match kind {
        Loss::CrossEntropy => {
            let logp = log_softmax(logits)?;
            let picked = logp.gather(&labels.unsqueeze(1)?, 1)?;
            Ok(picked.mean_all()?.neg()?)
        }
        Loss::Mse => {
            let classes = logits.dim(1)?;
            let one_hot = one_hot(labels, classes)?;
            Ok(logits.sub(&one_hot)?.sqr()?.mean_all()?)
        }
    }
}

/// `T² · mean over the batch of CE(softmax(teacher/T), softmax(student/T))`: the soft-target term of knowledge
/// distillation, scaled by `T²` so that its gradients keep their size as `T` changes (Hinton et al. 2015).
pub fn distillation_loss(student: &Tensor, teacher: &Tensor, temperature: f32) -> Result<Tensor> {
    let t = f64::from(temperature);
    let soft = log_softmax(&(teacher / t)?)?.exp()?;
    let logp = log_softmax(&(student / t)?)?;
    Ok((soft.mul(&logp)?.sum(D::Minus1)?.mean_all()?.neg()? * (t * t))?)
}

fn one_hot(labels: &Tensor, classes: usize) -> Result<Tensor> {
    let ids = labels.to_vec1::<u32>()?;
    let mut v = vec![0f32; ids.len() * classes];
    for (row, &c) in ids.iter().enumerate() {
        v[row * classes + c as usize] = 1.0;
    }
    Ok(Tensor::from_vec(v, (ids.len(), classes), labels.device())?)
}

/// Builds the input batch (normalized pixels, shaped for the first layer) and the labels of samples `indices`.
pub fn batch(
    net: &NetSpec,
    data: &Dataset,
    norm: &Normalization,
    indices: &[usize],
) -> Result<(Tensor, Tensor)> {
    let len = data.image_len();
    let mut x = vec![0f32; indices.len() * len];
    for (row, &i) in indices.iter().enumerate() {
        norm.apply(data.image(i), &mut x[row * len..(row + 1) * len]);
    }
    let labels: Vec<u32> = indices.iter().map(|&i| u32::from(data.labels[i])).collect();
    let s = net.input;
    let x = Tensor::from_vec(
        x,
        (indices.len(), s.channels, s.height, s.width),
        &Device::Cpu,
    )?;
    let y = Tensor::from_vec(labels, indices.len(), &Device::Cpu)?;
    Ok((x, y))
}

/// Runs the network on `x` (`[batch, channels, height, width]`). Returns the logits and, in training mode, the
/// batch statistics of every batch-norm layer.
pub fn forward(
    net: &NetSpec,
    tensors: &[Tensor],
    x: &Tensor,
    mode: Mode,
) -> Result<(Tensor, Vec<BatchStats>)> {
    forward_traced(net, tensors, x, mode, None)
}

/// Evaluation-mode forward pass that also returns every layer's output (after its activation), in layer order.
/// Export uses it to calibrate activation ranges.
pub fn trace(net: &NetSpec, tensors: &[Tensor], x: &Tensor) -> Result<Vec<Tensor>> {
    let mut outputs = Vec::new();
    forward_traced(net, tensors, x, Mode::Eval, Some(&mut outputs))?;
    Ok(outputs)
}

fn forward_traced(
    net: &NetSpec,
    tensors: &[Tensor],
    x: &Tensor,
    mut mode: Mode,
    mut trace: Option<&mut Vec<Tensor>>,
) -> Result<(Tensor, Vec<BatchStats>)> {
    let mut h = x.clone();
    let mut next = 0usize; // index into `tensors`
    let mut stats = Vec::new();
    let last_weighted = net.layers.iter().rposition(|l| l.name().is_some());
    for (li, layer) in net.layers.iter().enumerate() {
        match layer {
            Layer::Flatten => h = h.flatten_from(1)?,
            Layer::MaxPool { size } => h = crate::ops::max_pool2d(&h, *size)?,
            Layer::Dense { activation, .. } | Layer::Conv2d { activation, .. } => {
                let (w, b) = (&tensors[next], &tensors[next + 1]);
                next += 2;
                h = if let Layer::Conv2d { .. } = layer {
                    if h.rank() == 2 {
                        let s = net.input;
                        h = h.reshape((h.dim(0)?, s.channels, s.height, s.width))?;
                    }
                    crate::ops::conv2d(&h, w, b)?
                } else {
                    if h.rank() != 2 {
                        h = h.flatten_from(1)?;
                    }
                    h.matmul(&w.t()?)?.broadcast_add(b)?
                };
                if layer.has_batch_norm() {
                    let (gamma, beta, rmean, rvar) = (
                        &tensors[next],
                        &tensors[next + 1],
                        &tensors[next + 2],
                        &tensors[next + 3],
                    );
                    let mean_index = next + 2;
                    next += 4;
                    h = batch_norm(&h, gamma, beta, rmean, rvar, &mode, mean_index, &mut stats)?;
                }
                if *activation == Activation::Relu {
                    h = h.relu()?;
                }
                let hidden_dense =
                    matches!(layer, Layer::Dense { .. }) && Some(li) != last_weighted;
                if let (Mode::Train { dropout, rng }, true) = (&mut mode, hidden_dense) {
                    if *dropout > 0.0 {
                        h = apply_dropout(&h, *dropout, rng)?;
                    }
                }
            }
        }
        if let Some(t) = trace.as_deref_mut() {
            t.push(h.clone());
        }
    }
    Ok((h, stats))
}

#[allow(clippy::too_many_arguments)]
fn batch_norm(
    h: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    rmean: &Tensor,
    rvar: &Tensor,
    mode: &Mode,
    mean_index: usize,
    stats: &mut Vec<BatchStats>,
) -> Result<Tensor> {
    let c = gamma.dim(0)?;
    let conv = h.rank() == 4;
    let bshape: Vec<usize> = if conv { vec![1, c, 1, 1] } else { vec![1, c] };
    let (mean, var) = match mode {
        Mode::Eval => (
            rmean.reshape(bshape.as_slice())?,
            rvar.reshape(bshape.as_slice())?,
        ),
        Mode::Train { .. } => {
            let mean_over = |t: &Tensor| -> Result<Tensor> {
                Ok(if conv {
                    t.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?
                } else {
                    t.mean_keepdim(0)?
                })
            };
            let mean = mean_over(h)?;
            let var = mean_over(&h.broadcast_sub(&mean)?.sqr()?)?;
            let n = h.elem_count() / c;
            let unbias = if n > 1 {
                n as f64 / (n - 1) as f64
            } else {
                1.0
            };
            stats.push(BatchStats {
                running_mean_index: mean_index,
                mean: mean.flatten_all()?.to_vec1()?,
                var: (var.flatten_all()? * unbias)?.to_vec1()?,
            });
            (mean, var)
        }
    };
    let normed = h
        .broadcast_sub(&mean)?
        .broadcast_div(&(var + BN_EPS)?.sqrt()?)?;
    Ok(normed
        .broadcast_mul(&gamma.reshape(bshape.as_slice())?)?
        .broadcast_add(&beta.reshape(bshape.as_slice())?)?)
}

/// Inverted dropout: zero each unit with probability `p`, scale the rest by 1 / (1 − p).
fn apply_dropout(h: &Tensor, p: f32, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..h.elem_count())
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { keep })
        .collect();
    let mask = Tensor::from_vec(mask, h.shape(), h.device())?;
    Ok(h.mul(&mask)?)
}

/// Constant tensors of `params`, in order, for evaluation.
pub fn constants(params: &crate::params::Params) -> Result<Vec<Tensor>> {
    params
        .tensors
        .iter()
        .map(|p| {
            Ok(Tensor::from_slice(
                &p.data,
                p.spec.shape.as_slice(),
                &Device::Cpu,
            )?)
        })
        .collect()
}

/// Predicted classes of a logits batch.
pub fn argmax(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(D::Minus1)?.to_dtype(DType::U32)?.to_vec1()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_is_stable_for_huge_logits() {
        let x = Tensor::new(&[[1000f32, 0.0, -1000.0], [1e30, 1e30, 0.0]], &Device::Cpu).unwrap();
        let l = log_softmax(&x).unwrap().to_vec2::<f32>().unwrap();
        assert!(
            l.iter()
                .flatten()
                .all(|v| v.is_finite() || *v == f32::NEG_INFINITY),
            "{l:?}"
        );
        assert!(l[0][0].abs() < 1e-6);
        assert!((l[1][0] - (-std::f32::consts::LN_2)).abs() < 1e-6);
        let labels = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
        let ce = loss(Loss::CrossEntropy, &x, &labels)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((ce - std::f32::consts::LN_2 / 2.0).abs() < 1e-6, "{ce}");
    }

    #[test]
    fn mse_is_the_mean_over_samples_and_classes() {
        let x = Tensor::new(&[[1f32, 0.0], [0.0, 0.0]], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[0u32, 0], &Device::Cpu).unwrap();
        let l = loss(Loss::Mse, &x, &labels)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((l - 0.25).abs() < 1e-7);
    }
}
