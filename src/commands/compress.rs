//! `slimnet compress`: Deep Compression's pipeline on a trained model, one `.slim` file out, with the size and the
//! accuracy of every stage and the per-layer account of the bytes (a table, or one JSON object with `--json`).

use crate::progress::Progress;
use anyhow::{Context, Result};
use slimnet_compress::cluster::ClusterInit;
use slimnet_compress::compressor::{LayerBits, Preset, Report, Settings};
use slimnet_compress::prune::{PruneSchedule, SparsityTarget};
use slimnet_compress::slim::CoderChoice;
use slimnet_models::fit::check_compatible;
use slimnet_models::{Mnist, Model, Split};
use std::path::{Path, PathBuf};

/// A stage that `--skip` can leave out.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipStage {
    /// Pruning (and its retraining).
    Prune,
    /// Weight sharing (and centroid fine-tuning).
    Cluster,
    /// 8-bit quantization (the file is then f32-only).
    Quantize,
    /// Entropy coding (streams stay bit-packed).
    Entropy,
}

/// `--coder`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoderArg {
    /// Per stream, the smaller of bit-packed and Huffman.
    Smallest,
    /// Canonical Huffman for every stream.
    Huffman,
    /// Fixed-width fields (no entropy coding).
    Packed,
    /// zstd (--zstd-level) of the bit-packed form of every stream.
    Zstd,
}

/// The compression flags, shared with `slimnet pipeline`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompressArgs {
    /// Starting settings: slimnet (tuned further than the paper) or deep-compression (the paper's rates and bits).
    /// The flags below override them.
    #[arg(long, default_value = "slimnet", value_name = "NAME")]
    pub preset: String,
    /// Final sparsity: one global fraction (0.9: one magnitude threshold over all layers) or per layer
    /// (fc1=0.92,fc2=0.91; unlisted layers are not pruned).
    #[arg(long, value_name = "S")]
    pub sparsity: Option<String>,
    /// Pruning rounds, each followed by retraining (1 = one-shot).
    #[arg(long, value_parser = crate::limits::count(crate::limits::ROUNDS), value_name = "N")]
    pub prune_rounds: Option<usize>,
    /// How sparsity rises over the rounds: cubic (Zhu & Gupta) or linear (equal steps).
    #[arg(long, value_name = "NAME")]
    pub prune_schedule: Option<String>,
    /// Retraining epochs after each pruning round (0: prune without retraining).
    #[arg(long, value_parser = crate::limits::count(crate::limits::STAGE_EPOCHS), value_name = "N")]
    pub retrain_epochs: Option<usize>,
    /// Retraining epochs after the last round, at the final sparsity.
    #[arg(long, value_parser = crate::limits::count(crate::limits::STAGE_EPOCHS), value_name = "N")]
    pub final_epochs: Option<usize>,
    /// Peak learning rate of retraining (Adam, cosine decay).
    #[arg(long, value_parser = crate::limits::real(0.0, 10.0, true), value_name = "F")]
    pub retrain_lr: Option<f64>,
    /// Bits per cluster index: one width for every layer (5) or per layer (fc1=4,fc2=5; unlisted layers are not
    /// clustered and keep their own int8 values).
    #[arg(long, value_name = "B")]
    pub bits: Option<String>,
    /// k-means initialization: linear, random, density, kmeans++.
    #[arg(long, value_name = "NAME")]
    pub cluster_init: Option<String>,
    /// Centroid fine-tuning epochs.
    #[arg(long, value_parser = crate::limits::count(crate::limits::STAGE_EPOCHS), value_name = "N")]
    pub finetune_epochs: Option<usize>,
    /// Peak learning rate of centroid fine-tuning.
    #[arg(long, value_parser = crate::limits::real(0.0, 10.0, true), value_name = "F")]
    pub finetune_lr: Option<f64>,
    /// Retrain against the dense model's own predictions: T,α (temperature, weight of the teacher's term), e.g.
    /// 4,0.7; `off` to train on the labels alone.
    #[arg(long, value_name = "T,A")]
    pub distill: Option<String>,
    /// Entropy coder of the sparse streams.
    #[arg(long, value_enum, value_name = "NAME")]
    pub coder: Option<CoderArg>,
    /// zstd level (1..=22, default 19) for zstd-coded streams.
    #[arg(long, value_parser = clap::value_parser!(i32).range(crate::limits::ZSTD_LEVEL), value_name = "N")]
    pub zstd_level: Option<i32>,
    /// Stages to leave out (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "STAGE")]
    pub skip: Vec<SkipStage>,
    /// Training images used to calibrate activation ranges for the integer path.
    #[arg(long, value_parser = crate::limits::count(crate::limits::SAMPLES), value_name = "N")]
    pub calibration: Option<usize>,
}

