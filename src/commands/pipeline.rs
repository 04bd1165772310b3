//! `slimnet pipeline`: the main job. Trains (or loads) a model with the default recipe, compresses it with the
//! default preset (or the compression flags given), and prints the accuracy-versus-size table of every stage.

use super::train::RecipeArgs;
use crate::progress::Progress;
use anyhow::Result;
use slimnet_models::fit::{check_compatible, fit};
use slimnet_models::{evaluate, Model};
use std::path::PathBuf;

/// `slimnet pipeline` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Start from this trained model instead of training one.
    #[arg(long, value_name = "FILE")]
    pub model_file: Option<PathBuf>,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    #[command(flatten)]
    pub compress: super::compress::CompressArgs,
    /// Dataset directory (default: the bundled MNIST).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The peers' results files to put beside this run in the accuracy-versus-size report (e.g.
    /// ../shared/peers/tf/results.json ../shared/peers/torch/out/results.json).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub peers: Vec<PathBuf>,
    /// Directory for the models and reports this run writes.
    #[arg(long, default_value = "out", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Print only the results table.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `slimnet pipeline`.
pub fn run(args: Args) -> Result<()> {
    super::check_inputs("--peers", &args.peers)?;
    if let Some(m) = &args.model_file {
        super::check_inputs("--model-file", &[m])?;
    }
    let mut out_dir = super::OutDir::check(&args.out_dir)?;
    let data = super::load_data(args.data.clone(), args.quiet)?;
    out_dir.create()?;
    let (model, path, accuracy) = match &args.model_file {
        Some(path) => {
            let model = Model::load(path, None)?;
            check_compatible(&model, &data)?;
            let e = evaluate(&model.net, &model.params, &model.normalization, &data.test)?;
            (model, path.clone(), e.accuracy)
        }
        None => {
            let config = args.recipe.config()?;
            let path = args.out_dir.join(format!(
                "{}.safetensors",
                args.recipe.model.replace(':', "_")
            ));
            let req = args.recipe.request(config, None, false);
            let mut progress = Progress::new(args.quiet, None, "train: ");
            let fitted = fit(&data, &req, &mut progress)?;
            fitted.model.save(&path)?;
            (fitted.model, path, fitted.metrics.test_accuracy)
        }
    };
    let settings = args.compress.settings(&model, Some(args.recipe.seed))?;
    let out = args.out_dir.join(format!(
        "{}.slim",
        path.file_stem()
            .map_or("model".into(), |s| s.to_string_lossy())
    ));
    let split = data.split(args.recipe.val, args.recipe.train_limit)?;
    let report = super::compress::compress_to(&model, &data, &split, &settings, &out, args.quiet)?;
    let report_path = out.with_extension("json");
    super::compress::write_report(&report_path, &report)?;
    // The accuracy-versus-size report: the float baseline, every stage, and the peers when given.
    let stem = out.with_file_name(format!(
        "{}-report",
        out.file_stem()
            .map_or("model".into(), |s| s.to_string_lossy())
    ));
    let label = model.net.arch.clone();
    let sized = super::report::build(
        &model.net.arch,
        &[(label, serde_json::to_value(&report)?)],
        &args.peers,
    )?;
    sized.write(&stem)?;
    outln!();
    outln!(
        "{} ({}, trained to {} test accuracy) → {} ({} bytes, {:.1}× smaller), {} test images",
        path.display(),
        model.net.arch,
        super::pct(accuracy),
        out.display(),
        super::thousands(report.bytes),
        report.ratio,
        data.test.count
    );
    outln!();
    super::compress::print_stages(&report);
    outln!();
    super::compress::print_layers(&report);
    outln!();
    outln!(
        "report: {}; accuracy against size: {}.md (.json, .svg, .png)",
        report_path.display(),
        stem.display()
    );
    Ok(())
}
