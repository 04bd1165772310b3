//! The trainer: mini-batch training of any [`NetSpec`] on candle (CPU), with the optimizers and schedules of
//! [`crate::optim`], L1/L2 penalties, dropout, batch normalization, model selection on the validation split,
//! checkpoints every epoch and exact resumption.
//!
//! Later stages reuse this loop through [`Projection`]: a per-step hook that can edit the gradients before the
//! update (mask pruned weights, pool gradients per centroid) and the parameters after it (hold pruned weights at
//! zero, tie weights to centroids). Progress reaches the caller through [`Observer`]; this crate draws nothing.
//!
//! Determinism: weights, shuffling and dropout masks come from ChaCha8 generators seeded by `seed` (and the epoch
//! number), so a run is reproducible, and a resumed run continues exactly as if never interrupted.

use crate::data::{Normalization, Split};
use crate::error::{Error, Result};
use crate::eval::evaluate;
use crate::net::{self, Loss, Mode};
use crate::optim::{Optimizer, OptimizerKind, Schedule};
use crate::params::{F32View, Params};
use crate::NetSpec;
use candle_core::{Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which epoch's weights a run returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// The epoch with the best validation accuracy (the last one if there is no validation split).
    Best,
    /// The last epoch.
    Last,
}

/// A training recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training split.
    pub epochs: usize,
    /// Samples per step: 1 is pure SGD, the training-set size is full-batch gradient descent.
    pub batch_size: usize,
    /// Update rule.
    pub optimizer: OptimizerKind,
    /// Base learning rate η₀ (> 0).
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// L1 penalty coefficient on weights (not biases): adds `l1 · sign(w)` to the gradient.
    pub l1: f32,
    /// L2 penalty coefficient on weights: adds `l2 · w` to the gradient.
    pub l2: f32,
    /// Dropout rate on hidden fully connected layers, in [0, 1).
    pub dropout: f32,
    /// Loss function.
    pub loss: Loss,
    /// Seed for initialization, shuffling and dropout.
    pub seed: u64,
    /// Which epoch to keep.
    pub select: Selection,
    /// Sharpness-aware minimization (Foret et al., ICLR 2021): radius ρ of the ascent step; 0 turns it off.
    /// Each step then takes the gradient at `w + ρ g / ‖g‖` (two backward passes per step).
    #[serde(default)]
    pub sam_rho: f32,
}