impl CompressArgs {
    /// The settings: the preset for `model`'s network, then every flag given, and `seed` (retraining and
    /// clustering; `compress --seed`, or the training seed in `pipeline`).
    pub fn settings(&self, model: &Model, seed: Option<u64>) -> Result<Settings> {
        let net = &model.net;
        let mut s = Settings::preset(self.preset.parse::<Preset>()?, net);
        if let Some(t) = &self.sparsity {
            s.sparsity = SparsityTarget::parse(t, net)?;
        }
        if let Some(n) = self.prune_rounds {
            s.prune_rounds = n;
        }
        if let Some(t) = &self.prune_schedule {
            s.prune_schedule = t.parse::<PruneSchedule>()?;
        }
        if let Some(n) = self.retrain_epochs {
            s.retrain_epochs = n;
        }
        if let Some(n) = self.final_epochs {
            s.final_epochs = n;
        }
        if let Some(v) = self.retrain_lr {
            s.retrain_lr = v;
        }
        if let Some(t) = &self.bits {
            s.bits = LayerBits::parse(t, net)?;
        }
        if let Some(t) = &self.cluster_init {
            s.cluster_init = t.parse::<ClusterInit>()?;
        }
        if let Some(n) = self.finetune_epochs {
            s.finetune_epochs = n;
        }
        if let Some(v) = self.finetune_lr {
            s.finetune_lr = v;
        }
        if let Some(d) = &self.distill {
            s.distill = if d == "off" {
                None
            } else {
                let bad = || anyhow::anyhow!("--distill: `{d}` is not T,α (e.g. 4,0.7) or off");
                let (t, a) = d.split_once(',').ok_or_else(bad)?;
                Some((
                    t.trim().parse().map_err(|_| bad())?,
                    a.trim().parse().map_err(|_| bad())?,
                ))
            };
        }
        let level = self.zstd_level.unwrap_or(19);
        if let Some(c) = self.coder {
            s.coder = match c {
                CoderArg::Smallest => CoderChoice::Smallest { zstd_level: level },
                CoderArg::Huffman => CoderChoice::Huffman,
                CoderArg::Packed => CoderChoice::Packed,
                CoderArg::Zstd => CoderChoice::Zstd { level },
            };
        } else if let CoderChoice::Smallest { zstd_level } = &mut s.coder {
            *zstd_level = level;
        }
        if let Some(v) = seed {
            s.seed = v;
        }
        if let Some(n) = self.calibration {
            s.calibration_samples = n;
        }
        for skip in &self.skip {
            match skip {
                SkipStage::Prune => s.sparsity = SparsityTarget::PerLayer(Default::default()),
                SkipStage::Cluster => s.bits = LayerBits::default(),
                SkipStage::Quantize => s.quantize = false,
                SkipStage::Entropy => s.coder = CoderChoice::Packed,
            }
        }
        s.validate(net)?;
        Ok(s)
    }
}

/// `slimnet compress` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The trained model (safetensors), or with --lossless an int8 .tflite file.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Recode an int8 .tflite model's weights losslessly (sparse shared weights whose codebook is each tensor's
    /// own int8 values, entropy coded): outputs bit-identical to the original, the file smaller.
    #[arg(long)]
    pub lossless: bool,
    /// Where to write the `.slim` file (atomically).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Architecture of a model file without slimnet metadata (e.g. exported from PyTorch).
    #[arg(long, value_name = "SPEC")]
    pub arch: Option<String>,
    #[command(flatten)]
    pub compress: CompressArgs,
    /// Seed of retraining and clustering: equal seeds give identical files.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Validation samples carved from the end of the training set (epoch selection while retraining).
    #[arg(long, value_parser = crate::limits::count(crate::limits::VAL), default_value_t = 5000, value_name = "N")]
    pub val: usize,
    /// Retrain on only this many training samples (quick runs).
    #[arg(long, value_parser = crate::limits::count(crate::limits::SAMPLES), value_name = "N")]
    pub train_limit: Option<usize>,
    /// Dataset directory (default: the bundled MNIST).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Print one JSON object (the report) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Choose per-layer sparsities and bit widths from the model's sensitivity curves: the smallest file whose
    /// validation accuracy stays within --max-accuracy-drop of the dense model's (other settings: the preset's).
    #[arg(long, conflicts_with_all = ["sparsity", "bits"])]
    pub auto: bool,
    /// The accuracy budget of --auto, in percentage points of validation accuracy.
    #[arg(long, value_parser = crate::limits::real(0.0, 100.0, false), default_value_t = 0.1, value_name = "POINTS", requires = "auto")]
    pub max_accuracy_drop: f64,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `slimnet compress --auto`: the search, then the same outputs as a plain run plus the plans tried.
