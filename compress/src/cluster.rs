//! Weight sharing (Han et al. 2016, §3): the kept weights of each layer are clustered with one-dimensional k-means
//! into `2^b` shared values, then the shared values are fine-tuned ("trained quantization"): the gradients of all
//! weights in a cluster are summed into its centroid, so the weights move together and stay tied.
//!
//! k-means is written here rather than taken from a crate: the data are scalars, where sorting once makes every
//! Lloyd step a merge over sorted values (no distance matrix), and the paper's initializations (linear, density)
//! are not offered by the general-purpose crates.

use crate::error::{Error, Result};
use crate::prune::Masks;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use slimnet_models::train::StepContext;
use slimnet_models::{Params, Projection};
use std::fmt;

/// Bits per cluster index (1..=8): a layer shares `2^b` values at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BitWidth(u8);

impl BitWidth {
    /// A bit width; `flag` names the setting in the error.
    pub fn new(bits: u32, flag: &'static str) -> Result<BitWidth> {
        match u8::try_from(bits) {
            Ok(b @ 1..=8) => Ok(BitWidth(b)),
            _ => Err(Error::config(
                flag,
                format!("bits must be in 1..=8, got {bits}"),
            )),
        }
    }

    /// The number of bits.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The number of shared values, `2^b`.
    pub fn clusters(self) -> usize {
        1 << self.0
    }
}

impl fmt::Display for BitWidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bits", self.0)
    }
}

/// Where k-means starts (Han et al. compare the first three; linear wins because it keeps the rare large weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterInit {
    /// Centroids evenly spaced between the smallest and largest kept weight.
    Linear,
    /// Centroids drawn at random among the kept weights (Forgy).
    Random,
    /// Centroids evenly spaced in the weights' cumulative distribution (quantiles).
    Density,
    /// k-means++: each next centroid drawn with probability proportional to the squared distance to the nearest.
    KMeansPlusPlus,
}

impl std::str::FromStr for ClusterInit {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(ClusterInit::Linear),
            "random" => Ok(ClusterInit::Random),
            "density" => Ok(ClusterInit::Density),
            "kmeans++" | "k-means++" => Ok(ClusterInit::KMeansPlusPlus),
            _ => Err(Error::config(
                "--cluster-init",
                format!("`{s}` is not an initialization (linear, random, density, kmeans++)"),
            )),
        }
    }
}

/// The result of clustering one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Clusters {
    /// The shared values, ascending; empty clusters are dropped.
    pub centroids: Vec<f32>,
    /// The cluster of each input value.
    pub assignment: Vec<u32>,
}

/// One-dimensional k-means of `values` into at most `k` clusters. Deterministic in `seed`.
pub fn kmeans(values: &[f32], k: usize, init: ClusterInit, seed: u64) -> Result<Clusters> {
    if values.is_empty() || k == 0 {
        return Err(Error::config("--bits", "nothing to cluster"));
    }
    let mut sorted: Vec<f32> = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let mut c = initial_centroids(&sorted, k, init, seed);
    c.sort_by(f32::total_cmp);
    // Prefix sums make each cluster's mean O(1) once its boundaries in `sorted` are known.
    let mut prefix = Vec::with_capacity(sorted.len() + 1);
    prefix.push(0f64);
    for v in &sorted {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + f64::from(*v));
    }
    for _ in 0..300 {
        let bounds = boundaries(&sorted, &c);
        let mut next = c.clone();
        for (j, w) in bounds.windows(2).enumerate() {
            if w[1] > w[0] {
                next[j] = ((prefix[w[1]] - prefix[w[0]]) / (w[1] - w[0]) as f64) as f32;
            }
        }
        let moved = next.iter().zip(&c).any(|(a, b)| a != b);
        c = next;
        c.sort_by(f32::total_cmp);
        if !moved {
            break;
        }
    }
    // Drop empty clusters, then assign each value its nearest centroid.
    let bounds = boundaries(&sorted, &c);
    let centroids: Vec<f32> = c
        .iter()
        .zip(bounds.windows(2))
        .filter(|(_, w)| w[1] > w[0])
        .map(|(v, _)| *v)
        .collect();
    let assignment = values.iter().map(|&v| nearest(&centroids, v)).collect();
    Ok(Clusters {
        centroids,
        assignment,
    })
}

/// Index of the centroid nearest to `v` in ascending `centroids`.
pub fn nearest(centroids: &[f32], v: f32) -> u32 {
    let i = centroids.partition_point(|&c| c < v);
    let best = if i == 0 {
        0
    } else if i == centroids.len() || v - centroids[i - 1] <= centroids[i] - v {
        i - 1
    } else {
        i
    };
    best as u32
}

