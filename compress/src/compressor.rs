//! The compression pipeline of Deep Compression (Han, Mao & Dally 2016) end to end: pruning with retraining →
//! k-means weight sharing with centroid fine-tuning → 8-bit quantization → entropy coding → one `.slim` file,
//! with the size and the test accuracy after every stage and a per-layer account of the bytes.
//!
//! Every accuracy from the clustering stage on is measured by the runtime on the very bytes of that stage's file
//! ([`crate::evaluate_slim`]); the pruning stage, which has no file of its own, is measured with candle.

use crate::cluster::{BitWidth, ClusterInit, SharedLayer, TieProjection};
use crate::error::{Error, Result};
use crate::evaluate::{evaluate_slim, NumericPath};
use crate::export::{build, fold_batch_norm, Built, Folded, Storage};
use crate::prune::{check_layer, MaskProjection, Masks, PruneSchedule, SparsityTarget};
use crate::slim::{CoderChoice, StreamCoding, WeightPayload};
use serde::Serialize;
use slimnet_models::train::{Selection, StepContext, Teacher};
use slimnet_models::{
    evaluate, Model, NetSpec, Observer, Params, Projection, Split, TrainConfig, Trainer,
};
use std::collections::BTreeMap;
use std::time::Instant;

/// Bit widths per layer; layers not listed are not clustered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerBits(pub BTreeMap<String, BitWidth>);

impl LayerBits {
    /// Parses `5` (every weighted layer) or `fc1=4,fc2=5` (those layers), checking names against `net`.
    pub fn parse(text: &str, net: &NetSpec) -> Result<LayerBits> {
        const FLAG: &str = "--bits";
        let number = |v: &str| -> Result<BitWidth> {
            let b: u32 = v
                .trim()
                .parse()
                .map_err(|_| Error::config(FLAG, format!("`{v}` is not a whole number of bits")))?;
            BitWidth::new(b, FLAG)
        };
        let mut map = BTreeMap::new();
        if !text.contains('=') {
            let b = number(text)?;
            for name in net.layers.iter().filter_map(|l| l.name()) {
                map.insert(name.to_string(), b);
            }
            return Ok(LayerBits(map));
        }
        for item in text.split(',') {
            let (name, v) = item
                .split_once('=')
                .ok_or_else(|| Error::config(FLAG, format!("`{item}` is not NAME=BITS")))?;
            let name = name.trim();
            check_layer(net, name, FLAG)?;
            if map.insert(name.to_string(), number(v)?).is_some() {
                return Err(Error::config(FLAG, format!("{name} is given twice")));
            }
        }
        Ok(LayerBits(map))
    }
}

/// Named settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// slimnet's own: gradual (cubic) pruning to higher sparsity, fewer bits, fine-tuned with Adam.
    Slimnet,
    /// The paper's per-layer rates and bit widths (Tables 2 and 3; 6 bits for LeNet-300-100, 8 for conv and
    /// 5 for fc layers of LeNet-5), pruned in four equal steps.
    DeepCompression,
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "slimnet" | "default" => Ok(Preset::Slimnet),
            "deep-compression" => Ok(Preset::DeepCompression),
            _ => Err(Error::config(
                "--preset",
                format!("`{s}` is not a preset (slimnet, deep-compression)"),
            )),
        }
    }
}

/// Everything the pipeline needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Final sparsity (global or per layer); none skips pruning.
    pub sparsity: SparsityTarget,
    /// Pruning rounds (1 = one-shot).
    pub prune_rounds: usize,
    /// How the sparsity rises over the rounds.
    pub prune_schedule: PruneSchedule,
    /// Retraining epochs after each pruning round (0 = prune without retraining).
    pub retrain_epochs: usize,
    /// Retraining epochs after the last round, at the final sparsity (Zhu & Gupta's recovery period).
    pub final_epochs: usize,
    /// Peak learning rate of retraining (Adam, cosine decay within each round).
    pub retrain_lr: f64,
    /// Bits per layer for weight sharing; empty skips clustering.
    pub bits: LayerBits,
    /// k-means initialization.
    pub cluster_init: ClusterInit,
    /// Centroid fine-tuning epochs (0 = none).
    pub finetune_epochs: usize,
    /// Peak learning rate of centroid fine-tuning.
    pub finetune_lr: f64,
    /// Quantize to 8 bits (int8 codebooks and weights, int32 biases, calibrated activations): the file then has
    /// the integer-only path too. Without it the file is f32-only.
    pub quantize: bool,
    /// Entropy coding of the sparse streams (per stream: bit-packed, Huffman or zstd).
    pub coder: CoderChoice,
    /// Mini-batch size while retraining.
    pub batch_size: usize,
    /// Dropout of the dense model's training; retraining scales it by √(kept fraction) (Han et al. 2015 §3.5).
    pub dropout: f32,
    /// Retrain and fine-tune against the dense model's own predictions (knowledge distillation): `(T, α)`.
    pub distill: Option<(f32, f32)>,
    /// Seed of retraining, fine-tuning and clustering.
    pub seed: u64,
    /// Training images used to calibrate activation ranges.
    pub calibration_samples: usize,
}