impl TrainConfig {
    /// The default recipe: Adam, η₀ = 1e-3 with cosine decay, batch 64, 20 epochs, dropout 0.2 on hidden fully
    /// connected layers, best validation epoch.
    pub fn recipe() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 64,
            optimizer: "adam".parse().expect("known optimizer"),
            lr: 1e-3,
            schedule: Schedule::Cosine { floor: 0.0 },
            l1: 0.0,
            l2: 0.0,
            dropout: 0.2,
            loss: Loss::CrossEntropy,
            seed: 1,
            select: Selection::Best,
            sam_rho: 0.0,
        }
    }

    /// Checks every setting; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::config(
                "--lr",
                format!("the learning rate must be > 0, got {}", self.lr),
            ));
        }
        if self.epochs == 0 {
            return Err(Error::config("--epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("--batch-size", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(
                "--dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        if !(self.l1 >= 0.0 && self.l1.is_finite()) {
            return Err(Error::config(
                "--l1",
                format!("must be ≥ 0, got {}", self.l1),
            ));
        }
        if !(self.sam_rho >= 0.0 && self.sam_rho.is_finite()) {
            return Err(Error::config(
                "--sam",
                format!("the SAM radius must be ≥ 0, got {}", self.sam_rho),
            ));
        }
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return Err(Error::config(
                "--l2",
                format!("must be ≥ 0, got {}", self.l2),
            ));
        }
        match self.optimizer {
            OptimizerKind::Momentum { beta } | OptimizerKind::Nesterov { beta }
                if !(0.0..1.0).contains(&beta) =>
            {
                Err(Error::config(
                    "--momentum",
                    format!("must be in [0, 1), got {beta}"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Where a step stands, for hooks.
#[derive(Debug, Clone, Copy)]
pub struct StepContext {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Step within the epoch, 1-based.
    pub step: usize,
    /// Learning rate of this step.
    pub lr: f32,
}

/// A per-step hook that constrains training. Gradients and parameters are in [`NetSpec::tensors`] order;
/// `grads[i]` is empty for tensors that are not trained (batch-norm running statistics).
pub trait Projection {
    /// Edits the gradients before the optimizer uses them (e.g. zero the gradients of pruned weights).
    fn project_gradients(&mut self, _ctx: &StepContext, _params: &Params, _grads: &mut [Vec<f32>]) {
    }
    /// Edits the parameters after the update (e.g. hold pruned weights at zero, tie weights to centroids).
    fn project_parameters(&mut self, _ctx: &StepContext, _params: &mut Params) {}
}

/// The hook that changes nothing.
pub struct NoProjection;
impl Projection for NoProjection {}

/// One step's figures, for progress displays.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Step within the epoch, 1-based.
    pub step: usize,
    /// Steps in this epoch.
    pub steps: usize,
    /// Mean loss of the epoch so far.
    pub loss: f64,
    /// Training accuracy of the epoch so far.
    pub accuracy: f64,
}

/// The figures of one finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps (without penalties).
    pub train_loss: f64,
    /// Training accuracy over the epoch's steps (as the network stood at each step, dropout active).
    pub train_accuracy: f64,
    /// Loss on the validation split, if there is one.
    pub val_loss: Option<f64>,
    /// Accuracy on the validation split, if there is one.
    pub val_accuracy: Option<f64>,
    /// Wall-clock seconds of the epoch's training steps (validation excluded).
    pub seconds: f64,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
}

/// Receives progress; returning `Err` from [`Observer::epoch_end`] stops training with that error.
pub trait Observer {
    /// An epoch begins with `steps` steps.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// A step finished.
    fn step(&mut self, _report: &StepReport) {}
    /// An epoch finished (validation included); `history` holds every epoch so far, this one last.
    fn epoch_end(&mut self, _metrics: &EpochMetrics, _history: &[EpochMetrics]) -> Result<()> {
        Ok(())
    }
}

/// The observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// What a run returns.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The selected weights.
    pub params: Params,
    /// Every epoch's metrics (including those before a resume).
    pub history: Vec<EpochMetrics>,
    /// The epoch whose weights were selected (1-based).
    pub selected_epoch: usize,
}

/// Everything that survives between epochs: what a checkpoint holds.
#[derive(Debug, Clone)]
struct State {
    epochs_done: usize,
    params: Params,
    optimizer: Optimizer,
    best: Option<(usize, f64, Params)>,
    history: Vec<EpochMetrics>,
}

/// Knowledge distillation (Hinton et al. 2015): the loss becomes `(1 − α)·CE(labels) + α·T²·CE(softmax(t/T),
/// softmax(s/T))`, with `t` a teacher's logits on the same batch and `s` the student's. The compressor retrains
/// a pruned network against its own dense original this way.
#[derive(Debug, Clone, Copy)]
pub struct Teacher<'a> {
    /// The teacher's architecture (same input and classes as the student).
    pub net: &'a NetSpec,
    /// Its weights.
    pub params: &'a Params,
    /// Temperature `T` (> 0).
    pub temperature: f32,
    /// Weight `α` of the teacher's term, in [0, 1].
    pub weight: f32,
}

/// A training run: network, recipe, data, and where to checkpoint.
pub struct Trainer<'a> {
    /// The architecture.
    pub net: &'a NetSpec,
    /// The recipe.
    pub config: &'a TrainConfig,
    /// Train / validation data (the test split is not touched).
    pub split: &'a Split,
    /// Input normalization.
    pub normalization: Normalization,
    /// Checkpoint file written after every epoch (atomically), if any.
    pub checkpoint: Option<PathBuf>,
    /// Distil from this teacher, if any.
    pub teacher: Option<Teacher<'a>>,
}

impl Trainer<'_> {
    /// Trains from `init`, or from the checkpoint if `resume` is set and the checkpoint exists.
    pub fn run(
        &self,
        init: Params,
        resume: bool,
        projection: &mut dyn Projection,
        observer: &mut dyn Observer,
    ) -> Result<Trained> {
        self.config.validate()?;
        if self
            .split
            .train
            .labels
            .iter()
            .any(|&l| usize::from(l) >= self.net.classes)
        {
            return Err(Error::config(
                "--model",
                format!(
                    "the data has labels ≥ {}, more classes than the network has outputs",
                    self.net.classes
                ),
            ));
        }
        let lens: Vec<usize> = init.tensors.iter().map(|p| p.data.len()).collect();
        let data = self
            .checkpoint
            .as_ref()
            .map(|_| DataFingerprint::of(self.split));
        let mut state = match (&self.checkpoint, &data, resume) {
            (Some(path), Some(data), true) if path.exists() => self.load_checkpoint(path, data)?,
            (None, _, true) => return Err(Error::config("--resume", "needs a checkpoint file")),
            _ => State {
                epochs_done: 0,
                params: init,
                optimizer: Optimizer::new(self.config.optimizer, &lens),
                best: None,
                history: Vec::new(),
            },
        };
        let vars = Backprop::new(&state.params)?;
        let teacher = self
            .teacher
            .map(|t| Ok::<_, Error>((t, net::constants(t.params)?)))
            .transpose()?;
        while state.epochs_done < self.config.epochs {
            self.epoch(&mut state, &vars, teacher.as_ref(), projection, observer)?;
            if let (Some(path), Some(data)) = (&self.checkpoint, &data) {
                self.save_checkpoint(path, &state, data)?;
            }
            let last = state
                .history
                .last()
                .expect("an epoch was just recorded")
                .clone();
            observer.epoch_end(&last, &state.history)?;
        }
        let last_epoch = state.epochs_done;
        Ok(match (self.config.select, state.best) {
            (Selection::Best, Some((epoch, _, params))) => Trained {
                params,
                history: state.history,
                selected_epoch: epoch,
            },
            _ => Trained {
                params: state.params,
                history: state.history,
                selected_epoch: last_epoch,
            },
        })
    }

    fn epoch(
        &self,
        state: &mut State,
        vars: &Backprop,
        teacher: Option<&(Teacher, Vec<Tensor>)>,
        projection: &mut dyn Projection,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let cfg = self.config;
        let epoch = state.epochs_done + 1;
        let data = &self.split.train;
        let mut order: Vec<usize> = (0..data.count).collect();
        // One generator per epoch, derived from the seed: resuming at any epoch boundary is exact.
        let mut rng = ChaCha8Rng::seed_from_u64(
            cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        order.shuffle(&mut rng);
        let steps = data.count.div_ceil(cfg.batch_size);
        observer.epoch_start(epoch, cfg.epochs, steps);
        // The vars already hold `state.params`: created from them in `run`, re-set after every step.
        let start = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        let mut lr = cfg.lr;
        for (s, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let progress = (epoch - 1) as f64 + s as f64 / steps as f64;
            lr = cfg.schedule.lr(cfg.lr, progress, cfg.epochs);
            let ctx = StepContext {
                epoch,
                step: s + 1,
                lr: lr as f32,
            };
            let (x, y) = net::batch(self.net, data, &self.normalization, chunk)?;
            let mode = Mode::Train {
                dropout: cfg.dropout,
                rng: &mut rng,
            };
            let mut step =
                vars.gradients(self.net, &state.params, &x, &y, cfg.loss, mode, teacher)?;
            if cfg.sam_rho > 0.0 && step.loss.is_finite() {
                // SAM: the gradient at the worst point of the ρ-ball, along the normalized gradient.
                let norm = step
                    .grads
                    .iter()
                    .flatten()
                    .map(|g| g * g)
                    .sum::<f32>()
                    .sqrt();
                if norm > 0.0 {
                    let mut shifted = state.params.clone();
                    for (p, g) in shifted.tensors.iter_mut().zip(&step.grads) {
                        for (w, g) in p.data.iter_mut().zip(g) {
                            *w += cfg.sam_rho * g / norm;
                        }
                    }
                    vars.sync(&shifted)?;
                    let mode = Mode::Train {
                        dropout: cfg.dropout,
                        rng: &mut rng,
                    };
                    let sharp =
                        vars.gradients(self.net, &shifted, &x, &y, cfg.loss, mode, teacher)?;
                    vars.sync(&state.params)?;
                    if sharp.loss.is_finite() {
                        step.grads = sharp.grads;
                    }
                }
            }
            if !step.loss.is_finite() {
                return Err(Error::Diverged {
                    loss: step.loss,
                    epoch,
                    step: s + 1,
                    lr,
                });
            }
            correct += step.correct;
            seen += chunk.len();
            loss_sum += f64::from(step.loss) * chunk.len() as f64;
            let mut grads = step.grads;
            projection.project_gradients(&ctx, &state.params, &mut grads);
            apply_update(
                cfg,
                &mut state.optimizer,
                &mut state.params,
                &mut grads,
                lr as f32,
            );
            update_running_stats(&mut state.params, &step.bn_stats);
            projection.project_parameters(&ctx, &mut state.params);
            vars.sync(&state.params)?;
            observer.step(&StepReport {
                epoch,
                step: s + 1,
                steps,
                loss: loss_sum / seen as f64,
                accuracy: correct as f64 / seen as f64,
            });
        }
        let seconds = start.elapsed().as_secs_f64();
        let val = if self.split.val.count > 0 {
            Some(evaluate(
                self.net,
                &state.params,
                &self.normalization,
                &self.split.val,
            )?)
        } else {
            None
        };
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss: val.as_ref().map(|v| v.loss),
            val_accuracy: val.as_ref().map(|v| v.accuracy),
            seconds,
            lr,
        };
        if let Some(acc) = metrics.val_accuracy {
            if state.best.as_ref().is_none_or(|(_, best, _)| acc > *best) {
                state.best = Some((epoch, acc, state.params.clone()));
            }
        }
        state.history.push(metrics);
        state.epochs_done = epoch;
        Ok(())
    }

    fn save_checkpoint(&self, path: &Path, state: &State, data: &DataFingerprint) -> Result<()> {
        let mut views: Vec<(String, F32View)> = state.params.views("param.");
        if let Some((_, _, best)) = &state.best {
            views.extend(best.views("best."));
        }
        for (i, slots) in state.optimizer.state.iter().enumerate() {
            for (k, slot) in slots.iter().enumerate() {
                views.push((format!("opt.{i}.{k}"), F32View::new(&[slot.len()], slot)));
            }
        }
        let info = CheckpointInfo {
            net: self.net.clone(),
            config: self.config.clone(),
            data: Some(data.clone()),
            normalization: self.normalization,
            epochs_done: state.epochs_done,
            optimizer_steps: state.optimizer.steps,
            best: state.best.as_ref().map(|(e, a, _)| (*e, *a)),
            history: state.history.clone(),
        };
        let meta = [(
            "slimnet.checkpoint".to_string(),
            serde_json::to_string(&info).expect("serializable"),
        )];
        let bytes = safetensors::serialize(views, Some(meta.into_iter().collect()))
            .map(|b| crate::params::canonical(&b))
            .map_err(|e| Error::model_file(path, format!("cannot serialize checkpoint: {e}")))?;
        crate::atomic::write_atomic(path, &bytes)
    }

    fn load_checkpoint(&self, path: &Path, data: &DataFingerprint) -> Result<State> {
        let bytes = crate::input::read_model(path)?;
        let bad = |reason: String| Error::model_file(path, reason);
        let st =
            SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a checkpoint ({e})")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a checkpoint ({e})")))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("slimnet.checkpoint"))
            .ok_or_else(|| {
                bad("not a slimnet checkpoint (no slimnet.checkpoint metadata)".into())
            })?;
        let info: CheckpointInfo =
            serde_json::from_str(json).map_err(|e| bad(format!("bad checkpoint metadata: {e}")))?;
        if info.net != *self.net {
            let describe =
                |n: &NetSpec| format!("`{}` ({} classes, input {})", n.arch, n.classes, n.input);
            return Err(bad(format!(
                "was written for {}, this run trains {}",
                describe(&info.net),
                describe(self.net)
            )));
        }
        if info.data.as_ref().is_some_and(|d| d != data) {
            let d = info.data.as_ref().expect("checked");
            return Err(bad(format!(
                "was written on other data ({} training and {} validation samples, this run has {} and {}{}): \
                 resume with the same --data, --val and --train-limit (only --epochs may change)",
                d.train,
                d.val,
                data.train,
                data.val,
                if (d.train, d.val) == (data.train, data.val) {
                    ", with different contents"
                } else {
                    ""
                }
            )));
        }
        let same_recipe = TrainConfig {
            epochs: self.config.epochs,
            ..info.config.clone()
        };
        if same_recipe != *self.config {
            return Err(bad(
                "was written with a different recipe (only --epochs may change when resuming)"
                    .into(),
            ));
        }
        let params = Params::from_safetensors(self.net, &st, "param.", path)?;
        let best = match info.best {
            Some((epoch, acc)) => Some((
                epoch,
                acc,
                Params::from_safetensors(self.net, &st, "best.", path)?,
            )),
            None => None,
        };
        let lens: Vec<usize> = params.tensors.iter().map(|p| p.data.len()).collect();
        let mut optimizer = Optimizer::new(self.config.optimizer, &lens);
        optimizer.steps = info.optimizer_steps;
        for (i, slots) in optimizer.state.iter_mut().enumerate() {
            for (k, slot) in slots.iter_mut().enumerate() {
                let name = format!("opt.{i}.{k}");
                let view = st
                    .tensor(&name)
                    .map_err(|_| bad(format!("missing tensor `{name}`")))?;
                if view.data().len() != 4 * slot.len() {
                    return Err(bad(format!("tensor `{name}` has the wrong size")));
                }
                for (s, c) in slot.iter_mut().zip(view.data().chunks_exact(4)) {
                    *s = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
        }
        Ok(State {
            epochs_done: info.epochs_done,
            params,
            optimizer,
            best,
            history: info.history,
        })
    }
}

