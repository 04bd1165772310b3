//! Sensitivity analysis: how a trained model's test accuracy and loss respond to perturbed weights, layer by
//! layer and for the whole model, each perturbation a curve with its spread over repeated random draws:
//!
//! - Gaussian weight noise of relative size σ, additive (`w + σ·std(layer)·z`) and multiplicative (`w·(1 + σ·z)`);
//! - magnitude pruning without retraining (Distiller's per-layer sensitivity analysis);
//! - uniform symmetric quantization and k-means weight sharing at each bit width;
//! - bit flips in the stored weights of a `.slim` file at a bit-error rate, run by the runtime itself (fault
//!   injection on the deployed artifact);
//! - flatness: ε-sharpness (Keskar et al., *On Large-Batch Training for Deep Learning*, ICLR 2017) and the top
//!   eigenvalue of the loss Hessian by power iteration on Hessian-vector products.
//!
//! The "model" target perturbs every weighted layer at once (each by its own statistics). Biases are never
//! perturbed: they are a few hundred of the model's values and stored apart from the compressed weights.

use crate::cluster::{kmeans, ClusterInit};
use crate::error::{Error, Result};
use crate::evaluate::{evaluate_slim, NumericPath};
use crate::prune::weight_tensors;
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::Serialize;
use slimnet_models::data::{Dataset, Normalization};
use slimnet_models::net::{self, Loss, Mode};
use slimnet_models::params::Params;
use slimnet_models::{Model, NetSpec};
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

/// One kind of analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Analysis {
    /// Gaussian weight noise, additive and multiplicative.
    Noise,
    /// Magnitude pruning without retraining.
    Prune,
    /// Uniform symmetric quantization per layer.
    Quantize,
    /// k-means weight sharing per layer.
    Cluster,
    /// Bit flips in a `.slim` file's stored weights, run by the runtime.
    BitFlip,
    /// ε-sharpness and the top Hessian eigenvalue.
    Flatness,
}

impl Analysis {
    /// Every kind, in the order reports list them.
    pub const ALL: [Analysis; 6] = [
        Analysis::Noise,
        Analysis::Prune,
        Analysis::Quantize,
        Analysis::Cluster,
        Analysis::BitFlip,
        Analysis::Flatness,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Analysis::Noise => "noise",
            Analysis::Prune => "prune",
            Analysis::Quantize => "quantize",
            Analysis::Cluster => "cluster",
            Analysis::BitFlip => "bitflip",
            Analysis::Flatness => "flatness",
        }
    }

    /// Whether it needs the safetensors model (all but bit flips, which need a `.slim` file).
    pub fn needs_float_model(self) -> bool {
        self != Analysis::BitFlip
    }
}

impl fmt::Display for Analysis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Analysis {
    type Err = Error;
    fn from_str(s: &str) -> Result<Analysis> {
        Analysis::ALL
            .into_iter()
            .find(|a| a.name() == s.trim())
            .ok_or_else(|| {
                Error::config(
                    "--analyses",
                    format!(
                        "unknown analysis {s:?} (one or more of noise, prune, quantize, cluster, bitflip, flatness)"
                    ),
                )
            })
    }
}

/// A comma-separated list of analyses, e.g. `noise,prune`; `all` for every kind.
pub fn parse_analyses(text: &str) -> Result<Vec<Analysis>> {
    if text.trim() == "all" {
        return Ok(Analysis::ALL.to_vec());
    }
    let mut out: Vec<Analysis> = Vec::new();
    for part in text.split(',') {
        let a: Analysis = part.parse()?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// Parses a comma-separated list of numbers, each checked by `check` (which says what is wrong).
pub fn parse_list(
    text: &str,
    flag: &'static str,
    check: impl Fn(f64) -> std::result::Result<(), String>,
) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let v: f64 = part
            .trim()
            .parse()
            .map_err(|_| Error::config(flag, format!("{part:?} is not a number")))?;
        check(v).map_err(|reason| Error::config(flag, format!("{v}: {reason}")))?;
        out.push(v);
    }
    if out.is_empty() {
        return Err(Error::config(flag, "empty list"));
    }
    Ok(out)
}