impl Settings {
    /// The settings of `preset` for `net`. Architectures other than the two LeNets get the preset's generic
    /// rule: a global sparsity and one bit width for convolutions and one for dense layers.
    pub fn preset(preset: Preset, net: &NetSpec) -> Settings {
        let per_layer = |pairs: &[(&str, f64)]| {
            SparsityTarget::PerLayer(
                pairs
                    .iter()
                    .map(|(n, s)| {
                        (
                            n.to_string(),
                            crate::prune::Sparsity::new(*s, "--preset").expect("preset"),
                        )
                    })
                    .collect(),
            )
        };
        let bits_by_kind = |conv: u32, dense: u32| {
            LayerBits(
                net.layers
                    .iter()
                    .filter_map(|l| {
                        let b = match l {
                            slimnet_models::Layer::Conv2d { .. } => conv,
                            _ => dense,
                        };
                        l.name()
                            .map(|n| (n.to_string(), BitWidth::new(b, "--preset").expect("preset")))
                    })
                    .collect(),
            )
        };
        let base = Settings {
            sparsity: SparsityTarget::Global(
                crate::prune::Sparsity::new(0.9, "--preset").expect("preset"),
            ),
            prune_rounds: 4,
            prune_schedule: PruneSchedule::Cubic,
            retrain_epochs: 3,
            final_epochs: 3,
            retrain_lr: 1e-3,
            bits: bits_by_kind(6, 5),
            cluster_init: ClusterInit::Linear,
            finetune_epochs: 3,
            finetune_lr: 1e-4,
            quantize: true,
            coder: CoderChoice::Smallest { zstd_level: 19 },
            batch_size: 64,
            dropout: 0.2,
            distill: None,
            seed: 1,
            calibration_samples: 1000,
        };
        match (preset, net.arch.as_str()) {
            (Preset::DeepCompression, "lenet-300-100") => Settings {
                sparsity: per_layer(&[("fc1", 0.92), ("fc2", 0.91), ("fc3", 0.74)]),
                prune_schedule: PruneSchedule::Linear,
                bits: bits_by_kind(6, 6),
                ..base
            },
            (Preset::DeepCompression, "lenet-5") => Settings {
                sparsity: per_layer(&[
                    ("conv1", 0.34),
                    ("conv2", 0.88),
                    ("fc1", 0.92),
                    ("fc2", 0.81),
                ]),
                prune_schedule: PruneSchedule::Linear,
                bits: bits_by_kind(8, 5),
                ..base
            },
            (Preset::DeepCompression, _) => Settings {
                prune_schedule: PruneSchedule::Linear,
                bits: bits_by_kind(8, 5),
                ..base
            },
            (Preset::Slimnet, "lenet-300-100") => Settings {
                sparsity: per_layer(&[("fc1", 0.96), ("fc2", 0.94), ("fc3", 0.8)]),
                prune_rounds: 8,
                bits: bits_by_kind(5, 5),
                ..base
            },
            (Preset::Slimnet, "lenet-5") => Settings {
                sparsity: per_layer(&[
                    ("conv1", 0.4),
                    ("conv2", 0.92),
                    ("fc1", 0.97),
                    ("fc2", 0.85),
                ]),
                bits: bits_by_kind(6, 5),
                // Distilling from the dense model won on validation for LeNet-5 (99.32 % against 99.06 %), lost for
                // LeNet-300-100 (98.30 % against 98.56 %): BENCHMARKS.md.
                distill: Some((4.0, 0.7)),
                ..base
            },
            (Preset::Slimnet, _) => Settings {
                sparsity: SparsityTarget::Global(
                    crate::prune::Sparsity::new(0.92, "--preset").expect("preset"),
                ),
                ..base
            },
        }
    }