/// The candle side of a training step, shared by [`Trainer`] and distributed training: one `Var` per trainable
/// tensor (kept equal to the host parameters by [`Backprop::sync`]), and the forward and backward pass.
pub(crate) struct Backprop {
    vars: Vec<Option<Var>>,
}

/// What one forward and backward pass measured and computed.
pub(crate) struct Gradients {
    /// Mean loss over the batch (teacher's term included).
    pub loss: f32,
    /// Correctly classified samples of the batch.
    pub correct: usize,
    /// One gradient per tensor in [`NetSpec::tensors`] order; empty for tensors that are not trained.
    pub grads: Vec<Vec<f32>>,
    /// Batch statistics of the batch-norm layers.
    pub bn_stats: Vec<net::BatchStats>,
}

impl Backprop {
    /// Variables holding `params`' trainable tensors.
    pub fn new(params: &Params) -> Result<Backprop> {
        let vars = params
            .tensors
            .iter()
            .map(|p| {
                p.spec
                    .role
                    .trainable()
                    .then(|| Var::from_slice(&p.data, p.spec.shape.as_slice(), &Device::Cpu))
                    .transpose()
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Backprop { vars })
    }

    /// Copies the host parameters into the variables (after an update).
    pub fn sync(&self, params: &Params) -> Result<()> {
        for (p, v) in params.tensors.iter().zip(&self.vars) {
            if let Some(v) = v {
                v.set(&Tensor::from_slice(
                    &p.data,
                    p.spec.shape.as_slice(),
                    &Device::Cpu,
                )?)?;
            }
        }
        Ok(())
    }

    /// Forward and backward pass of a batch; `params` supplies the tensors that are not trained.
    #[allow(clippy::too_many_arguments)]
    pub fn gradients(
        &self,
        net: &NetSpec,
        params: &Params,
        x: &Tensor,
        y: &Tensor,
        loss: Loss,
        mode: Mode,
        teacher: Option<&(Teacher, Vec<Tensor>)>,
    ) -> Result<Gradients> {
        let tensors: Vec<Tensor> = params
            .tensors
            .iter()
            .zip(&self.vars)
            .map(|(p, v)| match v {
                Some(v) => Ok(v.as_tensor().clone()),
                None => Ok(Tensor::from_slice(
                    &p.data,
                    p.spec.shape.as_slice(),
                    &Device::Cpu,
                )?),
            })
            .collect::<Result<_>>()?;
        let (logits, bn_stats) = net::forward(net, &tensors, x, mode)?;
        let mut value = net::loss(loss, &logits, y)?;
        if let Some((t, tensors)) = teacher {
            let (target, _) = net::forward(t.net, tensors, x, Mode::Eval)?;
            let kd = net::distillation_loss(&logits, &target.detach(), t.temperature)?;
            value = ((value * f64::from(1.0 - t.weight))? + (kd * f64::from(t.weight))?)?;
        }
        let loss_value = value.to_scalar::<f32>()?;
        let labels = y.to_vec1::<u32>()?;
        let correct = net::argmax(&logits)?
            .iter()
            .zip(&labels)
            .filter(|(p, t)| p == t)
            .count();
        let mut grads = Vec::with_capacity(self.vars.len());
        if loss_value.is_finite() {
            let store = value.backward()?;
            for (v, p) in self.vars.iter().zip(&params.tensors) {
                grads.push(match v {
                    Some(v) => match store.get(v.as_tensor()) {
                        Some(t) => t.flatten_all()?.to_vec1::<f32>()?,
                        None => vec![0.0; p.data.len()],
                    },
                    None => Vec::new(),
                });
            }
        }
        Ok(Gradients {
            loss: loss_value,
            correct,
            grads,
            bn_stats,
        })
    }
}

/// Adds the recipe's L1 / L2 penalties to the weights' gradients and applies one optimizer step.
pub(crate) fn apply_update(
    cfg: &TrainConfig,
    optimizer: &mut Optimizer,
    params: &mut Params,
    grads: &mut [Vec<f32>],
    lr: f32,
) {
    optimizer.begin_step();
    for (i, (p, g)) in params.tensors.iter_mut().zip(grads).enumerate() {
        if g.is_empty() {
            continue;
        }
        if p.spec.role == crate::Role::Weight && (cfg.l1 > 0.0 || cfg.l2 > 0.0) {
            for (g, w) in g.iter_mut().zip(&p.data) {
                *g += cfg.l2 * w + cfg.l1 * w.signum() * f32::from(u8::from(*w != 0.0));
            }
        }
        optimizer.update(i, &mut p.data, g, lr);
    }
}

/// Moves the batch-norm running statistics towards a batch's (PyTorch's running averages: momentum 0.1,
/// unbiased batch variance).
pub(crate) fn update_running_stats(params: &mut Params, bn_stats: &[net::BatchStats]) {
    for st in bn_stats {
        let (m, v) = (st.running_mean_index, st.running_mean_index + 1);
        for (r, b) in params.tensors[m].data.iter_mut().zip(&st.mean) {
            *r = 0.9 * *r + 0.1 * b;
        }
        for (r, b) in params.tensors[v].data.iter_mut().zip(&st.var) {
            *r = 0.9 * *r + 0.1 * b;
        }
    }
}

/// The training and validation samples a run sees, so that `--resume` continues on the same ones: a different
/// `--data`, `--val` or `--train-limit` is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DataFingerprint {
    train: usize,
    val: usize,
    /// SHA-256 of the training then the validation pixels and labels.
    sha256: String,
}