fn run_auto(args: &Args, model: &Model, settings: &Settings) -> Result<()> {
    let data = super::load_data(args.data.clone(), args.quiet || args.json)?;
    check_compatible(model, &data)?;
    let split = data.split(args.val, args.train_limit)?;
    let mut progress = Progress::new(args.quiet || args.json, None, "");
    let (compressed, log) = slimnet_compress::auto::auto_compress(
        model,
        &split,
        settings,
        args.max_accuracy_drop,
        &mut progress,
    )?;
    slimnet_models::atomic::write_atomic(&args.out, &compressed.bytes)?;
    let report = &compressed.report;
    let mut json = serde_json::to_value(report)?;
    json["auto"] = serde_json::to_value(&log)?;
    if let Some(path) = &args.report {
        slimnet_models::atomic::write_atomic(
            path,
            serde_json::to_string_pretty(&json)?.as_bytes(),
        )?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    outln!();
    outln!(
        "--auto, budget {} validation points (dense model: {} on validation); plans compressed:",
        args.max_accuracy_drop,
        super::pct(log.baseline_val_accuracy)
    );
    outln!();
    outln!("| | τ (points) | sparsity | bits | bytes | validation drop | test accuracy |");
    outln!("| --- | ---: | --- | --- | ---: | ---: | ---: |");
    for (i, a) in log.attempts.iter().enumerate() {
        let list = |m: Vec<String>| m.join(", ");
        outln!(
            "| {} | {} | {} | {} | {} | {:.2} {} | {} |",
            if i == log.chosen { "chosen" } else { "" },
            a.tolerance,
            list(
                a.sparsity
                    .iter()
                    .map(|(k, v)| format!("{k} {:.0} %", 100.0 * v))
                    .collect()
            ),
            list(a.bits.iter().map(|(k, v)| format!("{k} {v}")).collect()),
            super::thousands(a.bytes),
            a.val_drop,
            if a.within_budget { "✔" } else { "✘" },
            super::pct(a.test_accuracy)
        );
    }
    print_report(&args.model, &args.out, model, report);
    Ok(())
}

/// Runs `slimnet compress`.
pub fn run(args: Args) -> Result<()> {
    super::check_output(&args.out, &[&args.model])?;
    if let Some(r) = &args.report {
        super::check_output(r, &[&args.model])?;
        if slimnet_models::atomic::same_output(r, &args.out) {
            anyhow::bail!("{}: --report names the --out file", r.display());
        }
    }
    if args.lossless {
        return run_lossless(&args);
    }
    let model = Model::load(&args.model, args.arch.as_deref())?;
    let settings = args
        .compress
        .settings(&model, args.seed)
        .with_context(|| format!("{}", args.model.display()))?;
    if args.auto {
        return run_auto(&args, &model, &settings);
    }
    let data = super::load_data(args.data.clone(), args.quiet || args.json)?;
    let split = data.split(args.val, args.train_limit)?;
    let report = compress_to(
        &model,
        &data,
        &split,
        &settings,
        &args.out,
        args.quiet || args.json,
    )?;
    if let Some(path) = &args.report {
        write_report(path, &report)?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&args.model, &args.out, &model, &report);
    }
    Ok(())
}

/// Compresses `model` on `split` (of `data`) and writes the file to `out`; the report comes back.
pub fn compress_to(
    model: &Model,
    data: &Mnist,
    split: &Split,
    settings: &Settings,
    out: &Path,
    quiet: bool,
) -> Result<Report> {
    check_compatible(model, data)?;
    let mut progress = Progress::new(quiet, None, "");
    let compressed = slimnet_compress::compress(model, split, settings, &mut progress)?;
    slimnet_models::atomic::write_atomic(out, &compressed.bytes)?;
    let r = &compressed.report;
    if r.accuracy < 0.5 * r.baseline_accuracy {
        eprintln!(
            "warning: accuracy collapsed: {} after compression against {} before; see the stages",
            super::pct(r.accuracy),
            super::pct(r.baseline_accuracy)
        );
    }
    Ok(compressed.report)
}

/// Writes the report as JSON, atomically.
pub fn write_report(path: &Path, report: &Report) -> Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    slimnet_models::atomic::write_atomic(path, json.as_bytes())?;
    Ok(())
}

/// The stage table (accuracy against size).
pub fn print_stages(report: &Report) {
    outln!("| stage | test accuracy | error | integer-only accuracy | bytes | ratio vs dense f32 | seconds |");
    outln!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for s in &report.stages {
        outln!(
            "| {} | {} | {} | {} | {}{} | {:.1}× | {:.1} |",
            s.name,
            super::pct(s.accuracy),
            super::pct(1.0 - s.accuracy),
            s.accuracy_integer_only
                .map(super::pct)
                .unwrap_or_else(|| "—".into()),
            super::thousands(s.bytes),
            if s.bytes_kind == "file" {
                ""
            } else {
                " (accounted)"
            },
            s.ratio,
            s.seconds
        );
    }
}