    /// Checks the settings against the network.
    pub fn validate(&self, net: &NetSpec) -> Result<()> {
        if let SparsityTarget::PerLayer(m) = &self.sparsity {
            for name in m.keys() {
                check_layer(net, name, "--sparsity")?;
            }
        }
        for name in self.bits.0.keys() {
            check_layer(net, name, "--bits")?;
        }
        if self.prune_rounds == 0 {
            return Err(Error::config("--prune-rounds", "must be at least 1"));
        }
        for (flag, lr) in [
            ("--retrain-lr", self.retrain_lr),
            ("--finetune-lr", self.finetune_lr),
        ] {
            if !(lr > 0.0 && lr.is_finite()) {
                return Err(Error::config(flag, format!("must be > 0, got {lr}")));
            }
        }
        if self.batch_size == 0 {
            return Err(Error::config("--batch-size", "must be at least 1"));
        }
        if let Some((t, a)) = self.distill {
            if !(t > 0.0 && t.is_finite() && (0.0..=1.0).contains(&a)) {
                return Err(Error::config(
                    "--distill",
                    format!("needs T > 0 and α in [0, 1], got T = {t}, α = {a}"),
                ));
            }
        }
        if let CoderChoice::Smallest { zstd_level: l } | CoderChoice::Zstd { level: l } = self.coder
        {
            if !(1..=22).contains(&l) {
                return Err(Error::config(
                    "--zstd-level",
                    format!("must be in 1..=22, got {l}"),
                ));
            }
        }
        if self.calibration_samples == 0 {
            return Err(Error::config("--calibration", "must be at least 1"));
        }
        Ok(())
    }
}

/// The size and accuracy after one stage.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// `float32`, `pruned`, `clustered`, `quantized`, `coded`.
    pub name: String,
    /// Bytes of the stage's `.slim` file; for `pruned`, which has no file, the bytes accounted as f32 values with
    /// bit-packed relative positions (see `bytes_kind`).
    pub bytes: usize,
    /// `file` (a `.slim` file written and run) or `accounted`.
    pub bytes_kind: &'static str,
    /// Ratio against the dense f32 weights and biases.
    pub ratio: f64,
    /// Test accuracy (runtime f32 path for stages with a file, candle otherwise).
    pub accuracy: f64,
    /// Test accuracy of the runtime's integer-only path, for files that have it.
    pub accuracy_integer_only: Option<f64>,
    /// Validation accuracy (candle, the weights the stage stands for).
    pub val_accuracy: Option<f64>,
    /// Wall-clock seconds of the stage.
    pub seconds: f64,
}

/// Where one weighted layer's bytes went, in the final file (the columns of Han et al.'s Tables 1–4).
#[derive(Debug, Clone, Serialize)]
pub struct LayerAccount {
    /// Layer name.
    pub name: String,
    /// Weights of the dense layer.
    pub weights: usize,
    /// Weights kept.
    pub kept: usize,
    /// Weights kept, percent.
    pub kept_percent: f64,
    /// `dense f32`, `dense int8` or `sparse shared`.
    pub encoding: &'static str,
    /// Shared values in the codebook (sparse layers).
    pub clusters: Option<usize>,
    /// Bits per index field (sparse layers).
    pub index_bits: Option<u8>,
    /// Bits per relative-position field (sparse layers).
    pub position_bits: Option<u8>,
    /// Coding of the position stream.
    pub position_coding: Option<StreamCoding>,
    /// Coding of the index stream.
    pub index_coding: Option<StreamCoding>,
    /// Average coded bits per kept weight's index (code-length table included).
    pub bits_per_index: Option<f64>,
    /// Average coded bits of position per kept weight (fillers and code-length table included).
    pub bits_per_position: Option<f64>,
    /// Codebook bytes.
    pub codebook_bytes: usize,
    /// Weight bytes before entropy coding (bit-packed streams + codebook, or the dense weights).
    pub bytes_before_coding: usize,
    /// Weight bytes after entropy coding.
    pub bytes_after_coding: usize,
    /// The whole layer section in the file (biases, quantization parameters, headers and padding included).
    pub section_bytes: usize,
    /// The layer's dense f32 weights and biases.
    pub dense_f32_bytes: usize,
    /// `dense_f32_bytes / section_bytes`.
    pub ratio: f64,
}