impl DataFingerprint {
    fn of(split: &Split) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for d in [&split.train, &split.val] {
            h.update((d.count as u64).to_le_bytes());
            h.update(&d.pixels);
            h.update(&d.labels);
        }
        let sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        DataFingerprint {
            train: split.train.count,
            val: split.val.count,
            sha256,
        }
    }
}

/// The checkpoint's metadata.
#[derive(Serialize, Deserialize)]
struct CheckpointInfo {
    net: NetSpec,
    config: TrainConfig,
    /// What was trained on (absent in checkpoints written before it was recorded).
    #[serde(default)]
    data: Option<DataFingerprint>,
    normalization: Normalization,
    epochs_done: usize,
    optimizer_steps: u64,
    best: Option<(usize, f64)>,
    history: Vec<EpochMetrics>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testing::bands;
    use crate::Shape;

    fn split() -> Split {
        Split {
            train: bands(96, 1),
            val: bands(30, 2),
            test: bands(30, 3),
        }
    }

    fn run(spec: &str, cfg: &TrainConfig, ckpt: Option<PathBuf>, resume: bool) -> Result<Trained> {
        let net = NetSpec::parse(spec, Shape::image(4, 4), 3, false)?;
        let split = split();
        let t = Trainer {
            net: &net,
            config: cfg,
            split: &split,
            normalization: Normalization::of(&split.train),
            checkpoint: ckpt,
            teacher: None,
        };
        t.run(
            Params::init(&net, cfg.seed),
            resume,
            &mut NoProjection,
            &mut Silent,
        )
    }

