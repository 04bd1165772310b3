//! `slimnet experiment`.

use crate::experiment::{self, Setup};
use anyhow::Result;
use std::path::PathBuf;

/// `slimnet experiment` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which experiment: optimizers, depth, master-worker, decentralized, sparsity, smoothness, or all.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Directory for the report (NAME.md) and its charts (NAME-*.svg, .png); created if missing.
    #[arg(long, default_value = "out/experiments", value_name = "DIR")]
    pub out: PathBuf,
    /// Dataset directory with the four MNIST-format IDX files (default: the bundled MNIST).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Architecture of the runs (all but depth, which builds its own).
    #[arg(long, default_value = "lenet-300-100", value_name = "SPEC")]
    pub model: String,
    /// Epochs per run.
    #[arg(long, value_parser = crate::limits::count(crate::limits::EPOCHS), default_value_t = 5, value_name = "N")]
    pub epochs: usize,
    /// Training images used (default 10,000; 0 for the whole training split).
    #[arg(long, value_parser = crate::limits::count(crate::limits::SAMPLES), default_value_t = 10_000, value_name = "N")]
    pub train_limit: usize,
    /// Validation images, carved from the end of the training set.
    #[arg(long, value_parser = crate::limits::count(crate::limits::VAL), default_value_t = 2000, value_name = "N")]
    pub val: usize,
    /// Hidden neurons in total, spread over 1–4 layers (depth).
    #[arg(long, value_parser = crate::limits::count(crate::limits::NEURONS), default_value_t = 400, value_name = "N")]
    pub neurons: usize,
    /// Seed of every run.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `slimnet experiment`.
pub fn run(args: Args) -> Result<()> {
    let names: Vec<&str> = if args.name == "all" {
        experiment::NAMES.to_vec()
    } else if experiment::NAMES.contains(&args.name.as_str()) {
        vec![args.name.as_str()]
    } else {
        anyhow::bail!(
            "unknown experiment `{}` (expected one of {}, or all)",
            args.name,
            experiment::NAMES.join(", ")
        );
    };
    let mut out_dir = super::OutDir::check(&args.out)?;
    let data = super::load_data(args.data.clone(), args.quiet)?;
    out_dir.create()?;
    let setup = Setup {
        data,
        model: args.model.clone(),
        epochs: args.epochs,
        train_limit: (args.train_limit > 0).then_some(args.train_limit),
        val: args.val,
        neurons: args.neurons,
        seed: args.seed,
        out: args.out.clone(),
        verbose: !args.quiet,
    };
    for name in names {
        let started = std::time::Instant::now();
        let path = experiment::run(name, &setup)?;
        outln!(
            "{name}: {} ({:.0} s)",
            path.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