/// For ascending centroids, the start of each cluster in `sorted` (values at or below the midpoint between two
/// centroids go to the lower one), plus `sorted.len()`.
fn boundaries(sorted: &[f32], c: &[f32]) -> Vec<usize> {
    let mut b = Vec::with_capacity(c.len() + 1);
    b.push(0);
    for w in c.windows(2) {
        let mid = (w[0] + w[1]) / 2.0;
        b.push(sorted.partition_point(|&v| v <= mid));
    }
    b.push(sorted.len());
    b
}

fn initial_centroids(sorted: &[f32], k: usize, init: ClusterInit, seed: u64) -> Vec<f32> {
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    let n = sorted.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match init {
        ClusterInit::Linear => {
            if k == 1 {
                return vec![(lo + hi) / 2.0];
            }
            (0..k)
                .map(|i| lo + (hi - lo) * i as f32 / (k - 1) as f32)
                .collect()
        }
        ClusterInit::Density => (0..k)
            .map(|i| sorted[((i as f64 + 0.5) / k as f64 * n as f64) as usize % n])
            .collect(),
        ClusterInit::Random => {
            let picks = rand::seq::index::sample(&mut rng, n, k.min(n));
            picks.iter().map(|i| sorted[i]).collect()
        }
        ClusterInit::KMeansPlusPlus => {
            let mut c = vec![sorted[rng.random_range(0..n)]];
            let mut d2: Vec<f64> = sorted.iter().map(|v| f64::from(v - c[0]).powi(2)).collect();
            while c.len() < k {
                let total: f64 = d2.iter().sum();
                if total <= 0.0 {
                    break;
                }
                let mut r = rng.random_range(0.0..total);
                let mut pick = n - 1;
                for (i, d) in d2.iter().enumerate() {
                    if r < *d {
                        pick = i;
                        break;
                    }
                    r -= d;
                }
                let v = sorted[pick];
                c.push(v);
                for (d, x) in d2.iter_mut().zip(sorted) {
                    *d = d.min(f64::from(x - v).powi(2));
                }
            }
            c
        }
    }
}

/// A clustered layer: which weights are kept and which shared value each uses.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedLayer {
    /// Layer name.
    pub layer: String,
    /// Index of the weight tensor in [`Params::tensors`].
    pub tensor: usize,
    /// Row-major positions of the kept weights, ascending.
    pub positions: Vec<usize>,
    /// Cluster of each kept weight.
    pub assignment: Vec<u32>,
    /// The shared values.
    pub centroids: Vec<f32>,
}

impl SharedLayer {
    /// Clusters the kept weights of the masked layer `layer` (`bits` per index).
    pub fn cluster(
        params: &Params,
        masks: &Masks,
        layer: &str,
        bits: BitWidth,
        init: ClusterInit,
        seed: u64,
    ) -> Result<SharedLayer> {
        let m = masks
            .get(layer)
            .ok_or_else(|| Error::config("--bits", format!("no weighted layer `{layer}`")))?;
        let w = &params.tensors[m.tensor].data;
        let positions: Vec<usize> = (0..w.len()).filter(|&i| m.keep[i]).collect();
        let kept: Vec<f32> = positions.iter().map(|&i| w[i]).collect();
        if bits.clusters() > kept.len() {
            return Err(Error::config(
                "--bits",
                format!(
                    "{layer}: {} clusters ({bits}) but only {} weights kept: lower the bits or the sparsity",
                    bits.clusters(),
                    kept.len()
                ),
            ));
        }
        let Clusters {
            centroids,
            assignment,
        } = kmeans(&kept, bits.clusters(), init, seed)?;
        Ok(SharedLayer {
            layer: layer.to_string(),
            tensor: m.tensor,
            positions,
            assignment,
            centroids,
        })
    }

    /// Writes the shared values into the weight tensor (pruned weights zero).
    pub fn apply(&self, params: &mut Params) {
        let w = &mut params.tensors[self.tensor].data;
        w.iter_mut().for_each(|v| *v = 0.0);
        for (&p, &a) in self.positions.iter().zip(&self.assignment) {
            w[p] = self.centroids[a as usize];
        }
    }

    /// Reads the centroids back from tied weights (after fine-tuning): each cluster's mean.
    pub fn read_centroids(&mut self, params: &Params) {
        let w = &params.tensors[self.tensor].data;
        let mut sum = vec![0f64; self.centroids.len()];
        let mut count = vec![0usize; self.centroids.len()];
        for (&p, &a) in self.positions.iter().zip(&self.assignment) {
            sum[a as usize] += f64::from(w[p]);
            count[a as usize] += 1;
        }
        for ((c, s), n) in self.centroids.iter_mut().zip(sum).zip(count) {
            if n > 0 {
                *c = (s / n as f64) as f32;
            }
        }
    }
}