/// What to analyze and how finely.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The analyses to run.
    pub analyses: Vec<Analysis>,
    /// Relative noise levels σ, each in [0, 10] (0: the unperturbed model, a reference point).
    pub sigmas: Vec<f64>,
    /// Pruning sparsities, each in (0, 1).
    pub sparsities: Vec<f64>,
    /// Uniform quantization bit widths (2..=8).
    pub quantize_bits: Vec<u32>,
    /// Weight-sharing bit widths (1..=8): 2^bits clusters.
    pub cluster_bits: Vec<u32>,
    /// Bit-error rates, each in (0, 0.5].
    pub rates: Vec<f64>,
    /// Draws per random perturbation (noise, bit flips).
    pub repeats: usize,
    /// Test samples the curves are measured on (`None`: all).
    pub samples: Option<usize>,
    /// Training samples the flatness measures use.
    pub flatness_samples: usize,
    /// ε of the ε-sharpness box `|δ_i| ≤ ε·(|w_i| + 1)`.
    pub epsilon: f64,
    /// Most power iterations for the top Hessian eigenvalue.
    pub hessian_iterations: usize,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            analyses: vec![
                Analysis::Noise,
                Analysis::Prune,
                Analysis::Quantize,
                Analysis::Cluster,
                Analysis::Flatness,
            ],
            sigmas: vec![0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0],
            sparsities: vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
            quantize_bits: (2..=8).collect(),
            cluster_bits: (1..=8).collect(),
            rates: vec![1e-6, 1e-5, 1e-4, 1e-3, 1e-2],
            repeats: 3,
            samples: None,
            flatness_samples: 2000,
            epsilon: 1e-3,
            hessian_iterations: 20,
            seed: 1,
        }
    }
}

/// Checks for a relative noise level.
pub fn check_sigma(v: f64) -> std::result::Result<(), String> {
    if (0.0..=10.0).contains(&v) {
        Ok(())
    } else {
        Err("σ must be in [0, 10]".into())
    }
}

/// Checks for a pruning sparsity.
pub fn check_sparsity(v: f64) -> std::result::Result<(), String> {
    if v > 0.0 && v < 1.0 {
        Ok(())
    } else {
        Err("a sparsity must be in (0, 1)".into())
    }
}

/// Checks for a bit-error rate.
pub fn check_rate(v: f64) -> std::result::Result<(), String> {
    if v > 0.0 && v <= 0.5 {
        Ok(())
    } else {
        Err("a bit-error rate must be in (0, 0.5]".into())
    }
}

impl Settings {
    /// Checks every value (the parsers check lists given on the command line; this also covers settings built
    /// in code).
    pub fn validate(&self) -> Result<()> {
        let each = |vals: &[f64], flag, check: fn(f64) -> std::result::Result<(), String>| {
            vals.iter().try_for_each(|&v| {
                check(v).map_err(|reason| Error::config(flag, format!("{v}: {reason}")))
            })
        };
        each(&self.sigmas, "--sigmas", check_sigma)?;
        each(&self.sparsities, "--sparsities", check_sparsity)?;
        each(&self.rates, "--rates", check_rate)?;
        for &b in &self.quantize_bits {
            if !(2..=8).contains(&b) {
                return Err(Error::config(
                    "--quantize-bits",
                    format!("{b}: must be 2..8"),
                ));
            }
        }
        for &b in &self.cluster_bits {
            if !(1..=8).contains(&b) {
                return Err(Error::config(
                    "--cluster-bits",
                    format!("{b}: must be 1..8"),
                ));
            }
        }
        if self.repeats == 0 {
            return Err(Error::config("--repeats", "must be at least 1"));
        }
        if !(self.epsilon > 0.0 && self.epsilon <= 1.0) {
            return Err(Error::config("--epsilon", "must be in (0, 1]"));
        }
        if self.flatness_samples == 0 || self.hessian_iterations == 0 {
            return Err(Error::config(
                "--flatness-samples",
                "flatness needs samples and iterations",
            ));
        }
        Ok(())
    }
}

/// Mean and standard deviation (population) of repeated measurements.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Standard deviation over the draws (0 for one draw).
    pub std: f64,
}

impl Stat {
    /// Of `values` (empty: NaN-free zeros).
    pub fn of(values: &[f64]) -> Stat {
        if values.is_empty() {
            return Stat {
                mean: 0.0,
                std: 0.0,
            };
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Stat {
            mean,
            std: var.sqrt(),
        }
    }
}

/// One point of a curve.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// The perturbation's parameter (σ, sparsity, bits, rate).
    pub x: f64,
    /// Test accuracy (0..1) over the draws.
    pub accuracy: Stat,
    /// Mean cross-entropy over the draws (bit flips: not measured, 0).
    pub loss: Stat,
    /// Draws.
    pub draws: usize,
    /// Bit flips only: the fraction of draws the runtime refused to load (its checks caught the damage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<f64>,
    /// Bit flips only, the after-load case: of the draws that flipped at least one bit, the fraction that
    /// `Model::verify` caught when the same flips hit the loaded model's bytes (none flipped: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected: Option<f64>,
    /// Bit flips only: the draws that flipped at least one bit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faulty: Option<usize>,
}