/// The outcome of [`compress`].
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Bytes of the `.slim` file.
    pub bytes: usize,
    /// Bytes of the dense f32 weights and biases (4 per parameter).
    pub dense_f32_bytes: usize,
    /// `dense_f32_bytes / bytes`.
    pub ratio: f64,
    /// Test accuracy of the file on the runtime's f32 path.
    pub accuracy: f64,
    /// Test accuracy of the file on the runtime's integer-only path (when quantized).
    pub accuracy_integer_only: Option<f64>,
    /// Test accuracy of the uncompressed model (candle).
    pub baseline_accuracy: f64,
    /// Every stage in order.
    pub stages: Vec<Stage>,
    /// Per weighted layer.
    pub layers: Vec<LayerAccount>,
    /// Bytes outside the layer sections (header, section table, graph, input table).
    pub other_bytes: usize,
    /// Test samples.
    pub test_samples: usize,
    /// Total wall-clock seconds.
    pub seconds: f64,
}

/// The result: the file's bytes, the compressed weights (as the f32 path runs them) and the report.
#[derive(Debug, Clone)]
pub struct Compressed {
    /// The `.slim` file.
    pub bytes: Vec<u8>,
    /// The network and weights the file stands for (batch norm folded, weights as dequantized).
    pub model: Model,
    /// Sizes and accuracies.
    pub report: Report,
}

/// Progress of the pipeline; training progress arrives through [`Observer`].
pub trait Events: Observer {
    /// A stage starts; `what` says what it does.
    fn stage_start(&mut self, _name: &str, _what: &str) {}
    /// A stage finished.
    fn stage_end(&mut self, _stage: &Stage) {}
    /// Something the user should know (for example, accuracy collapsed after a stage).
    fn warning(&mut self, _message: &str) {}
}

/// Events ignored.
pub struct Quiet;
impl Observer for Quiet {}
impl Events for Quiet {}

/// Both projections at once: masks for pruned layers that are not clustered, ties for clustered ones.
struct Combined<'a> {
    masks: MaskProjection<'a>,
    ties: TieProjection<'a>,
}

impl Projection for Combined<'_> {
    fn project_gradients(&mut self, ctx: &StepContext, params: &Params, grads: &mut [Vec<f32>]) {
        self.masks.project_gradients(ctx, params, grads);
        self.ties.project_gradients(ctx, params, grads);
    }
    fn project_parameters(&mut self, ctx: &StepContext, params: &mut Params) {
        self.masks.project_parameters(ctx, params);
        self.ties.project_parameters(ctx, params);
    }
}

