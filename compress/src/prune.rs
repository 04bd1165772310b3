//! Magnitude pruning (Han et al. 2015): the smallest weights of each layer, or of the whole network against one
//! global threshold, are removed; iterative pruning raises the sparsity in rounds following a schedule (Zhu & Gupta
//! 2017's cubic ramp, or equal steps) and retrains between rounds. While retraining, [`MaskProjection`] zeroes the
//! gradients of pruned weights and holds them at zero, through the trainer's projection hook.

use crate::error::{Error, Result};
use serde::Serialize;
use slimnet_models::train::StepContext;
use slimnet_models::{NetSpec, Params, Projection, Role};
use std::collections::BTreeMap;
use std::fmt;

/// The fraction of a layer's weights removed, in [0, 1).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
pub struct Sparsity(f64);

impl Sparsity {
    /// No pruning.
    pub const NONE: Sparsity = Sparsity(0.0);

    /// A sparsity; `flag` names the setting in the error.
    pub fn new(value: f64, flag: &'static str) -> Result<Sparsity> {
        if (0.0..1.0).contains(&value) {
            Ok(Sparsity(value))
        } else {
            Err(Error::config(
                flag,
                format!("sparsity must be in [0, 1), got {value}"),
            ))
        }
    }

    /// The fraction removed.
    pub fn get(self) -> f64 {
        self.0
    }

    /// The fraction kept, `1 − sparsity`.
    pub fn keep(self) -> f64 {
        1.0 - self.0
    }

    /// How many of `n` weights are pruned (rounded to nearest, at least one weight kept).
    pub fn pruned_of(self, n: usize) -> usize {
        ((n as f64 * self.0).round() as usize).min(n.saturating_sub(1))
    }
}

impl fmt::Display for Sparsity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} %", self.0 * 100.0)
    }
}

/// How much to prune.
#[derive(Debug, Clone, PartialEq)]
pub enum SparsityTarget {
    /// One magnitude threshold over all weighted layers, chosen so that the whole network reaches this sparsity.
    Global(Sparsity),
    /// A sparsity per layer (by name, e.g. `fc1`); layers not listed are not pruned.
    PerLayer(BTreeMap<String, Sparsity>),
}

impl SparsityTarget {
    /// Parses `0.9` (global) or `fc1=0.92,fc2=0.91` (per layer), checking layer names against `net`.
    pub fn parse(text: &str, net: &NetSpec) -> Result<SparsityTarget> {
        const FLAG: &str = "--sparsity";
        if !text.contains('=') {
            let v: f64 = text.trim().parse().map_err(|_| {
                Error::config(FLAG, format!("`{text}` is not a number or a list NAME=S,…"))
            })?;
            return Ok(SparsityTarget::Global(Sparsity::new(v, FLAG)?));
        }
        let mut map = BTreeMap::new();
        for item in text.split(',') {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| Error::config(FLAG, format!("`{item}` is not NAME=S")))?;
            let name = name.trim();
            check_layer(net, name, FLAG)?;
            let v: f64 = value
                .trim()
                .parse()
                .map_err(|_| Error::config(FLAG, format!("`{value}` is not a number")))?;
            if map
                .insert(name.to_string(), Sparsity::new(v, FLAG)?)
                .is_some()
            {
                return Err(Error::config(FLAG, format!("{name} is given twice")));
            }
        }
        Ok(SparsityTarget::PerLayer(map))
    }

    /// The same target with every sparsity scaled by `fraction` (∈ [0, 1]): one round of an iterative schedule.
    pub fn scaled(&self, fraction: f64) -> SparsityTarget {
        let f = |s: Sparsity| Sparsity(s.0 * fraction.clamp(0.0, 1.0));
        match self {
            SparsityTarget::Global(s) => SparsityTarget::Global(f(*s)),
            SparsityTarget::PerLayer(m) => {
                SparsityTarget::PerLayer(m.iter().map(|(k, v)| (k.clone(), f(*v))).collect())
            }
        }
    }

    /// The same target with every sparsity multiplied by `factor` (≥ 0), capped at 99.5 %: a more or less
    /// aggressive variant of a preset.
    pub fn multiplied(&self, factor: f64) -> SparsityTarget {
        let f = |s: Sparsity| Sparsity((s.0 * factor.max(0.0)).min(0.995));
        match self {
            SparsityTarget::Global(s) => SparsityTarget::Global(f(*s)),
            SparsityTarget::PerLayer(m) => {
                SparsityTarget::PerLayer(m.iter().map(|(k, v)| (k.clone(), f(*v))).collect())
            }
        }
    }

    /// Whether anything is pruned at all.
    pub fn is_none(&self) -> bool {
        match self {
            SparsityTarget::Global(s) => s.0 == 0.0,
            SparsityTarget::PerLayer(m) => m.values().all(|s| s.0 == 0.0),
        }
    }
}