/// Accuracy against one perturbation's strength, for one target.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// `noise-additive`, `noise-multiplicative`, `prune`, `quantize`, `cluster` or `bitflip`.
    pub analysis: String,
    /// A layer's name, or `model` for all weighted layers at once.
    pub target: String,
    /// What `x` is.
    pub parameter: String,
    /// The points, in the order of the settings.
    pub points: Vec<Point>,
}

/// Flatness of the loss around the trained weights, for one target.
#[derive(Debug, Clone, Serialize)]
pub struct Flatness {
    /// A layer's name, or `model`.
    pub target: String,
    /// Keskar's ε-sharpness, in percent: `100 · (max_{δ ∈ box} L(w + δ) − L(w)) / (1 + L(w))`.
    pub sharpness: f64,
    /// The largest eigenvalue of the loss Hessian restricted to the target's weights.
    pub top_eigenvalue: f64,
    /// Power iterations used.
    pub iterations: usize,
}

/// The whole analysis.
#[derive(Debug, Clone, Serialize)]
pub struct Sensitivity {
    /// Architecture name.
    pub model: String,
    /// Test samples the curves were measured on.
    pub samples: usize,
    /// Unperturbed test accuracy (0..1).
    pub accuracy: f64,
    /// Unperturbed test loss.
    pub loss: f64,
    /// The settings.
    pub settings: Settings,
    /// The curves.
    pub curves: Vec<Curve>,
    /// Flatness per target.
    pub flatness: Vec<Flatness>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Perturbs one tensor's values at strength `x`.
type Perturb<'a> = dyn FnMut(&mut [f32], f64, &mut ChaCha8Rng) -> Result<()> + 'a;

/// Batches of a dataset prepared once, for many evaluations and gradients of perturbed weights.
pub struct Evaluator {
    net: NetSpec,
    batches: Vec<(Tensor, Tensor)>,
    samples: usize,
}

/// Samples per batch.
const BATCH: usize = 1000;

impl Evaluator {
    /// The first `samples` (all if `None`) images of `data`, normalized as the model was trained.
    pub fn new(
        net: &NetSpec,
        norm: &Normalization,
        data: &Dataset,
        samples: Option<usize>,
    ) -> Result<Evaluator> {
        let n = samples.unwrap_or(data.count).min(data.count);
        if n == 0 {
            return Err(Error::config("--samples", "no samples to evaluate on"));
        }
        let indices: Vec<usize> = (0..n).collect();
        let batches = indices
            .chunks(BATCH)
            .map(|chunk| Ok(net::batch(net, data, norm, chunk)?))
            .collect::<Result<_>>()?;
        Ok(Evaluator {
            net: net.clone(),
            batches,
            samples: n,
        })
    }

    /// Samples evaluated on.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Accuracy (0..1) and mean cross-entropy of `params`.
    pub fn evaluate(&self, params: &Params) -> Result<(f64, f64)> {
        let tensors = net::constants(params)?;
        let (mut correct, mut loss) = (0usize, 0f64);
        for (x, y) in &self.batches {
            let (logits, _) = net::forward(&self.net, &tensors, x, Mode::Eval)?;
            let n = y.dims1()?;
            loss += f64::from(net::loss(Loss::CrossEntropy, &logits, y)?.to_scalar::<f32>()?)
                * n as f64;
            let labels = y.to_vec1::<u32>()?;
            correct += net::argmax(&logits)?
                .iter()
                .zip(&labels)
                .filter(|(p, t)| p == t)
                .count();
        }
        Ok((
            correct as f64 / self.samples as f64,
            loss / self.samples as f64,
        ))
    }