/// Runs the pipeline on `model` with `split` (retraining on its training part, selecting epochs on its
/// validation part, reporting on its test part).
pub fn compress(
    model: &Model,
    split: &Split,
    settings: &Settings,
    events: &mut dyn Events,
) -> Result<Compressed> {
    let start = Instant::now();
    settings.validate(&model.net)?;
    let folded = fold_batch_norm(model)?;
    let work = Model {
        net: folded.net,
        params: folded.params,
        ..model.clone()
    };
    let dense_f32_bytes = model.net.dense_f32_bytes();
    let ratio = |bytes: usize| dense_f32_bytes as f64 / bytes.max(1) as f64;
    let val_of = |params: &Params| -> Result<Option<f64>> {
        Ok(if split.val.count > 0 {
            Some(evaluate(&work.net, params, &work.normalization, &split.val)?.accuracy)
        } else {
            None
        })
    };
    let mut stages = Vec::new();

    // Stage 0: the dense f32 model as a file.
    let t = Instant::now();
    events.stage_start("float32", "dense f32 baseline");
    let dense_storage = vec![Storage::DenseF32; weighted_layers(&work.net).len()];
    let dense = StageFile::new(
        &work,
        &work.params,
        &dense_storage,
        false,
        CoderChoice::Packed,
        split,
        1,
    )?;
    let baseline_accuracy = dense.accuracy;
    let stage = dense.stage("float32", dense_f32_bytes, val_of(&work.params)?, t);
    push(&mut stages, events, stage);

    // Stage 1: pruning with retraining.
    let mut params = work.params.clone();
    let mut masks = Masks::full(&params);
    if !settings.sparsity.is_none() {
        let t = Instant::now();
        events.stage_start(
            "pruned",
            &format!(
                "magnitude pruning in {} round(s), {} epoch(s) of retraining each, {} after the last",
                settings.prune_rounds, settings.retrain_epochs, settings.final_epochs
            ),
        );
        for round in 1..=settings.prune_rounds {
            let fraction = settings
                .prune_schedule
                .fraction(round, settings.prune_rounds);
            masks = Masks::magnitude(&params, &settings.sparsity.scaled(fraction));
            masks.apply(&mut params);
            let epochs = if round == settings.prune_rounds {
                settings.final_epochs
            } else {
                settings.retrain_epochs
            };
            if epochs > 0 {
                let config =
                    retrain_config(settings, &masks, epochs, settings.retrain_lr, round as u64);
                params = train(
                    &work,
                    split,
                    &config,
                    settings.distill,
                    params,
                    &mut MaskProjection { masks: &masks },
                    events,
                )?;
            }
        }
        let pruned = evaluate(&work.net, &params, &work.normalization, &split.test)?;
        let bytes = accounted_pruned_bytes(&work.net, &masks);
        push(
            &mut stages,
            events,
            Stage {
                name: "pruned".into(),
                bytes,
                bytes_kind: "accounted",
                ratio: ratio(bytes),
                accuracy: pruned.accuracy,
                accuracy_integer_only: None,
                val_accuracy: val_of(&params)?,
                seconds: t.elapsed().as_secs_f64(),
            },
        );
        if pruned.accuracy < 0.5 * baseline_accuracy {
            events.warning(&format!(
                "accuracy collapsed after pruning: {:.2} % (was {:.2} %); lower the sparsity or retrain longer",
                100.0 * pruned.accuracy,
                100.0 * baseline_accuracy
            ));
        }
    }

    // Stage 2: weight sharing with centroid fine-tuning.
    let mut shared: Vec<SharedLayer> = Vec::new();
    if !settings.bits.0.is_empty() {
        let t = Instant::now();
        events.stage_start(
            "clustered",
            &format!(
                "k-means weight sharing ({:?} init), {} epoch(s) of centroid fine-tuning",
                settings.cluster_init, settings.finetune_epochs
            ),
        );
        for (i, (_, layer)) in weighted_layers(&work.net).iter().enumerate() {
            if let Some(bits) = settings.bits.0.get(*layer) {
                let l = SharedLayer::cluster(
                    &params,
                    &masks,
                    layer,
                    *bits,
                    settings.cluster_init,
                    settings.seed ^ i as u64,
                )?;
                l.apply(&mut params);
                shared.push(l);
            }
        }
        if settings.finetune_epochs > 0 {
            let config = retrain_config(
                settings,
                &masks,
                settings.finetune_epochs,
                settings.finetune_lr,
                100,
            );
            // Layers that are clustered are held by their ties; the others by their masks.
            let clustered: Vec<&str> = shared.iter().map(|l| l.layer.as_str()).collect();
            let mask_only = Masks {
                layers: masks
                    .layers
                    .iter()
                    .filter(|m| !clustered.contains(&m.layer.as_str()))
                    .cloned()
                    .collect(),
            };
            let mut projection = Combined {
                masks: MaskProjection { masks: &mask_only },
                ties: TieProjection {
                    layers: &mut shared,
                },
            };
            params = train(
                &work,
                split,
                &config,
                settings.distill,
                params,
                &mut projection,
                events,
            )?;
            for l in &mut shared {
                l.read_centroids(&params);
            }
        }
        let storage = storage_plan(&work.net, &params, &masks, &shared, false);
        let file = StageFile::new(
            &work,
            &params,
            &storage,
            false,
            CoderChoice::Packed,
            split,
            settings.calibration_samples,
        )?;
        let stage = file.stage("clustered", dense_f32_bytes, val_of(&params)?, t);
        push(&mut stages, events, stage);
    }

    // Stage 3: 8-bit quantization; stage 4: entropy coding.
    let quantized_storage = storage_plan(&work.net, &params, &masks, &shared, settings.quantize);
    if settings.quantize {
        let t = Instant::now();
        events.stage_start(
            "quantized",
            "int8 codebooks and weights, int32 biases, calibrated activations",
        );
        let file = StageFile::new(
            &work,
            &params,
            &quantized_storage,
            true,
            CoderChoice::Packed,
            split,
            settings.calibration_samples,
        )?;
        push(
            &mut stages,
            events,
            file.stage("quantized", dense_f32_bytes, None, t),
        );
    }
    let t = Instant::now();
    events.stage_start(
        "coded",
        "entropy coding of the sparse streams; the final file",
    );
    let file = StageFile::new(
        &work,
        &params,
        &quantized_storage,
        settings.quantize,
        settings.coder,
        split,
        settings.calibration_samples,
    )?;
    let val = val_of(&file.built.effective.params)?;
    push(
        &mut stages,
        events,
        file.stage("coded", dense_f32_bytes, val, t),
    );
    let StageFile {
        built,
        bytes,
        accuracy,
        accuracy_integer_only,
    } = file;
    let layers = account(&work.net, &built.file, &bytes, &masks)?;
    let other_bytes = bytes.len() - layers.iter().map(|l| l.section_bytes).sum::<usize>();
    let report = Report {
        bytes: bytes.len(),
        dense_f32_bytes,
        ratio: ratio(bytes.len()),
        accuracy,
        accuracy_integer_only,
        baseline_accuracy,
        stages,
        layers,
        other_bytes,
        test_samples: split.test.count,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok(Compressed {
        bytes,
        model: Model {
            params: built.effective.params,
            ..work
        },
        report,
    })
}

fn push(stages: &mut Vec<Stage>, events: &mut dyn Events, stage: Stage) {
    events.stage_end(&stage);
    stages.push(stage);
}

/// `(index in layers, name)` of every weighted layer.
fn weighted_layers(net: &NetSpec) -> Vec<(usize, &str)> {
    net.layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.name().map(|n| (i, n)))
        .collect()
}

