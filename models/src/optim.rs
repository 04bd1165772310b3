//! Optimizers and learning-rate schedules, applied on the host to plain `f32` slices.
//!
//! Each optimizer keeps its state per tensor (`state[i]` belongs to tensor `i`) so it can be checkpointed and
//! resumed exactly. Updates follow the textbook forms (PyTorch's conventions where they differ):
//! - SGD: `w −= η g`
//! - momentum: `v = β v + g; w −= η v`
//! - Nesterov: `v = β v + g; w −= η (g + β v)`
//! - AdaGrad: `s += g²; w −= η g / (√s + ε)`
//! - RMSProp: `s = ρ s + (1 − ρ) g²; w −= η g / (√s + ε)`
//! - Adam: `m = β₁ m + (1 − β₁) g; v = β₂ v + (1 − β₂) g²; w −= η m̂ / (√v̂ + ε)` with bias correction.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Which update rule, with its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain (stochastic) gradient descent.
    Sgd,
    /// Heavy-ball momentum.
    Momentum {
        /// Momentum coefficient β.
        beta: f32,
    },
    /// Nesterov accelerated gradient.
    Nesterov {
        /// Momentum coefficient β.
        beta: f32,
    },
    /// AdaGrad.
    AdaGrad {
        /// ε added to the root.
        eps: f32,
    },
    /// RMSProp.
    RmsProp {
        /// Decay ρ of the squared-gradient average.
        rho: f32,
        /// ε added to the root.
        eps: f32,
    },
    /// Adam.
    Adam {
        /// First-moment decay β₁.
        beta1: f32,
        /// Second-moment decay β₂.
        beta2: f32,
        /// ε added to the root.
        eps: f32,
    },
}

impl OptimizerKind {
    /// All names accepted by `FromStr`.
    pub const NAMES: &'static [&'static str] =
        &["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"];

    /// The name, as accepted by `FromStr`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Momentum { .. } => "momentum",
            OptimizerKind::Nesterov { .. } => "nesterov",
            OptimizerKind::AdaGrad { .. } => "adagrad",
            OptimizerKind::RmsProp { .. } => "rmsprop",
            OptimizerKind::Adam { .. } => "adam",
        }
    }

    /// Number of state vectors per tensor.
    fn slots(&self) -> usize {
        match self {
            OptimizerKind::Sgd => 0,
            OptimizerKind::Adam { .. } => 2,
            _ => 1,
        }
    }

    /// Replaces the momentum coefficient (momentum, Nesterov) — other kinds are returned unchanged.
    pub fn with_momentum(self, beta: f32) -> Self {
        match self {
            OptimizerKind::Momentum { .. } => OptimizerKind::Momentum { beta },
            OptimizerKind::Nesterov { .. } => OptimizerKind::Nesterov { beta },
            other => other,
        }
    }
}

impl FromStr for OptimizerKind {
    type Err = Error;
    /// Parses a name with the usual defaults (β = 0.9, ρ = 0.9, Adam 0.9 / 0.999, ε = 1e-8).
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "sgd" => OptimizerKind::Sgd,
            "momentum" => OptimizerKind::Momentum { beta: 0.9 },
            "nesterov" => OptimizerKind::Nesterov { beta: 0.9 },
            "adagrad" => OptimizerKind::AdaGrad { eps: 1e-10 },
            "rmsprop" => OptimizerKind::RmsProp {
                rho: 0.9,
                eps: 1e-8,
            },
            "adam" => OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            other => {
                return Err(Error::config(
                    "--optimizer",
                    format!(
                        "unknown optimizer `{other}` (expected one of {})",
                        Self::NAMES.join(", ")
                    ),
                ))
            }
        })
    }
}

/// An optimizer and its state for a fixed list of tensor sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    /// The rule.
    pub kind: OptimizerKind,
    /// Number of updates applied so far (Adam's bias correction uses it).
    pub steps: u64,
    /// `state[i][k]`: the k-th state vector of tensor i.
    pub state: Vec<Vec<Vec<f32>>>,
}

impl Optimizer {
    /// A fresh optimizer for tensors of the given lengths.
    pub fn new(kind: OptimizerKind, lens: &[usize]) -> Self {
        let state = lens
            .iter()
            .map(|&n| vec![vec![0.0; n]; kind.slots()])
            .collect();
        Optimizer {
            kind,
            steps: 0,
            state,
        }
    }

    /// Starts a step: call once before the [`Optimizer::update`]s of that step.
    pub fn begin_step(&mut self) {
        self.steps += 1;
    }