    /// Mean loss of `params` and its gradient with respect to the tensors `wrt` (indices into `params`).
    pub fn gradient(&self, params: &Params, wrt: &[usize]) -> Result<(f64, Vec<Vec<f32>>)> {
        let vars: Vec<Option<Var>> = params
            .tensors
            .iter()
            .enumerate()
            .map(|(i, p)| {
                wrt.contains(&i)
                    .then(|| Var::from_slice(&p.data, p.spec.shape.as_slice(), &Device::Cpu))
                    .transpose()
            })
            .collect::<candle_core::Result<_>>()?;
        let tensors: Vec<Tensor> = params
            .tensors
            .iter()
            .zip(&vars)
            .map(|(p, v)| match v {
                Some(v) => Ok(v.as_tensor().clone()),
                None => Ok(Tensor::from_slice(
                    &p.data,
                    p.spec.shape.as_slice(),
                    &Device::Cpu,
                )?),
            })
            .collect::<Result<_>>()?;
        let mut grads: Vec<Vec<f32>> = wrt
            .iter()
            .map(|&i| vec![0.0; params.tensors[i].data.len()])
            .collect();
        let mut loss_sum = 0f64;
        for (x, y) in &self.batches {
            let (logits, _) = net::forward(&self.net, &tensors, x, Mode::Eval)?;
            let n = y.dims1()?;
            let loss = net::loss(Loss::CrossEntropy, &logits, y)?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * n as f64;
            let store = loss.backward()?;
            let weight = n as f32 / self.samples as f32;
            for (g, &i) in grads.iter_mut().zip(wrt) {
                if let Some(v) = &vars[i] {
                    if let Some(t) = store.get(v.as_tensor()) {
                        for (a, b) in g.iter_mut().zip(t.flatten_all()?.to_vec1::<f32>()?) {
                            *a += weight * b;
                        }
                    }
                }
            }
        }
        Ok((loss_sum / self.samples as f64, grads))
    }
}

/// The weighted layers' weight tensors as (index, layer name), and the targets: each layer alone, then all.
fn targets(params: &Params) -> Vec<(String, Vec<usize>)> {
    let layers: Vec<(usize, String)> = weight_tensors(params).collect();
    let mut out: Vec<(String, Vec<usize>)> =
        layers.iter().map(|(i, n)| (n.clone(), vec![*i])).collect();
    out.push(("model".into(), layers.iter().map(|(i, _)| *i).collect()));
    out
}

/// Standard deviation of `w`.
fn std_of(w: &[f32]) -> f64 {
    Stat::of(&w.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()).std
}

/// Adds `σ·std(w)·z` to every weight.
pub fn add_noise(w: &mut [f32], sigma: f64, rng: &mut ChaCha8Rng) {
    let scale = sigma * std_of(w);
    for v in w.iter_mut() {
        let z: f64 = rng.sample(StandardNormal);
        *v += (scale * z) as f32;
    }
}

/// Multiplies every weight by `1 + σ·z`.
pub fn scale_noise(w: &mut [f32], sigma: f64, rng: &mut ChaCha8Rng) {
    for v in w.iter_mut() {
        let z: f64 = rng.sample(StandardNormal);
        *v *= (1.0 + sigma * z) as f32;
    }
}

/// Zeroes the `sparsity` fraction of `w` with the smallest magnitudes.
pub fn prune_smallest(w: &mut [f32], sparsity: f64) {
    let n = ((w.len() as f64) * sparsity).round() as usize;
    if n == 0 {
        return;
    }
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.sort_by(|&a, &b| w[a].abs().total_cmp(&w[b].abs()));
    for &i in order.iter().take(n) {
        w[i] = 0.0;
    }
}

/// Rounds `w` to `2^(bits−1) − 1` symmetric levels each side of zero, spaced by `max|w| / (2^(bits−1) − 1)`.
pub fn quantize_uniform(w: &mut [f32], bits: u32) {
    let levels = ((1u32 << (bits - 1)) - 1) as f32;
    let max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return;
    }
    let step = max / levels;
    for v in w.iter_mut() {
        *v = (*v / step).round().clamp(-levels, levels) * step;
    }
}

/// Replaces `w` by its nearest of `2^bits` k-means centroids (linear initialization, as Deep Compression).
pub fn share_weights(w: &mut [f32], bits: u32, seed: u64) -> Result<()> {
    let c = kmeans(w, 1 << bits, ClusterInit::Linear, seed)?;
    for (v, &a) in w.iter_mut().zip(&c.assignment) {
        *v = c.centroids[a as usize];
    }
    Ok(())
}

/// Flips each bit of `bytes[range]` for every range independently with probability `rate` (skipping ahead by
/// geometric gaps, so the cost follows the number of flips, not of bits). Returns the number of bits flipped.
pub fn flip_bits(
    bytes: &mut [u8],
    ranges: &[(usize, usize)],
    rate: f64,
    rng: &mut ChaCha8Rng,
) -> usize {
    if rate <= 0.0 {
        return 0;
    }
    let mut flips = 0;
    let log_q = (1.0 - rate.min(0.5)).ln();
    for &(start, len) in ranges {
        let bits = len.min(bytes.len().saturating_sub(start)) * 8;
        let mut bit = 0usize;
        loop {
            // Gap to the next flipped bit: Geometric(rate) by inversion.
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            let gap = (u.ln() / log_q).floor();
            if !gap.is_finite() || gap >= (bits - bit) as f64 {
                break;
            }
            bit += gap as usize;
            bytes[start + bit / 8] ^= 1 << (bit % 8);
            flips += 1;
            bit += 1;
            if bit >= bits {
                break;
            }
        }
    }
    flips
}

