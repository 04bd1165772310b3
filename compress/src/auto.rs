//! `compress --auto`: per-layer sparsities and bit widths chosen from the model's sensitivity curves, under an
//! accuracy budget on the validation split.
//!
//! 1. On the validation split, each weighted layer's accuracy is measured pruned (without retraining) at a grid
//!    of sparsities and weight-shared at each bit width: the layer's sensitivity curves.
//! 2. A tolerance τ (accuracy points lost by one layer without retraining) turns the curves into a plan: each
//!    layer gets the highest sparsity that loses at most τ, and the fewest bits (3 to 8) that lose at most τ/10
//!    (retraining recovers most of what pruning costs, and much less of what coarse sharing costs).
//! 3. Plans are compressed for real (the preset's retraining, sharing, fine-tuning, quantization, coding) from
//!    τ = 2 outwards: after a plan within the budget, a bolder one; after one over it, a more cautious one;
//!    until the direction changes or the list ends (past τ = 0: the τ = 0 plan with its sparsities scaled
//!    down and more bits, down to no pruning at 8 bits). The smallest file within the budget wins.
//!
//! The budget is `baseline validation accuracy − validation accuracy of the compressed weights`, in points.

use crate::cluster::BitWidth;
use crate::compressor::{compress, Compressed, Events, LayerBits, Settings};
use crate::error::{Error, Result};
use crate::prune::{weight_tensors, Sparsity, SparsityTarget};
use crate::sensitivity::{prune_smallest, share_weights, Evaluator};
use serde::Serialize;
use slimnet_models::data::Split;
use slimnet_models::Model;
use std::collections::BTreeMap;

/// Sparsities the curves are measured at.
const SPARSITIES: [f64; 13] = [
    0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99,
];
/// Bit widths the curves are measured at, and the plans may choose.
const BITS: [u32; 6] = [3, 4, 5, 6, 7, 8];
/// Tolerances, boldest first; the search starts at 2 points.
const TOLERANCES: [f64; 7] = [16.0, 8.0, 4.0, 2.0, 1.0, 0.5, 0.0];
/// Past the most cautious tolerance (whose plan may still be too bold where the curves are flat at 0, e.g. on a
/// small validation split), that plan's sparsities scaled down, with at least this many bits.
const FALLBACKS: [(f64, u32); 4] = [(0.75, 5), (0.5, 6), (0.25, 7), (0.0, 8)];

/// The candidate plans, boldest first: (τ, sparsity scale, minimum bits).
fn candidates() -> Vec<(f64, f64, u32)> {
    let mut c: Vec<(f64, f64, u32)> = TOLERANCES.iter().map(|&t| (t, 1.0, 1)).collect();
    c.extend(FALLBACKS.iter().map(|&(f, b)| (0.0, f, b)));
    c
}

/// One layer's sensitivity on the validation split (accuracy lost, in points, without retraining).
#[derive(Debug, Clone, Serialize)]
pub struct LayerCurves {
    /// Layer name.
    pub layer: String,
    /// Weights of the layer.
    pub weights: usize,
    /// (sparsity, points lost).
    pub prune: Vec<(f64, f64)>,
    /// (bits, points lost).
    pub cluster: Vec<(u32, f64)>,
}

/// One plan and what compressing with it gave.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The tolerance τ the plan comes from (points per layer, without retraining).
    pub tolerance: f64,
    /// The factor on the sparsities τ gives (1 but for the fallbacks past τ = 0).
    pub sparsity_scale: f64,
    /// Sparsity per layer.
    pub sparsity: BTreeMap<String, f64>,
    /// Bits per layer.
    pub bits: BTreeMap<String, u32>,
    /// Bytes of the file.
    pub bytes: usize,
    /// Validation accuracy lost against the dense model, in points.
    pub val_drop: f64,
    /// Test accuracy of the file (f32 path), for the record: the choice never looks at it.
    pub test_accuracy: f64,
    /// Within the budget.
    pub within_budget: bool,
}