    fn cfg(optimizer: &str, lr: f64, epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 8,
            optimizer: optimizer.parse().unwrap(),
            lr,
            schedule: Schedule::Constant,
            select: Selection::Last,
            dropout: 0.0,
            ..TrainConfig::recipe()
        }
    }

    #[test]
    fn every_optimizer_reduces_the_training_loss() {
        for (name, lr) in [
            ("sgd", 0.05),
            ("momentum", 0.02),
            ("nesterov", 0.02),
            ("adagrad", 0.05),
            ("rmsprop", 0.003),
            ("adam", 0.005),
        ] {
            let t = run("mlp:16", &cfg(name, lr, 6), None, false).unwrap();
            let (first, last) = (
                t.history[0].train_loss,
                t.history.last().unwrap().train_loss,
            );
            assert!(last < 0.5 * first, "{name}: loss {first} → {last}");
        }
    }

    #[test]
    fn batch_sizes_from_one_to_the_whole_set_train() {
        for batch in [1, 96] {
            let c = TrainConfig {
                batch_size: batch,
                ..cfg("sgd", if batch == 1 { 0.01 } else { 0.5 }, 5)
            };
            let t = run("mlp:8", &c, None, false).unwrap();
            assert!(
                t.history.last().unwrap().train_loss < t.history[0].train_loss,
                "batch {batch}"
            );
        }
    }

    #[test]
    fn regularizers_batch_norm_and_mse_train_cnns_too() {
        let c = TrainConfig {
            dropout: 0.2,
            l1: 1e-4,
            l2: 1e-3,
            loss: Loss::Mse,
            ..cfg("adam", 0.01, 4)
        };
        let net = NetSpec::parse("cnn:c4k3-p2-f8", Shape::image(4, 4), 3, true).unwrap();
        let split = split();
        let t = Trainer {
            net: &net,
            config: &c,
            split: &split,
            normalization: Normalization::of(&split.train),
            checkpoint: None,
            teacher: None,
        };
        let out = t
            .run(Params::init(&net, 1), false, &mut NoProjection, &mut Silent)
            .unwrap();
        assert!(out.history.last().unwrap().train_loss < out.history[0].train_loss);
        // Running statistics moved away from their initial values.
        assert!(out
            .params
            .get("conv1.bn.running_mean")
            .unwrap()
            .data
            .iter()
            .any(|&m| m != 0.0));
    }

    #[test]
    fn sharpness_aware_minimization_trains_and_changes_the_path() {
        let plain = cfg("sgd", 0.05, 5);
        let sam = TrainConfig {
            sam_rho: 0.05,
            ..plain.clone()
        };
        let a = run("mlp:16", &plain, None, false).unwrap();
        let b = run("mlp:16", &sam, None, false).unwrap();
        assert!(b.history.last().unwrap().train_loss < 0.5 * b.history[0].train_loss);
        assert_ne!(a.params, b.params, "SAM takes other steps");
        let bad = TrainConfig {
            sam_rho: -1.0,
            ..plain
        };
        assert!(run("mlp:16", &bad, None, false)
            .unwrap_err()
            .to_string()
            .contains("--sam"));
    }

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() {
        let c = TrainConfig {
            dropout: 0.1,
            ..cfg("adam", 0.01, 2)
        };
        let a = run("mlp:16", &c, None, false).unwrap();
        let b = run("mlp:16", &c, None, false).unwrap();
        assert_eq!(a.params, b.params);
        assert_eq!(
            a.history.iter().map(|m| m.train_loss).collect::<Vec<_>>(),
            b.history.iter().map(|m| m.train_loss).collect::<Vec<_>>()
        );
        let other = run("mlp:16", &TrainConfig { seed: 2, ..c }, None, false).unwrap();
        assert_ne!(a.params, other.params);
    }

    #[test]
    fn resuming_from_a_checkpoint_equals_an_uninterrupted_run() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("run.ckpt");
        let full = run("mlp:16", &cfg("adam", 0.01, 3), None, false).unwrap();
        run("mlp:16", &cfg("adam", 0.01, 2), Some(ckpt.clone()), false).unwrap();
        let resumed = run("mlp:16", &cfg("adam", 0.01, 3), Some(ckpt.clone()), true).unwrap();
        assert_eq!(resumed.params, full.params);
        assert_eq!(resumed.history.len(), 3);
        // A checkpoint from another recipe is refused with a reason.
        let e = run("mlp:16", &cfg("sgd", 0.01, 3), Some(ckpt.clone()), true).unwrap_err();
        assert!(e.to_string().contains("different recipe"), "{e}");
        let e = run("mlp:8", &cfg("adam", 0.01, 3), Some(ckpt.clone()), true).unwrap_err();
        assert!(e.to_string().contains("was written for `mlp:16`"), "{e}");
        // Other data (here: fewer training samples) is refused too, naming the flags that must not change.
        let net = NetSpec::parse("mlp:16", Shape::image(4, 4), 3, false).unwrap();
        let mut other = split();
        other.train = bands(90, 1);
        let t = Trainer {
            net: &net,
            config: &cfg("adam", 0.01, 3),
            split: &other,
            normalization: Normalization::of(&other.train),
            checkpoint: Some(ckpt),
            teacher: None,
        };
        let e = t
            .run(Params::init(&net, 1), true, &mut NoProjection, &mut Silent)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("other data") && e.contains("--train-limit"),
            "{e}"
        );
    }

    #[test]
    fn divergence_stops_with_advice() {
        let e = run("mlp:16", &cfg("sgd", 1e30, 2), None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("diverged") && e.contains("smaller --lr"), "{e}");
    }

    #[test]
    fn bad_settings_name_their_flag() {
        for (c, flag) in [
            (
                TrainConfig {
                    lr: 0.0,
                    ..cfg("sgd", 0.1, 1)
                },
                "--lr",
            ),
            (
                TrainConfig {
                    lr: -1.0,
                    ..cfg("sgd", 0.1, 1)
                },
                "--lr",
            ),
            (
                TrainConfig {
                    batch_size: 0,
                    ..cfg("sgd", 0.1, 1)
                },
                "--batch-size",
            ),
            (
                TrainConfig {
                    dropout: 1.0,
                    ..cfg("sgd", 0.1, 1)
                },
                "--dropout",
            ),
            (
                TrainConfig {
                    epochs: 0,
                    ..cfg("sgd", 0.1, 1)
                },
                "--epochs",
            ),
        ] {
            let e = run("mlp:4", &c, None, false).unwrap_err().to_string();
            assert!(e.starts_with(flag), "{e}");
        }
    }

    /// A projection that keeps the first half of fc1's weights at zero.
    struct HalfMask;
    impl Projection for HalfMask {
        fn project_gradients(&mut self, _: &StepContext, _: &Params, grads: &mut [Vec<f32>]) {
            let n = grads[0].len() / 2;
            grads[0][..n].iter_mut().for_each(|g| *g = 0.0);
        }
        fn project_parameters(&mut self, _: &StepContext, params: &mut Params) {
            let w = &mut params.tensors[0].data;
            let n = w.len() / 2;
            w[..n].iter_mut().for_each(|v| *v = 0.0);
        }
    }

    #[test]
    fn projection_hook_holds_weights_where_it_puts_them() {
        let net = NetSpec::parse("mlp:16", Shape::image(4, 4), 3, false).unwrap();
        let split = split();
        let c = cfg("adam", 0.01, 2);
        let t = Trainer {
            net: &net,
            config: &c,
            split: &split,
            normalization: Normalization::of(&split.train),
            checkpoint: None,
            teacher: None,
        };
        let out = t
            .run(Params::init(&net, 1), false, &mut HalfMask, &mut Silent)
            .unwrap();
        let w = &out.params.tensors[0].data;
        assert!(w[..w.len() / 2].iter().all(|&v| v == 0.0));
        assert!(w[w.len() / 2..].iter().all(|&v| v != 0.0));
    }
}