/// The per-layer table, as in Han et al.'s tables.
pub fn print_layers(report: &Report) {
    outln!(
        "| layer | weights | kept | encoding | clusters | index bits | position bits | coded bits/index | coded bits/position | codebook B | before coding B | after coding B | section B | ratio |"
    );
    outln!("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let opt = |v: Option<String>| v.unwrap_or_else(|| "—".into());
    for l in &report.layers {
        outln!(
            "| {} | {} | {:.2} % | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1}× |",
            l.name,
            super::thousands(l.weights),
            l.kept_percent,
            l.encoding,
            opt(l.clusters.map(|v| v.to_string())),
            opt(l.index_bits.map(|v| v.to_string())),
            opt(l.position_bits.map(|v| v.to_string())),
            opt(l
                .bits_per_index
                .zip(l.index_coding)
                .map(|(v, c)| format!("{v:.2} ({})", coding(c)))),
            opt(l
                .bits_per_position
                .zip(l.position_coding)
                .map(|(v, c)| format!("{v:.2} ({})", coding(c)))),
            l.codebook_bytes,
            super::thousands(l.bytes_before_coding),
            super::thousands(l.bytes_after_coding),
            super::thousands(l.section_bytes),
            l.ratio
        );
    }
    outln!(
        "| other (header, graph, input table) | | | | | | | | | | | | {} | |",
        super::thousands(report.other_bytes)
    );
    outln!(
        "| **total** | | | | | | | | | | | | **{}** | **{:.1}×** |",
        super::thousands(report.bytes),
        report.ratio
    );
}

fn coding(c: slimnet_compress::slim::StreamCoding) -> &'static str {
    match c {
        slimnet_compress::slim::StreamCoding::Packed => "packed",
        slimnet_compress::slim::StreamCoding::Huffman => "Huffman",
        slimnet_compress::slim::StreamCoding::Zstd(_) => "zstd",
    }
}

fn print_report(model_path: &Path, out: &Path, model: &Model, r: &Report) {
    outln!();
    outln!(
        "{} ({}) → {}: {} bytes, {:.1}× smaller than dense f32 ({} bytes); test accuracy {} (f32 path){}, {} before",
        model_path.display(),
        model.net.arch,
        out.display(),
        super::thousands(r.bytes),
        r.ratio,
        super::thousands(r.dense_f32_bytes),
        super::pct(r.accuracy),
        r.accuracy_integer_only
            .map(|a| format!(", {} (integer-only)", super::pct(a)))
            .unwrap_or_default(),
        super::pct(r.baseline_accuracy)
    );
    outln!();
    print_stages(r);
    outln!();
    print_layers(r);
}

/// `slimnet compress MODEL.tflite --lossless`.
fn run_lossless(args: &Args) -> Result<()> {
    let source = slimnet_models::input::read_model(&args.model)?;
    if !slimnet_compress::tflite::is_tflite(&source) {
        anyhow::bail!(
            "{}: --lossless takes an int8 .tflite model",
            args.model.display()
        );
    }
    let coder = slimnet_compress::slim::CoderChoice::Smallest { zstd_level: 19 };
    let (bytes, summary) = slimnet_compress::lossless::recode_tflite(&source, coder)
        .with_context(|| format!("{}", args.model.display()))?;
    slimnet_runtime::Model::from_bytes(&bytes)
        .map_err(|e| anyhow::anyhow!("internal error: the recoded file does not load: {e}"))?;
    slimnet_models::atomic::write_atomic(&args.out, &bytes)?;
    if let Some(path) = &args.report {
        slimnet_models::atomic::write_atomic(
            path,
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    let pct = |n: usize, of: usize| 100.0 * (1.0 - n as f64 / of.max(1) as f64);
    outln!(
        "{}: {} bytes, lossless: {:.1} % smaller than the .tflite ({} bytes) and {:.1} % smaller than its zstd -19 ({} bytes)",
        args.out.display(),
        super::thousands(summary.bytes),
        pct(summary.bytes, summary.tflite_bytes),
        super::thousands(summary.tflite_bytes),
        pct(summary.bytes, summary.tflite_zstd19_bytes),
        super::thousands(summary.tflite_zstd19_bytes)
    );
    for r in &summary.operators {
        outln!(
            "  operator {:>2}: {:>7} weights, {:>7} non-zero, {:>3} distinct values, {:>7} → {:>7} bytes",
            r.op, r.weights, r.kept, r.codebook, r.bytes_before, r.bytes_after
        );
    }
    Ok(())
}