/// What `--auto` did.
#[derive(Debug, Clone, Serialize)]
pub struct AutoLog {
    /// The budget, in validation accuracy points.
    pub budget: f64,
    /// The dense model's validation accuracy.
    pub baseline_val_accuracy: f64,
    /// The curves.
    pub curves: Vec<LayerCurves>,
    /// Every plan compressed, in the order tried.
    pub attempts: Vec<Attempt>,
    /// Index of the chosen attempt (the smallest within the budget; the most accurate if none is).
    pub chosen: usize,
}

/// Measures each weighted layer's curves on `split.val`.
pub fn curves(model: &Model, split: &Split, seed: u64) -> Result<(f64, Vec<LayerCurves>)> {
    let eval = Evaluator::new(&model.net, &model.normalization, &split.val, None)?;
    let (base, _) = eval.evaluate(&model.params)?;
    let mut out = Vec::new();
    for (i, layer) in weight_tensors(&model.params).collect::<Vec<_>>() {
        let mut prune = Vec::new();
        for &s in &SPARSITIES {
            let mut p = model.params.clone();
            prune_smallest(&mut p.tensors[i].data, s);
            prune.push((s, 100.0 * (base - eval.evaluate(&p)?.0)));
        }
        let mut cluster = Vec::new();
        for &b in &BITS {
            let mut p = model.params.clone();
            share_weights(&mut p.tensors[i].data, b, seed)?;
            cluster.push((b, 100.0 * (base - eval.evaluate(&p)?.0)));
        }
        out.push(LayerCurves {
            layer,
            weights: model.params.tensors[i].data.len(),
            prune,
            cluster,
        });
    }
    Ok((base, out))
}

/// The plan for tolerance `tau`: per layer the highest sparsity losing ≤ τ (0 if none) times `scale`, the fewest
/// bits losing ≤ τ/10 (8 if none) but at least `min_bits`, and never more clusters than weights kept.
pub fn plan(
    curves: &[LayerCurves],
    tau: f64,
    scale: f64,
    min_bits: u32,
) -> (BTreeMap<String, f64>, BTreeMap<String, u32>) {
    let mut sparsity = BTreeMap::new();
    let mut bits = BTreeMap::new();
    for c in curves {
        let s = c
            .prune
            .iter()
            .filter(|(_, drop)| *drop <= tau)
            .map(|(s, _)| *s)
            .fold(0.0, f64::max)
            * scale;
        let b = c
            .cluster
            .iter()
            .filter(|(_, drop)| *drop <= tau / 10.0)
            .map(|(b, _)| *b)
            .min()
            .unwrap_or(8)
            .max(min_bits);
        let kept = ((c.weights as f64) * (1.0 - s)).round().max(2.0) as usize;
        let b = b.min(kept.ilog2()).max(1);
        sparsity.insert(c.layer.clone(), s);
        bits.insert(c.layer.clone(), b);
    }
    (sparsity, bits)
}

fn settings_for(
    base: &Settings,
    sparsity: &BTreeMap<String, f64>,
    bits: &BTreeMap<String, u32>,
) -> Result<Settings> {
    let mut s = base.clone();
    s.sparsity = SparsityTarget::PerLayer(
        sparsity
            .iter()
            .map(|(k, &v)| Ok((k.clone(), Sparsity::new(v, "--auto")?)))
            .collect::<Result<_>>()?,
    );
    s.bits = LayerBits(
        bits.iter()
            .map(|(k, &b)| Ok((k.clone(), BitWidth::new(b, "--auto")?)))
            .collect::<Result<_>>()?,
    );
    Ok(s)
}