/// Checks that `name` is a weighted layer of `net`.
pub fn check_layer(net: &NetSpec, name: &str, flag: &'static str) -> Result<()> {
    if net.layers.iter().any(|l| l.name() == Some(name)) {
        Ok(())
    } else {
        let names: Vec<&str> = net.layers.iter().filter_map(|l| l.name()).collect();
        Err(Error::config(
            flag,
            format!(
                "the model has no layer `{name}` (its layers: {})",
                names.join(", ")
            ),
        ))
    }
}

/// How the sparsity rises over the rounds of iterative pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneSchedule {
    /// Zhu & Gupta's cubic ramp: round r of R reaches `s·(1 − (1 − r/R)³)`, pruning hard early while the network
    /// has redundancy and gently at the end.
    Cubic,
    /// Equal steps: round r of R reaches `s·r/R`.
    Linear,
}

impl PruneSchedule {
    /// The fraction of the final sparsity reached after `round` (1-based) of `rounds`.
    pub fn fraction(self, round: usize, rounds: usize) -> f64 {
        let t = round as f64 / rounds.max(1) as f64;
        match self {
            PruneSchedule::Cubic => 1.0 - (1.0 - t).powi(3),
            PruneSchedule::Linear => t,
        }
    }
}

impl std::str::FromStr for PruneSchedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cubic" => Ok(PruneSchedule::Cubic),
            "linear" | "steps" => Ok(PruneSchedule::Linear),
            _ => Err(Error::config(
                "--prune-schedule",
                format!("`{s}` is not a schedule (cubic, linear)"),
            )),
        }
    }
}

/// Which weights of one layer survive.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerMask {
    /// Layer name.
    pub layer: String,
    /// Index of the layer's weight tensor in [`Params::tensors`].
    pub tensor: usize,
    /// `true` for kept weights, in the tensor's row-major order.
    pub keep: Vec<bool>,
}

impl LayerMask {
    /// Weights kept.
    pub fn kept(&self) -> usize {
        self.keep.iter().filter(|&&k| k).count()
    }
}

/// The masks of every weighted layer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Masks {
    /// One per weighted layer, in network order.
    pub layers: Vec<LayerMask>,
}

impl Masks {
    /// Masks that keep everything.
    pub fn full(params: &Params) -> Masks {
        Masks {
            layers: weight_tensors(params)
                .map(|(i, layer)| LayerMask {
                    layer,
                    tensor: i,
                    keep: vec![true; params.tensors[i].data.len()],
                })
                .collect(),
        }
    }

    /// Magnitude masks reaching `target` on `params`. Weights already pruned (zero) stay pruned, since their
    /// magnitude is the smallest; ties at the threshold are broken by position so the count is exact.
    pub fn magnitude(params: &Params, target: &SparsityTarget) -> Masks {
        let mut masks = Masks::full(params);
        match target {
            SparsityTarget::PerLayer(map) => {
                for m in &mut masks.layers {
                    if let Some(s) = map.get(&m.layer) {
                        let w = &params.tensors[m.tensor].data;
                        prune_smallest(w, s.pruned_of(w.len()), &mut m.keep);
                    }
                }
            }
            SparsityTarget::Global(s) => {
                // One threshold: rank every weight of every layer together.
                let mut all: Vec<(f32, usize, usize)> = masks
                    .layers
                    .iter()
                    .enumerate()
                    .flat_map(|(l, m)| {
                        params.tensors[m.tensor]
                            .data
                            .iter()
                            .enumerate()
                            .map(move |(i, w)| (w.abs(), l, i))
                    })
                    .collect();
                let n = s.pruned_of(all.len());
                if n > 0 {
                    all.select_nth_unstable_by(n - 1, |a, b| a.0.total_cmp(&b.0));
                    for &(_, l, i) in &all[..n] {
                        masks.layers[l].keep[i] = false;
                    }
                }
                // Never empty a layer entirely: keep its largest weight.
                for m in &mut masks.layers {
                    if !m.keep.iter().any(|&k| k) {
                        let w = &params.tensors[m.tensor].data;
                        if let Some((i, _)) = w
                            .iter()
                            .enumerate()
                            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                        {
                            m.keep[i] = true;
                        }
                    }
                }
            }
        }
        masks
    }

    /// Zeroes every pruned weight of `params`.
    pub fn apply(&self, params: &mut Params) {
        for m in &self.layers {
            for (w, &k) in params.tensors[m.tensor].data.iter_mut().zip(&m.keep) {
                if !k {
                    *w = 0.0;
                }
            }
        }
    }

    /// Weights kept over all layers, and all weights.
    pub fn totals(&self) -> (usize, usize) {
        self.layers
            .iter()
            .fold((0, 0), |(k, n), m| (k + m.kept(), n + m.keep.len()))
    }

    /// The mask of layer `name`.
    pub fn get(&self, name: &str) -> Option<&LayerMask> {
        self.layers.iter().find(|m| m.layer == name)
    }
}

