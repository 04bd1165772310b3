//! `slimnet report`: accuracy against model size, from compression reports and (optionally) a sweep of
//! compression settings run here, beside the peers' results.

use crate::report::{from_compress_report, from_peer_results, peer_name, AccuracySize, Entry};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use slimnet_models::Model;
use std::path::{Path, PathBuf};

/// `slimnet report` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Compression reports (`slimnet compress --report F.json`, or the JSON `slimnet pipeline` writes).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub from: Vec<PathBuf>,
    /// Run a sweep of compression settings on this trained model (safetensors): the two presets, and the
    /// default preset with its sparsities scaled by each of --sweep-scales.
    #[arg(long, value_name = "MODEL")]
    pub sweep: Option<PathBuf>,
    /// Factors for the sweep's sparsities (each applied to the default preset's per-layer sparsities).
    #[arg(long, value_name = "LIST", default_value = "0.9,1.03")]
    pub sweep_scales: String,
    /// The peers' results files (e.g. ../shared/peers/tf/results.json ../shared/peers/torch/out/results.json).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub peers: Vec<PathBuf>,
    /// The model's name in the peers' files (default: the architecture of the reports).
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// Directory the report (and the sweep's files) is written to.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Dataset directory for the sweep (default: the bundled MNIST).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Print the report as JSON instead of the markdown table.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = slimnet_models::input::read_limited(path, slimnet_models::input::REPORT_LIMIT)?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", path.display()))
}

/// The report of `model`: `runs` (label, compression report), plus the peers' entries.
pub fn build(model: &str, runs: &[(String, Value)], peers: &[PathBuf]) -> Result<AccuracySize> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut samples = None;
    for (label, r) in runs {
        for e in from_compress_report(label, r)? {
            // One baseline, whatever the number of runs.
            if e.source == "baseline" && entries.iter().any(|x| x.source == "baseline") {
                continue;
            }
            entries.push(e);
        }
        samples = samples.or_else(|| r.get("test_samples").and_then(Value::as_u64));
    }
    for path in peers {
        let v = read_json(path)?;
        let found = from_peer_results(&peer_name(path), &v, model);
        if found.is_empty() {
            bail!("{}: no results for model {model:?}", path.display());
        }
        entries.extend(found);
    }
    Ok(AccuracySize::new(model, samples, entries))
}

/// Runs `slimnet report`.
pub fn run(args: Args) -> Result<()> {
    if args.from.is_empty() && args.sweep.is_none() {
        bail!("nothing to report: give compression reports with --from, or a model to sweep with --sweep");
    }
    super::check_inputs("--from", &args.from)?;
    super::check_inputs("--peers", &args.peers)?;
    if let Some(m) = &args.sweep {
        super::check_inputs("--sweep", &[m])?;
    }
    let mut out_dir = super::OutDir::check(&args.out)?;
    let mut runs: Vec<(String, Value)> = Vec::new();
    for path in &args.from {
        let label = path
            .file_stem()
            .map_or("report".into(), |s| s.to_string_lossy().into_owned());
        runs.push((label, read_json(path)?));
    }
    let mut arch: Option<String> = None;
    if let Some(path) = &args.sweep {
        let model = Model::load(path, None)?;
        arch = Some(model.net.arch.clone());
        let scales =
            slimnet_compress::sensitivity::parse_list(&args.sweep_scales, "--sweep-scales", |v| {
                if v > 0.0 && v <= 1.5 {
                    Ok(())
                } else {
                    Err("a scale must be in (0, 1.5]".into())
                }
            })?;
        let data = super::load_data(args.data.clone(), args.quiet || args.json)?;
        let split = data.split(5000, None)?;
        let mut variants: Vec<(String, slimnet_compress::Settings)> = vec![
            (
                "slimnet".into(),
                slimnet_compress::Settings::preset(slimnet_compress::Preset::Slimnet, &model.net),
            ),
            (
                "deep-compression".into(),
                slimnet_compress::Settings::preset(
                    slimnet_compress::Preset::DeepCompression,
                    &model.net,
                ),
            ),
        ];
        for s in scales {
            let mut v =
                slimnet_compress::Settings::preset(slimnet_compress::Preset::Slimnet, &model.net);
            v.sparsity = v.sparsity.multiplied(s);
            v.validate(&model.net)?;
            variants.push((format!("slimnet, sparsity ×{s}"), v));
        }
        out_dir.create()?;
        for (label, settings) in variants {
            let file = args
                .out
                .join(format!("sweep-{}.slim", label.replace([' ', ',', '×'], "")));
            if !args.quiet {
                eprintln!("report: compressing with {label} → {}", file.display());
            }
            let r = super::compress::compress_to(
                &model,
                &data,
                &split,
                &settings,
                &file,
                args.quiet || args.json,
            )?;
            let value = serde_json::to_value(&r)?;
            super::compress::write_report(&file.with_extension("json"), &r)?;
            runs.push((label, value));
        }
    }
    let name = match (&args.model_name, &arch) {
        (Some(n), _) => n.clone(),
        (None, Some(a)) => a.clone(),
        (None, None) => guess_model(&runs).unwrap_or_else(|| "model".into()),
    };
    let report = build(&name, &runs, &args.peers)?;
    let stem = out_dir.create()?.join("report");
    report.write(&stem)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", report.markdown());
        if !args.quiet {
            eprintln!("wrote {}.md, .json, .svg, .png", stem.display());
        }
    }
    Ok(())
}

/// The architecture named in a report's layer names: LeNet-5 has conv layers, LeNet-300-100 fc1..fc3 of the
/// right sizes; anything else stays unnamed (and needs --model-name to match peers).
fn guess_model(runs: &[(String, Value)]) -> Option<String> {
    let layers = runs.first()?.1.get("layers")?.as_array()?;
    let names: Vec<(&str, u64)> = layers
        .iter()
        .filter_map(|l| Some((l.get("name")?.as_str()?, l.get("weights")?.as_u64()?)))
        .collect();
    match names.as_slice() {
        [("fc1", 235_200), ("fc2", 30_000), ("fc3", 1_000)] => Some("lenet-300-100".into()),
        [("conv1", 500), ("conv2", 25_000), ("fc1", 400_000), ("fc2", 5_000)] => {
            Some("lenet-5".into())
        }
        _ => None,
    }
}