/// The retraining recipe: Adam with cosine decay from `lr`, dropout scaled by √(kept fraction), best epoch on
/// validation.
fn retrain_config(
    settings: &Settings,
    masks: &Masks,
    epochs: usize,
    lr: f64,
    salt: u64,
) -> TrainConfig {
    let (kept, total) = masks.totals();
    let keep = kept as f64 / total.max(1) as f64;
    TrainConfig {
        epochs,
        batch_size: settings.batch_size,
        lr,
        dropout: (f64::from(settings.dropout) * keep.sqrt()) as f32,
        seed: settings.seed.wrapping_mul(1000).wrapping_add(salt),
        select: Selection::Best,
        ..TrainConfig::recipe()
    }
}

/// Retrains `params` of `work`'s network under `projection`, distilling from `work` itself when `distill` is set.
fn train(
    work: &Model,
    split: &Split,
    config: &TrainConfig,
    distill: Option<(f32, f32)>,
    params: Params,
    projection: &mut dyn Projection,
    events: &mut dyn Events,
) -> Result<Params> {
    let trainer = Trainer {
        net: &work.net,
        config,
        split,
        normalization: work.normalization,
        checkpoint: None,
        teacher: distill.map(|(temperature, weight)| Teacher {
            net: &work.net,
            params: &work.params,
            temperature,
            weight,
        }),
    };
    Ok(trainer.run(params, false, projection, events)?.params)
}

/// How each weighted layer is stored: clustered layers shared; pruned but unclustered layers shared through
/// their own int8 values (integer files) or dense f32 (the format has no sparse f32 values); the rest dense.
fn storage_plan(
    net: &NetSpec,
    params: &Params,
    masks: &Masks,
    shared: &[SharedLayer],
    integer: bool,
) -> Vec<Storage> {
    weighted_layers(net)
        .iter()
        .map(|(_, name)| {
            if let Some(l) = shared.iter().find(|l| l.layer == *name) {
                return Storage::Shared {
                    positions: l.positions.clone(),
                    assignment: l.assignment.clone(),
                    centroids: l.centroids.clone(),
                    index_bits: bits_for(l.centroids.len()),
                };
            }
            let m = masks.get(name).expect("every weighted layer has a mask");
            if !integer {
                Storage::DenseF32
            } else if m.kept() == m.keep.len() {
                Storage::DenseI8
            } else {
                int8_shared(&params.tensors[m.tensor].data, &m.keep)
            }
        })
        .collect()
}