/// Clears `keep` for the `n` smallest-magnitude weights of `w`.
fn prune_smallest(w: &[f32], n: usize, keep: &mut [bool]) {
    if n == 0 {
        return;
    }
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.select_nth_unstable_by(n - 1, |&a, &b| {
        w[a].abs().total_cmp(&w[b].abs()).then(a.cmp(&b))
    });
    for &i in &order[..n] {
        keep[i] = false;
    }
}

/// `(tensor index, layer name)` of every weight tensor.
pub fn weight_tensors(params: &Params) -> impl Iterator<Item = (usize, String)> + '_ {
    params
        .tensors
        .iter()
        .enumerate()
        .filter(|(_, p)| p.spec.role == Role::Weight)
        .map(|(i, p)| {
            let layer = p.spec.name.strip_suffix(".weight").unwrap_or(&p.spec.name);
            (i, layer.to_string())
        })
}

/// Holds pruned weights at zero while retraining: their gradients are zeroed before the update and the weights
/// re-zeroed after it (the optimizer's momentum or L2 terms could otherwise move them).
pub struct MaskProjection<'a> {
    /// The masks to hold.
    pub masks: &'a Masks,
}

impl Projection for MaskProjection<'_> {
    fn project_gradients(&mut self, _ctx: &StepContext, _params: &Params, grads: &mut [Vec<f32>]) {
        for m in &self.masks.layers {
            for (g, &k) in grads[m.tensor].iter_mut().zip(&m.keep) {
                if !k {
                    *g = 0.0;
                }
            }
        }
    }

    fn project_parameters(&mut self, _ctx: &StepContext, params: &mut Params) {
        self.masks.apply(params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimnet_models::Shape;

    fn net() -> NetSpec {
        NetSpec::parse("mlp:8", Shape::image(2, 2), 2, false).unwrap()
    }

    #[test]
    fn per_layer_pruning_removes_the_smallest_exactly() {
        let net = net();
        let mut params = Params::init(&net, 3);
        let target = SparsityTarget::parse("fc1=0.75", &net).unwrap();
        let masks = Masks::magnitude(&params, &target);
        let m = masks.get("fc1").unwrap();
        assert_eq!(m.kept(), 8); // 32 weights, 24 pruned
        let w = &params.get("fc1.weight").unwrap().data;
        let smallest_kept = w
            .iter()
            .zip(&m.keep)
            .filter(|(_, &k)| k)
            .map(|(v, _)| v.abs())
            .fold(f32::INFINITY, f32::min);
        let largest_pruned = w
            .iter()
            .zip(&m.keep)
            .filter(|(_, &k)| !k)
            .map(|(v, _)| v.abs())
            .fold(0.0, f32::max);
        assert!(smallest_kept >= largest_pruned);
        assert_eq!(
            masks.get("fc2").unwrap().kept(),
            16,
            "fc2 not listed: untouched"
        );
        masks.apply(&mut params);
        let zeros = params
            .get("fc1.weight")
            .unwrap()
            .data
            .iter()
            .filter(|v| **v == 0.0)
            .count();
        assert_eq!(zeros, 24);
    }

    #[test]
    fn global_pruning_reaches_the_overall_sparsity_with_one_threshold() {
        let net = net();
        let params = Params::init(&net, 5);
        let masks = Masks::magnitude(&params, &SparsityTarget::parse("0.5", &net).unwrap());
        let (kept, total) = masks.totals();
        assert_eq!((kept, total), (24, 48));
        let magnitudes = |keep: bool| -> Vec<f32> {
            let mut out = Vec::new();
            for m in &masks.layers {
                for (v, &k) in params.tensors[m.tensor].data.iter().zip(&m.keep) {
                    if k == keep {
                        out.push(v.abs());
                    }
                }
            }
            out
        };
        let min_kept = magnitudes(true).into_iter().fold(f32::INFINITY, f32::min);
        let max_pruned = magnitudes(false).into_iter().fold(0.0, f32::max);
        assert!(min_kept >= max_pruned);
    }

    #[test]
    fn schedules_end_at_the_target_and_cubic_front_loads() {
        assert_eq!(PruneSchedule::Cubic.fraction(4, 4), 1.0);
        assert_eq!(PruneSchedule::Linear.fraction(2, 4), 0.5);
        assert!(PruneSchedule::Cubic.fraction(1, 4) > PruneSchedule::Linear.fraction(1, 4));
    }

    #[test]
    fn bad_settings_are_refused_with_the_flag() {
        let net = net();
        for bad in ["1.0", "-0.1", "fc9=0.5", "fc1=x", "fc1=0.5,fc1=0.6", "nope"] {
            let e = SparsityTarget::parse(bad, &net).unwrap_err().to_string();
            assert!(e.starts_with("--sparsity"), "{bad}: {e}");
        }
    }
}