    /// Updates tensor `i` in place from its gradient with learning rate `lr`.
    pub fn update(&mut self, i: usize, w: &mut [f32], g: &[f32], lr: f32) {
        let t = self.steps.max(1) as i32;
        let slots = &mut self.state[i];
        match self.kind {
            OptimizerKind::Sgd => {
                for (w, g) in w.iter_mut().zip(g) {
                    *w -= lr * g;
                }
            }
            OptimizerKind::Momentum { beta } => {
                for ((w, g), v) in w.iter_mut().zip(g).zip(slots[0].iter_mut()) {
                    *v = beta * *v + g;
                    *w -= lr * *v;
                }
            }
            OptimizerKind::Nesterov { beta } => {
                for ((w, g), v) in w.iter_mut().zip(g).zip(slots[0].iter_mut()) {
                    *v = beta * *v + g;
                    *w -= lr * (g + beta * *v);
                }
            }
            OptimizerKind::AdaGrad { eps } => {
                for ((w, g), s) in w.iter_mut().zip(g).zip(slots[0].iter_mut()) {
                    *s += g * g;
                    *w -= lr * g / (s.sqrt() + eps);
                }
            }
            OptimizerKind::RmsProp { rho, eps } => {
                for ((w, g), s) in w.iter_mut().zip(g).zip(slots[0].iter_mut()) {
                    *s = rho * *s + (1.0 - rho) * g * g;
                    *w -= lr * g / (s.sqrt() + eps);
                }
            }
            OptimizerKind::Adam { beta1, beta2, eps } => {
                let c1 = 1.0 - beta1.powi(t);
                let c2 = 1.0 - beta2.powi(t);
                let step = lr / c1;
                let c2_sqrt = c2.sqrt();
                let (ms, vs) = slots.split_at_mut(1);
                for (((w, g), m), v) in w
                    .iter_mut()
                    .zip(g)
                    .zip(ms[0].iter_mut())
                    .zip(vs[0].iter_mut())
                {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *w -= step * *m / (v.sqrt() / c2_sqrt + eps);
                }
            }
        }
    }
}

/// How the learning rate changes with training progress `e` (epochs elapsed, fractional, starting at 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Schedule {
    /// η = η₀.
    Constant,
    /// η = η₀ · γ^⌊e / every⌋.
    Step {
        /// Epochs between drops.
        every: f64,
        /// Factor per drop.
        gamma: f64,
    },
    /// η = η₀ / √(1 + e): the classic diminishing step, η₀/√t with t counted in epochs from 1.
    InvSqrt,
    /// η = η₀ / (1 + k·e).
    InvTime {
        /// Decay rate per epoch.
        k: f64,
    },
    /// η = η_min + (η₀ − η_min)(1 + cos(π e / E)) / 2 with η_min = η₀ · `floor`, over E epochs.
    Cosine {
        /// Final learning rate as a fraction of η₀.
        floor: f64,
    },
}