/// Centroid fine-tuning through the trainer: every weight of a cluster receives the sum of its cluster's
/// gradients (the centroid's gradient, Han et al. eq. 3), pruned weights receive none, so an optimizer that treats
/// elements alike (all of slimnet's do) moves a cluster's weights identically; after each step the weights are
/// re-tied to their cluster's mean, which removes any floating-point drift.
pub struct TieProjection<'a> {
    /// The clustered layers.
    pub layers: &'a mut [SharedLayer],
}

impl Projection for TieProjection<'_> {
    fn project_gradients(&mut self, _ctx: &StepContext, _params: &Params, grads: &mut [Vec<f32>]) {
        for l in self.layers.iter() {
            let g = &mut grads[l.tensor];
            let mut sum = vec![0f32; l.centroids.len()];
            for (&p, &a) in l.positions.iter().zip(&l.assignment) {
                sum[a as usize] += g[p];
            }
            g.iter_mut().for_each(|v| *v = 0.0);
            for (&p, &a) in l.positions.iter().zip(&l.assignment) {
                g[p] = sum[a as usize];
            }
        }
    }

    fn project_parameters(&mut self, _ctx: &StepContext, params: &mut Params) {
        for l in self.layers.iter_mut() {
            l.read_centroids(params);
            l.apply(params);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmeans_finds_well_separated_groups_with_every_initialization() {
        let mut values = Vec::new();
        for (center, n) in [(-1.0f32, 50), (0.1, 80), (2.0, 30)] {
            for i in 0..n {
                values.push(center + (i as f32 - n as f32 / 2.0) * 1e-3);
            }
        }
        for init in [
            ClusterInit::Linear,
            ClusterInit::Random,
            ClusterInit::Density,
            ClusterInit::KMeansPlusPlus,
        ] {
            let c = kmeans(&values, 3, init, 7).unwrap();
            // Every initialization ends at a fixed point of Lloyd's iteration: each centroid is its members' mean.
            for (j, &centroid) in c.centroids.iter().enumerate() {
                let members: Vec<f32> = values
                    .iter()
                    .zip(&c.assignment)
                    .filter(|(_, &a)| a as usize == j)
                    .map(|(v, _)| *v)
                    .collect();
                let mean = members.iter().sum::<f32>() / members.len() as f32;
                assert!(
                    (mean - centroid).abs() < 1e-5,
                    "{init:?}: {centroid} vs {mean}"
                );
            }
            // Random (Forgy) starts may settle in a local optimum; the others find the three groups.
            if init == ClusterInit::Random {
                continue;
            }
            assert_eq!(c.centroids.len(), 3, "{init:?}");
            for (got, want) in c.centroids.iter().zip([-1.0, 0.1, 2.0]) {
                assert!((got - want).abs() < 2e-3, "{init:?}: {got} vs {want}");
            }
            assert!(c.assignment[..50].iter().all(|&a| a == 0));
            assert!(c.assignment[130..].iter().all(|&a| a == 2));
        }
    }

    #[test]
    fn kmeans_minimizes_error_better_than_its_start() {
        let values: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let c = kmeans(&values, 4, ClusterInit::Linear, 0).unwrap();
        // Uniform data: optimal 4-means centroids sit at 1/8, 3/8, 5/8, 7/8.
        for (got, want) in c.centroids.iter().zip([0.125, 0.375, 0.625, 0.875]) {
            assert!((got - want).abs() < 2e-3, "{got} vs {want}");
        }
    }

    #[test]
    fn empty_clusters_are_dropped_and_nearest_is_exact() {
        let c = kmeans(&[1.0, 1.0, 1.0, 5.0], 4, ClusterInit::Linear, 0).unwrap();
        assert_eq!(c.centroids, vec![1.0, 5.0]);
        assert_eq!(c.assignment, vec![0, 0, 0, 1]);
        assert_eq!(nearest(&[0.0, 1.0], 0.5), 0);
        assert_eq!(nearest(&[0.0, 1.0], 0.51), 1);
        assert_eq!(nearest(&[0.0, 1.0], -3.0), 0);
        assert_eq!(nearest(&[0.0, 1.0], 9.0), 1);
    }

    #[test]
    fn bit_widths_outside_1_to_8_are_refused() {
        assert!(BitWidth::new(0, "--bits").is_err());
        assert!(BitWidth::new(9, "--bits").is_err());
        assert_eq!(BitWidth::new(5, "--bits").unwrap().clusters(), 32);
    }
}
