//! `slimnet eval`.

use anyhow::Result;
use serde_json::json;
use slimnet_models::fit::check_compatible;
use slimnet_models::{evaluate, Model};
use std::path::PathBuf;

/// `slimnet eval` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model file: safetensors, or .slim (run by the runtime).
    pub model: PathBuf,
    /// Dataset directory (default: the bundled MNIST).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Architecture of a file without slimnet metadata (e.g. exported from PyTorch).
    #[arg(long, value_name = "SPEC")]
    pub arch: Option<String>,
    /// Print one JSON object (accuracy, loss, samples, per_class_accuracy, confusion) on stdout.
    #[arg(long)]
    pub json: bool,
    /// For a .slim file: run the integer-only path instead of the f32 path.
    #[arg(long)]
    pub integer_only: bool,
    /// Write the predicted class of every test image to this file, one per line (for parity checks).
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
}

/// Writes one prediction per line.
pub fn write_predictions(
    path: &std::path::Path,
    predictions: impl Iterator<Item = u32>,
) -> Result<()> {
    let text: String = predictions.map(|p| format!("{p}\n")).collect();
    slimnet_models::atomic::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Runs `slimnet eval`.
pub fn run(args: Args) -> Result<()> {
    if let Some(p) = &args.predictions {
        super::check_output(p, &[&args.model])?;
    }
    if super::slim::is_slim(&args.model) {
        return super::slim::eval(
            &args.model,
            args.data,
            args.integer_only,
            args.json,
            args.predictions.as_deref(),
        );
    }
    if args.integer_only {
        anyhow::bail!(
            "--integer-only applies to .slim files; {} is not one",
            args.model.display()
        );
    }
    let model = Model::load(&args.model, args.arch.as_deref())?;
    let data = super::load_data(args.data, args.json)?;
    check_compatible(&model, &data)?;
    let e = evaluate(&model.net, &model.params, &model.normalization, &data.test)?;
    if let Some(p) = &args.predictions {
        write_predictions(p, e.predictions.iter().copied())?;
    }
    if args.json {
        let v = json!({
            "model": args.model,
            "arch": model.net.arch,
            "accuracy": e.accuracy,
            "error": 1.0 - e.accuracy,
            "loss": e.loss,
            "samples": e.samples,
            "per_class_accuracy": e.per_class_accuracy(),
            "confusion": e.confusion,
        });
        outln!("{v}");
        return Ok(());
    }
    outln!(
        "{} ({}) on {} test images",
        args.model.display(),
        model.net.arch,
        e.samples
    );
    outln!(
        "accuracy {} (error {}), loss {:.4}",
        super::pct(e.accuracy),
        super::pct(1.0 - e.accuracy),
        e.loss
    );
    outln!();
    outln!("per class:");
    for (c, acc) in e.per_class_accuracy().iter().enumerate() {
        let n: u32 = e.confusion[c].iter().sum();
        outln!("  {c:>3}  {:>7}  of {n}", super::pct(*acc));
    }
    outln!();
    outln!("confusion matrix (rows: true class, columns: predicted):");
    let classes = e.confusion.len();
    out!("     ");
    for c in 0..classes {
        out!("{c:>6}");
    }
    outln!();
    for (t, row) in e.confusion.iter().enumerate() {
        out!("  {t:>3}");
        for v in row {
            out!("{v:>6}");
        }
        outln!();
    }
    Ok(())
}