/// Searches for the smallest file within `budget` validation points of the dense model; `base` gives everything
/// but the sparsities and bit widths (normally the default preset).
pub fn auto_compress(
    model: &Model,
    split: &Split,
    base: &Settings,
    budget: f64,
    events: &mut dyn Events,
) -> Result<(Compressed, AutoLog)> {
    if !(budget.is_finite() && budget >= 0.0) {
        return Err(Error::config(
            "--max-accuracy-drop",
            "must be a number of points ≥ 0",
        ));
    }
    events.stage_start(
        "sensitivity",
        "measuring each layer's curves on the validation split",
    );
    let (baseline, curves) = curves(model, split, base.seed)?;
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut results: Vec<Compressed> = Vec::new();
    let plans = candidates();
    let mut i = 3;
    let mut direction: Option<bool> = None; // Some(true): getting bolder.
    loop {
        let (tau, scale, min_bits) = plans[i];
        let (sparsity, bits) = plan(&curves, tau, scale, min_bits);
        // Two tolerances may give the same plan: compress it once, and judge it by that attempt.
        let same = |a: &Attempt| a.sparsity == sparsity && a.bits == bits;
        let k = match attempts.iter().position(same) {
            Some(k) => k,
            None => {
                events.stage_start(
                    "auto",
                    &format!("τ = {tau} points: sparsity {sparsity:?}, bits {bits:?}"),
                );
                let settings = settings_for(base, &sparsity, &bits)?;
                let c = compress(model, split, &settings, events)?;
                let val = c
                    .report
                    .stages
                    .last()
                    .and_then(|s| s.val_accuracy)
                    .unwrap_or(0.0);
                let val_drop = 100.0 * (baseline - val);
                attempts.push(Attempt {
                    tolerance: tau,
                    sparsity_scale: scale,
                    sparsity,
                    bits,
                    bytes: c.report.bytes,
                    val_drop,
                    test_accuracy: c.report.accuracy,
                    within_budget: val_drop <= budget + 1e-9,
                });
                results.push(c);
                attempts.len() - 1
            }
        };
        // Within the budget: try bolder; over it: more cautious.
        let bolder = attempts[k].within_budget;
        if direction.is_some_and(|d| d != bolder) {
            break;
        }
        direction = Some(bolder);
        match (bolder, i) {
            (true, 0) => break,
            (true, _) => i -= 1,
            (false, j) if j + 1 == plans.len() => break,
            (false, _) => i += 1,
        }
    }
    let chosen = attempts
        .iter()
        .enumerate()
        .filter(|(_, a)| a.within_budget)
        .min_by_key(|(_, a)| a.bytes)
        .map(|(i, _)| i)
        .or_else(|| {
            attempts
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.val_drop.total_cmp(&b.1.val_drop))
                .map(|(i, _)| i)
        })
        .ok_or_else(|| Error::config("--auto", "no plan was tried"))?;
    if !attempts[chosen].within_budget {
        events.warning(&format!(
            "no plan kept the validation accuracy within {budget} points; the closest lost {:.2}",
            attempts[chosen].val_drop
        ));
    }
    let compressed = results.swap_remove(chosen);
    Ok((
        compressed,
        AutoLog {
            budget,
            baseline_val_accuracy: baseline,
            curves,
            attempts,
            chosen,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_the_curves() {
        let c = vec![
            LayerCurves {
                layer: "a".into(),
                weights: 1000,
                prune: vec![(0.5, 0.0), (0.9, 1.0), (0.99, 20.0)],
                cluster: vec![(3, 2.0), (4, 0.05), (5, 0.0)],
            },
            LayerCurves {
                layer: "b".into(),
                weights: 100,
                prune: vec![(0.5, 3.0), (0.9, 30.0)],
                cluster: vec![(3, 50.0)],
            },
        ];
        let (s, b) = plan(&c, 2.0, 1.0, 1);
        assert_eq!((s["a"], s["b"]), (0.9, 0.0));
        // b keeps all 100 weights: at most 6 bits (64 clusters), not the 8 its curve asks.
        assert_eq!((b["a"], b["b"]), (4, 6));
        let (s, b) = plan(&c, 2.0, 0.5, 5);
        assert_eq!((s["a"], b["a"]), (0.45, 5));
        let (s, b) = plan(&c, 40.0, 1.0, 1);
        assert_eq!((s["a"], s["b"]), (0.99, 0.9));
        // 10 weights kept of a: 3 bits (8 clusters) at most; 10 of b: 3 bits, not the 8 its curve asks.
        assert_eq!((b["a"], b["b"]), (3, 3));
    }
}