/// Rewrites a `.slim` file's checksum after its bytes were changed (header bytes 12..16: CRC-32 of the rest).
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= 16 {
        let crc = slimnet_runtime::crc32(&bytes[16..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The largest eigenvalue of a symmetric operator by power iteration: `hvp(v)` applies it to `v`. Stops when
/// the Rayleigh quotient changes by less than `tolerance` (relative) or after `iterations`. Returns it and the
/// iterations used. (Power iteration finds the eigenvalue of largest magnitude; for a loss Hessian at a trained
/// minimum that is the largest, positive one.)
pub fn top_eigenvalue(
    dim: usize,
    hvp: &mut dyn FnMut(&[f32]) -> Result<Vec<f32>>,
    iterations: usize,
    tolerance: f64,
    seed: u64,
) -> Result<(f64, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<f32> = (0..dim)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect();
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let n = norm(&v).max(f64::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x = (f64::from(*x) / n) as f32);
    let mut lambda = 0f64;
    for it in 1..=iterations.max(1) {
        let hv = hvp(&v)?;
        let next: f64 = v
            .iter()
            .zip(&hv)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let n = norm(&hv);
        if n == 0.0 {
            return Ok((0.0, it));
        }
        v = hv.iter().map(|&x| (f64::from(x) / n) as f32).collect();
        let done = it > 1 && (next - lambda).abs() <= tolerance * next.abs().max(1e-12);
        lambda = next;
        if done {
            return Ok((lambda, it));
        }
    }
    Ok((lambda, iterations.max(1)))
}

/// Writes `base + step·v` into the tensors `wrt` of `params` (v concatenated over them).
fn set_shifted(params: &mut Params, base: &Params, wrt: &[usize], v: &[f32], step: f32) {
    let mut at = 0;
    for &i in wrt {
        let (dst, src) = (&mut params.tensors[i].data, &base.tensors[i].data);
        for ((d, &s), &x) in dst.iter_mut().zip(src).zip(&v[at..]) {
            *d = s + step * x;
        }
        at += src.len();
    }
}

/// Flatness of `params` for the target `wrt`: ε-sharpness by projected sign-gradient ascent in the box (10
/// steps), and the top Hessian eigenvalue by power iteration on central differences of gradients, `Hv ≈
/// (∇L(w + hv) − ∇L(w − hv)) / 2h` (candle has no second derivatives), with `h` 1e-3 relative to `‖w‖`.
fn flatness(
    eval: &Evaluator,
    params: &Params,
    target: &str,
    wrt: &[usize],
    settings: &Settings,
) -> Result<Flatness> {
    let dim: usize = wrt.iter().map(|&i| params.tensors[i].data.len()).sum();
    let w: Vec<f32> = wrt
        .iter()
        .flat_map(|&i| params.tensors[i].data.iter().copied())
        .collect();
    let w_norm = w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let h = (1e-3 * w_norm.max(1.0)) as f32;
    let mut shifted = params.clone();
    let concat = |g: Vec<Vec<f32>>| g.into_iter().flatten().collect::<Vec<f32>>();
    let mut hvp = |v: &[f32]| -> Result<Vec<f32>> {
        set_shifted(&mut shifted, params, wrt, v, h);
        let (_, gp) = eval.gradient(&shifted, wrt)?;
        set_shifted(&mut shifted, params, wrt, v, -h);
        let (_, gm) = eval.gradient(&shifted, wrt)?;
        Ok(concat(gp)
            .iter()
            .zip(concat(gm))
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect())
    };
    let (top, iterations) = top_eigenvalue(
        dim,
        &mut hvp,
        settings.hessian_iterations,
        1e-3,
        settings.seed,
    )?;

    // ε-sharpness: maximize L(w + δ) over |δ_i| ≤ ε(|w_i| + 1) by signed gradient steps of a quarter box.
    let (_, base_loss) = eval.evaluate(params)?;
    let bound: Vec<f32> = w
        .iter()
        .map(|&x| (settings.epsilon as f32) * (x.abs() + 1.0))
        .collect();
    let mut delta = vec![0f32; dim];
    let mut current = params.clone();
    let mut worst = base_loss;
    for _ in 0..10 {
        set_shifted(&mut current, params, wrt, &delta, 1.0);
        let (loss, g) = eval.gradient(&current, wrt)?;
        worst = worst.max(loss);
        for ((d, g), &b) in delta.iter_mut().zip(concat(g)).zip(&bound) {
            *d = (*d + 0.25 * b * g.signum()).clamp(-b, b);
        }
    }
    set_shifted(&mut current, params, wrt, &delta, 1.0);
    let (_, loss) = eval.evaluate(&current)?;
    worst = worst.max(loss);
    Ok(Flatness {
        target: target.to_string(),
        sharpness: 100.0 * (worst - base_loss) / (1.0 + base_loss),
        top_eigenvalue: top,
        iterations,
    })
}

/// Runs the analyses. `test` gives the curves, `train` the flatness measures; `slim` (a `.slim` file's bytes)
/// is needed for bit flips, `model` for everything else. `progress` hears what is being measured.
pub fn analyze(
    model: Option<&Model>,
    slim: Option<&[u8]>,
    test: &Dataset,
    train: &Dataset,
    settings: &Settings,
    progress: &mut dyn FnMut(&str),
) -> Result<Sensitivity> {
    settings.validate()?;
    let start = Instant::now();
    let mut curves = Vec::new();
    let mut flat = Vec::new();
    let needs_model = settings.analyses.iter().any(|a| a.needs_float_model());
    let (mut accuracy, mut loss, mut samples, mut arch) = (0.0, 0.0, 0, String::new());
    if needs_model {
        let model = model.ok_or_else(|| {
            Error::config(
                "--analyses",
                "noise, prune, quantize, cluster and flatness need the safetensors model",
            )
        })?;
        arch = model.net.arch.clone();
        let eval = Evaluator::new(&model.net, &model.normalization, test, settings.samples)?;
        samples = eval.samples();
        (accuracy, loss) = eval.evaluate(&model.params)?;
        let params = &model.params;
        let targets = targets(params);
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        // One curve per target: `perturb(params, x, draw)` perturbs a fresh copy.
        let mut sweep = |name: &str,
                         parameter: &str,
                         xs: &[f64],
                         draws: usize,
                         perturb: &mut Perturb,
                         progress: &mut dyn FnMut(&str)|
         -> Result<Vec<Curve>> {
            let mut out = Vec::new();
            for (target, wrt) in &targets {
                progress(&format!("{name}: {target}"));
                let mut points = Vec::new();
                for &x in xs {
                    let (mut accs, mut losses) = (Vec::new(), Vec::new());
                    for _ in 0..draws {
                        let mut p = params.clone();
                        for &i in wrt {
                            perturb(&mut p.tensors[i].data, x, &mut rng)?;
                        }
                        let (a, l) = eval.evaluate(&p)?;
                        accs.push(a);
                        losses.push(l);
                    }
                    points.push(Point {
                        x,
                        accuracy: Stat::of(&accs),
                        loss: Stat::of(&losses),
                        draws,
                        refused: None,
                        detected: None,
                        faulty: None,
                    });
                }
                out.push(Curve {
                    analysis: name.to_string(),
                    target: target.clone(),
                    parameter: parameter.to_string(),
                    points,
                });
            }
            Ok(out)
        };
        for &analysis in &settings.analyses {
            match analysis {
                Analysis::Noise => {
                    curves.extend(sweep(
                        "noise-additive",
                        "σ (× the layer's weight std)",
                        &settings.sigmas,
                        settings.repeats,
                        &mut |w, s, rng| {
                            add_noise(w, s, rng);
                            Ok(())
                        },
                        progress,
                    )?);
                    curves.extend(sweep(
                        "noise-multiplicative",
                        "σ (relative)",
                        &settings.sigmas,
                        settings.repeats,
                        &mut |w, s, rng| {
                            scale_noise(w, s, rng);
                            Ok(())
                        },
                        progress,
                    )?);
                }
                Analysis::Prune => curves.extend(sweep(
                    "prune",
                    "sparsity",
                    &settings.sparsities,
                    1,
                    &mut |w, s, _| {
                        prune_smallest(w, s);
                        Ok(())
                    },
                    progress,
                )?),
                Analysis::Quantize => {
                    let xs: Vec<f64> = settings
                        .quantize_bits
                        .iter()
                        .map(|&b| f64::from(b))
                        .collect();
                    curves.extend(sweep(
                        "quantize",
                        "bits (uniform, symmetric)",
                        &xs,
                        1,
                        &mut |w, b, _| {
                            quantize_uniform(w, b as u32);
                            Ok(())
                        },
                        progress,
                    )?);
                }
                Analysis::Cluster => {
                    let xs: Vec<f64> = settings
                        .cluster_bits
                        .iter()
                        .map(|&b| f64::from(b))
                        .collect();
                    let seed = settings.seed;
                    curves.extend(sweep(
                        "cluster",
                        "bits (k-means, 2^bits shared values)",
                        &xs,
                        1,
                        &mut |w, b, _| share_weights(w, b as u32, seed),
                        progress,
                    )?);
                }
                Analysis::Flatness => {
                    let fe = Evaluator::new(
                        &model.net,
                        &model.normalization,
                        train,
                        Some(settings.flatness_samples),
                    )?;
                    for (target, wrt) in &targets {
                        progress(&format!("flatness: {target}"));
                        flat.push(flatness(&fe, params, target, wrt, settings)?);
                    }
                }
                Analysis::BitFlip => {}
            }
        }
    }
    if settings.analyses.contains(&Analysis::BitFlip) {
        let bytes = slim.ok_or_else(|| {
            Error::config(
                "--analyses",
                "bitflip runs the runtime on a .slim file: give one (the model, or --slim FILE)",
            )
        })?;
        let data = match settings.samples {
            Some(n) => test.slice(0, n.min(test.count)),
            None => test.clone(),
        };
        let (flips, base) = bitflip(bytes, model, &data, settings, !needs_model, progress)?;
        curves.extend(flips);
        if let Some(base) = base {
            (accuracy, samples) = (base, data.count);
        }
        if arch.is_empty() {
            arch = "slim".into();
        }
    }
    Ok(Sensitivity {
        model: arch,
        samples,
        accuracy,
        loss,
        settings: settings.clone(),
        curves,
        flatness: flat,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The bit-flip analysis of the `.slim` file `bytes` on `data`: a curve per operator, the whole model and the
/// whole file, at load (re-sealed, run by the runtime) and after load (`verify`'s detection); and, if `baseline`,
/// the intact file's accuracy. Layers are named as `model`'s when it is given.
fn bitflip(
    bytes: &[u8],
    model: Option<&Model>,
    data: &Dataset,
    settings: &Settings,
    baseline: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<Curve>, Option<f64>)> {
    let mut curves = Vec::new();
    let slim_model = slimnet_runtime::Model::from_bytes(bytes)
        .map_err(|e| Error::runtime("reading the .slim file", e))?;
    let path = if slim_model.has_integer() {
        NumericPath::Integer
    } else {
        NumericPath::F32
    };
    let mut ranges: Vec<(String, (usize, usize))> = (0..slim_model.op_count())
        .filter_map(|i| {
            slim_model
                .operator(i)?
                .stored_weights
                .map(|r| (format!("operator {i}"), r))
        })
        .collect();
    // Name the weighted layers as the float model does, when it is there.
    if let Some(m) = model {
        let names: Vec<String> = weight_tensors(&m.params).map(|(_, n)| n).collect();
        if names.len() == ranges.len() {
            for ((n, _), name) in ranges.iter_mut().zip(names) {
                *n = name;
            }
        }
    }
    let base = match baseline {
        true => Some(evaluate_slim(bytes, data, path)?.accuracy),
        false => None,
    };
    let mut targets: Vec<(String, Vec<(usize, usize)>)> =
        ranges.iter().map(|(n, r)| (n.clone(), vec![*r])).collect();
    targets.push(("model".into(), ranges.iter().map(|(_, r)| *r).collect()));
    // Every byte of the file (header, table, graph, input table, biases and quantization parameters too).
    targets.push(("file".into(), vec![(0, bytes.len())]));
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed ^ 0xB17F_11B5);
    for (target, rs) in &targets {
        progress(&format!("bitflip: {target}"));
        let mut points = Vec::new();
        for &rate in &settings.rates {
            let (mut accs, mut refused) = (Vec::new(), 0usize);
            let (mut faulty, mut detected) = (0usize, 0usize);
            for _ in 0..settings.repeats {
                let mut b = bytes.to_vec();
                // After load: the flips hit the loaded model's bytes, and `verify` must notice.
                if flip_bits(&mut b, rs, rate, &mut rng) > 0 {
                    faulty += 1;
                    detected += usize::from(slim_model.verify_image(&b).is_err());
                }
                // At load (with the CRC re-sealed, so that the structural checks face the damage alone),
                // or after load without a verify: what the damaged model computes.
                reseal(&mut b);
                match evaluate_slim(&b, data, path) {
                    Ok(e) => accs.push(e.accuracy),
                    Err(Error::Runtime { .. }) => refused += 1,
                    Err(e) => return Err(e),
                }
            }
            points.push(Point {
                x: rate,
                accuracy: Stat::of(&accs),
                loss: Stat::of(&[]),
                draws: settings.repeats,
                refused: Some(refused as f64 / settings.repeats as f64),
                detected: (faulty > 0).then(|| detected as f64 / faulty as f64),
                faulty: Some(faulty),
            });
        }
        curves.push(Curve {
            analysis: "bitflip".into(),
            target: target.clone(),
            parameter: "bit-error rate".into(),
            points,
        });
    }
    Ok((curves, base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_iteration_finds_the_top_eigenvalue_of_a_quadratic() {
        // L(w) = ½ wᵀAw with A = diag(5, 3, 1, 0.5) rotated: its Hessian is A, top eigenvalue 5.
        let diag = [5.0f32, 3.0, 1.0, 0.5];
        let (c, s) = (0.6f32, 0.8f32);
        let rot = |v: &[f32]| vec![c * v[0] - s * v[1], s * v[0] + c * v[1], v[2], v[3]];
        let rot_t = |v: &[f32]| vec![c * v[0] + s * v[1], -s * v[0] + c * v[1], v[2], v[3]];
        let mut hvp = |v: &[f32]| -> Result<Vec<f32>> {
            let u = rot_t(v);
            let d: Vec<f32> = u.iter().zip(&diag).map(|(a, b)| a * b).collect();
            Ok(rot(&d))
        };
        let (lambda, iterations) = top_eigenvalue(4, &mut hvp, 200, 1e-9, 7).unwrap();
        assert!((lambda - 5.0).abs() < 1e-3, "{lambda} after {iterations}");
    }

    #[test]
    fn bit_flips_at_rate_zero_change_nothing_and_at_a_rate_flip_as_many_as_expected() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let original = vec![0x5Au8; 125_000];
        let mut b = original.clone();
        let all = [(0, original.len())];
        assert_eq!(flip_bits(&mut b, &all, 0.0, &mut rng), 0);
        assert_eq!(b, original);
        // 1e6 bits at 1 %: 10,000 expected, standard deviation ≈ 99.5.
        let n = flip_bits(&mut b, &all, 0.01, &mut rng);
        assert!((9_600..=10_400).contains(&n), "{n} flips");
        let changed: u32 = b
            .iter()
            .zip(&original)
            .map(|(x, y)| (x ^ y).count_ones())
            .sum();
        assert_eq!(changed as usize, n);
        // Only inside the ranges.
        let mut b = original.clone();
        let n = flip_bits(&mut b, &[(1000, 100)], 0.5, &mut rng);
        assert!(n > 300 && n < 500, "{n}");
        assert!(b[..1000] == original[..1000] && b[1100..] == original[1100..]);
    }

    #[test]
    fn perturbations_do_what_they_say() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let w0: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.37).sin()).collect();
        let mut w = w0.clone();
        prune_smallest(&mut w, 0.3);
        assert_eq!(w.iter().filter(|&&v| v == 0.0).count(), 300);
        let mut w = w0.clone();
        quantize_uniform(&mut w, 3);
        let mut levels: Vec<i64> = w.iter().map(|v| (v * 1e6) as i64).collect();
        levels.sort();
        levels.dedup();
        assert!(levels.len() <= 7, "{} levels", levels.len());
        let mut w = w0.clone();
        share_weights(&mut w, 2, 1).unwrap();
        let mut shared: Vec<u32> = w.iter().map(|v| v.to_bits()).collect();
        shared.sort();
        shared.dedup();
        assert!(shared.len() <= 4);
        let mut w = w0.clone();
        add_noise(&mut w, 0.5, &mut rng);
        let d: Vec<f64> = w.iter().zip(&w0).map(|(a, b)| f64::from(a - b)).collect();
        let ratio = Stat::of(&d).std / std_of(&w0);
        assert!((ratio - 0.5).abs() < 0.05, "{ratio}");
    }

    #[test]
    fn noise_of_sigma_zero_leaves_the_weights_and_so_the_accuracy_unchanged() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let w0: Vec<f32> = (0..500).map(|i| ((i as f32) * 0.11).cos()).collect();
        let mut w = w0.clone();
        add_noise(&mut w, 0.0, &mut rng);
        assert_eq!(w, w0);
        scale_noise(&mut w, 0.0, &mut rng);
        assert_eq!(w, w0);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(parse_analyses("noise,bogus").is_err());
        assert_eq!(parse_analyses("all").unwrap().len(), 6);
        assert!(parse_list("0.1,-1", "--sigmas", check_sigma).is_err());
        assert!(parse_list("0,0.1", "--sigmas", check_sigma).is_ok());
        assert!(parse_list("0.1,1e-7", "--rates", check_rate).is_ok());
        assert!(parse_list("0.6", "--rates", check_rate).is_err());
        assert!(parse_list("1.0", "--sparsities", check_sparsity).is_err());
        let s = Settings {
            quantize_bits: vec![1],
            ..Settings::default()
        };
        assert!(s.validate().is_err());
    }
}