impl Schedule {
    /// Names accepted by [`Schedule::parse`].
    pub const NAMES: &'static [&'static str] =
        &["constant", "step", "inv-sqrt", "inv-time", "cosine"];

    /// Parses a schedule name; `decay` sets γ (step, default 0.1), k (inv-time, default 1) or the floor
    /// (cosine, default 0); `every` the step interval (default: a third of the epochs).
    pub fn parse(
        name: &str,
        decay: Option<f64>,
        every: Option<f64>,
        epochs: usize,
    ) -> Result<Self> {
        let s = match name {
            "constant" => Schedule::Constant,
            "step" => Schedule::Step {
                every: every.unwrap_or((epochs as f64 / 3.0).max(1.0).floor()),
                gamma: decay.unwrap_or(0.1),
            },
            "inv-sqrt" => Schedule::InvSqrt,
            "inv-time" => Schedule::InvTime {
                k: decay.unwrap_or(1.0),
            },
            "cosine" => Schedule::Cosine {
                floor: decay.unwrap_or(0.0),
            },
            other => {
                return Err(Error::config(
                    "--schedule",
                    format!(
                        "unknown schedule `{other}` (expected one of {})",
                        Self::NAMES.join(", ")
                    ),
                ))
            }
        };
        match s {
            Schedule::Step { every, gamma } if !(every > 0.0 && gamma > 0.0 && gamma <= 1.0) => Err(Error::config(
                "--lr-decay",
                format!("step schedule needs every > 0 and 0 < gamma ≤ 1 (got every {every}, gamma {gamma})"),
            )),
            Schedule::InvTime { k } if !(k >= 0.0 && k.is_finite()) => {
                Err(Error::config("--lr-decay", format!("inv-time needs k ≥ 0, got {k}")))
            }
            Schedule::Cosine { floor } if !(0.0..=1.0).contains(&floor) => Err(Error::config(
                "--lr-decay",
                format!("cosine floor must be in [0, 1], got {floor}"),
            )),
            s => Ok(s),
        }
    }

    /// The learning rate after `e` epochs (fractional) of `total` for a base rate `lr0`.
    pub fn lr(&self, lr0: f64, e: f64, total: usize) -> f64 {
        match *self {
            Schedule::Constant => lr0,
            Schedule::Step { every, gamma } => lr0 * gamma.powf((e / every).floor()),
            Schedule::InvSqrt => lr0 / (1.0 + e).sqrt(),
            Schedule::InvTime { k } => lr0 / (1.0 + k * e),
            Schedule::Cosine { floor } => {
                let p = (e / total.max(1) as f64).clamp(0.0, 1.0);
                let min = lr0 * floor;
                min + (lr0 - min) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimizes f(w) = ½ Σ aᵢ (wᵢ − 1)² from w = 0 and returns the final loss.
    fn quadratic(kind: OptimizerKind, lr: f32, steps: usize) -> (f32, f32) {
        let a = [1.0f32, 4.0, 0.25];
        let loss = |w: &[f32]| {
            w.iter()
                .zip(a)
                .map(|(w, a)| 0.5 * a * (w - 1.0).powi(2))
                .sum::<f32>()
        };
        let mut w = vec![0.0f32; 3];
        let start = loss(&w);
        let mut opt = Optimizer::new(kind, &[3]);
        for _ in 0..steps {
            let g: Vec<f32> = w.iter().zip(a).map(|(w, a)| a * (w - 1.0)).collect();
            opt.begin_step();
            opt.update(0, &mut w, &g, lr);
        }
        (start, loss(&w))
    }

    #[test]
    fn every_optimizer_reduces_the_loss() {
        for name in OptimizerKind::NAMES {
            let kind: OptimizerKind = name.parse().unwrap();
            let lr = if *name == "adagrad" { 0.5 } else { 0.05 };
            let (start, end) = quadratic(kind, lr, 200);
            assert!(end < 0.01 * start, "{name}: {start} → {end}");
        }
    }

    #[test]
    fn sgd_and_momentum_match_hand_computation() {
        let mut w = [1.0f32];
        let mut o = Optimizer::new(OptimizerKind::Momentum { beta: 0.5 }, &[1]);
        o.begin_step();
        o.update(0, &mut w, &[2.0], 0.1); // v = 2, w = 0.8
        o.begin_step();
        o.update(0, &mut w, &[2.0], 0.1); // v = 3, w = 0.5
        assert!((w[0] - 0.5).abs() < 1e-6);
        // Adam's first step moves every coordinate by ≈ lr, whatever the gradient scale.
        let mut w = [0.0f32, 0.0];
        let mut o = Optimizer::new("adam".parse().unwrap(), &[2]);
        o.begin_step();
        o.update(0, &mut w, &[1000.0, 0.001], 0.01);
        assert!(
            (w[0] + 0.01).abs() < 1e-5 && (w[1] + 0.01).abs() < 1e-4,
            "{w:?}"
        );
    }

    #[test]
    fn unknown_optimizer_is_a_clear_error() {
        let e = "adamw".parse::<OptimizerKind>().unwrap_err().to_string();
        assert!(
            e.starts_with("--optimizer: unknown optimizer `adamw`"),
            "{e}"
        );
    }

    #[test]
    fn schedules_follow_their_formulas() {
        let s = |n| Schedule::parse(n, None, None, 9).unwrap();
        assert_eq!(s("constant").lr(0.1, 5.0, 9), 0.1);
        assert!((s("step").lr(1.0, 3.0, 9) - 0.1).abs() < 1e-12);
        assert!((s("step").lr(1.0, 2.9, 9) - 1.0).abs() < 1e-12);
        assert!((s("inv-sqrt").lr(1.0, 3.0, 9) - 0.5).abs() < 1e-12);
        assert!((s("inv-time").lr(1.0, 1.0, 9) - 0.5).abs() < 1e-12);
        assert!((s("cosine").lr(1.0, 0.0, 9) - 1.0).abs() < 1e-12);
        assert!((s("cosine").lr(1.0, 4.5, 9) - 0.5).abs() < 1e-12);
        assert!(s("cosine").lr(1.0, 9.0, 9).abs() < 1e-12);
        assert!(Schedule::parse("warm", None, None, 9)
            .unwrap_err()
            .to_string()
            .contains("--schedule"));
        assert!(Schedule::parse("step", Some(2.0), None, 9).is_err());
    }
}