/// Bits to index `n` shared values.
fn bits_for(n: usize) -> u8 {
    (usize::BITS - n.saturating_sub(1).leading_zeros()).clamp(1, 8) as u8
}

/// A pruned, unclustered layer as shared weights: its kept weights quantized to int8 on one scale, the distinct
/// int8 values as the codebook.
fn int8_shared(w: &[f32], keep: &[bool]) -> Storage {
    let max = w.iter().fold(0f32, |a, v| a.max(v.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let positions: Vec<usize> = (0..w.len()).filter(|&i| keep[i]).collect();
    let q: Vec<i32> = positions
        .iter()
        .map(|&i| (w[i] / scale).round() as i32)
        .collect();
    let mut values = q.clone();
    values.sort_unstable();
    values.dedup();
    let centroids: Vec<f32> = values.iter().map(|&v| v as f32 * scale).collect();
    Storage::Shared {
        positions,
        assignment: q
            .iter()
            .map(|v| values.binary_search(v).unwrap_or(0) as u32)
            .collect(),
        index_bits: bits_for(centroids.len()),
        centroids,
    }
}

/// A stage's file, with the accuracies the runtime measures on it.
struct StageFile {
    built: Built,
    bytes: Vec<u8>,
    accuracy: f64,
    accuracy_integer_only: Option<f64>,
}

impl StageFile {
    /// Builds the file of `params` stored as `storage`, and runs it on the test set (on both paths when
    /// `integer`).
    fn new(
        work: &Model,
        params: &Params,
        storage: &[Storage],
        integer: bool,
        coder: CoderChoice,
        split: &Split,
        calibration_samples: usize,
    ) -> Result<StageFile> {
        let folded = Folded {
            net: work.net.clone(),
            params: params.clone(),
        };
        let model = Model {
            params: params.clone(),
            ..work.clone()
        };
        let built = build(
            &model,
            &folded,
            storage,
            integer,
            coder,
            &split.train,
            calibration_samples,
        )?;
        let bytes = built.file.to_bytes()?;
        let accuracy = evaluate_slim(&bytes, &split.test, NumericPath::F32)?.accuracy;
        let accuracy_integer_only = if integer {
            Some(evaluate_slim(&bytes, &split.test, NumericPath::Integer)?.accuracy)
        } else {
            None
        };
        Ok(StageFile {
            built,
            bytes,
            accuracy,
            accuracy_integer_only,
        })
    }

    /// The stage's row of the report.
    fn stage(
        &self,
        name: &str,
        dense_f32_bytes: usize,
        val_accuracy: Option<f64>,
        t: Instant,
    ) -> Stage {
        Stage {
            name: name.into(),
            bytes: self.bytes.len(),
            bytes_kind: "file",
            ratio: dense_f32_bytes as f64 / self.bytes.len().max(1) as f64,
            accuracy: self.accuracy,
            accuracy_integer_only: self.accuracy_integer_only,
            val_accuracy,
            seconds: t.elapsed().as_secs_f64(),
        }
    }
}

/// Bytes of the pruned model stored as Han et al. store it before weight sharing: f32 values, bit-packed relative
/// positions at the best width, f32 biases.
fn accounted_pruned_bytes(net: &NetSpec, masks: &Masks) -> usize {
    let mut total = 0usize;
    for m in &masks.layers {
        let kept: Vec<usize> = (0..m.keep.len()).filter(|&i| m.keep[i]).collect();
        let positions = (1..=8u8)
            .map(|r| (crate::slim::position_symbols(&kept, r).len() * r as usize).div_ceil(8))
            .min()
            .unwrap_or(0);
        total += 4 * kept.len() + positions;
    }
    let biases: usize = net.layers.iter().filter_map(|l| l.outputs()).sum();
    total + 4 * biases
}

/// The per-layer account of the final file.
fn account(
    net: &NetSpec,
    file: &crate::SlimFile,
    bytes: &[u8],
    masks: &Masks,
) -> Result<Vec<LayerAccount>> {
    let runtime = slimnet_runtime::Model::from_bytes(bytes)
        .map_err(|e| Error::runtime("reading back the compressed file", e))?;
    let mut out = Vec::new();
    let mut li = 0usize;
    for (i, weights) in file.weighted() {
        let (_, name) = weighted_layers(net)[li];
        li += 1;
        let summary = runtime
            .operator(i)
            .ok_or_else(|| Error::Unsupported(format!("operator {i} missing from the file")))?;
        let m = masks.get(name).expect("mask");
        let n = m.keep.len();
        let outputs = net.layers[weighted_layers(net)[li - 1].0]
            .outputs()
            .unwrap_or(0);
        let dense_f32_bytes = 4 * (n + outputs);
        let acc = match &weights.payload {
            WeightPayload::Sparse(sp) => {
                let (pos, idx) = sp.encode();
                let packed = crate::slim::SparseStreams {
                    position_coding: StreamCoding::Packed,
                    index_coding: StreamCoding::Packed,
                    ..sp.clone()
                };
                let (pp, ip) = packed.encode();
                let kept = sp.indices.len();
                let (clusters, codebook_bytes) = match &sp.codebook {
                    crate::slim::CodebookValues::I8(c) => (c.len(), c.len()),
                    crate::slim::CodebookValues::F32(c) => (c.len(), 4 * c.len()),
                };
                LayerAccount {
                    name: name.to_string(),
                    weights: n,
                    kept,
                    kept_percent: 100.0 * kept as f64 / n.max(1) as f64,
                    encoding: "sparse shared",
                    clusters: Some(clusters),
                    index_bits: Some(sp.index_bits),
                    position_bits: Some(sp.position_bits),
                    position_coding: Some(sp.position_coding),
                    index_coding: Some(sp.index_coding),
                    bits_per_index: Some(8.0 * idx.stored_bytes() as f64 / kept.max(1) as f64),
                    bits_per_position: Some(8.0 * pos.stored_bytes() as f64 / kept.max(1) as f64),
                    codebook_bytes,
                    bytes_before_coding: pp.stored_bytes() + ip.stored_bytes() + codebook_bytes,
                    bytes_after_coding: pos.stored_bytes() + idx.stored_bytes() + codebook_bytes,
                    section_bytes: summary.section_bytes,
                    dense_f32_bytes,
                    ratio: dense_f32_bytes as f64 / summary.section_bytes.max(1) as f64,
                }
            }
            WeightPayload::DenseF32(_) | WeightPayload::DenseI8(_) => {
                let (encoding, per) = if matches!(weights.payload, WeightPayload::DenseF32(_)) {
                    ("dense f32", 4)
                } else {
                    ("dense int8", 1)
                };
                LayerAccount {
                    name: name.to_string(),
                    weights: n,
                    kept: n,
                    kept_percent: 100.0,
                    encoding,
                    clusters: None,
                    index_bits: None,
                    position_bits: None,
                    position_coding: None,
                    index_coding: None,
                    bits_per_index: None,
                    bits_per_position: None,
                    codebook_bytes: 0,
                    bytes_before_coding: per * n,
                    bytes_after_coding: per * n,
                    section_bytes: summary.section_bytes,
                    dense_f32_bytes,
                    ratio: dense_f32_bytes as f64 / summary.section_bytes.max(1) as f64,
                }
            }
        };
        out.push(acc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimnet_models::Shape;

    #[test]
    fn bits_parse_for_all_or_some_layers() {
        let net = NetSpec::parse("mlp:8", Shape::image(2, 2), 2, false).unwrap();
        let all = LayerBits::parse("5", &net).unwrap();
        assert_eq!(all.0.len(), 2);
        let some = LayerBits::parse("fc2=3", &net).unwrap();
        assert_eq!(some.0.keys().collect::<Vec<_>>(), ["fc2"]);
        for bad in ["0", "9", "fc3=4", "fc1=x", "x"] {
            let e = LayerBits::parse(bad, &net).unwrap_err().to_string();
            assert!(e.starts_with("--bits"), "{bad}: {e}");
        }
    }

    #[test]
    fn index_bits_cover_the_codebook() {
        assert_eq!(bits_for(1), 1);
        assert_eq!(bits_for(2), 1);
        assert_eq!(bits_for(3), 2);
        assert_eq!(bits_for(32), 5);
        assert_eq!(bits_for(33), 6);
        assert_eq!(bits_for(256), 8);
    }
}
