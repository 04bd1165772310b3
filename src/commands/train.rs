//! `slimnet train`.

use crate::progress::Progress;
use anyhow::Result;
use clap::ValueEnum;
use slimnet_models::fit::{fit, FitRequest};
use slimnet_models::net::Loss;
use slimnet_models::train::Selection;
use slimnet_models::{OptimizerKind, Schedule, TrainConfig};
use std::path::PathBuf;

/// The training recipe's flags, shared with `pipeline`.
#[derive(clap::Args, Debug, Clone)]
pub struct RecipeArgs {
    /// Architecture: lenet-300-100, lenet-5, mlp:H1-H2-… (e.g. mlp:512-256-128) or cnn:TOKENS
    /// (e.g. cnn:c8k3-p2-c16k3-p2-f64; cNkK conv, pK max-pool, fN dense).
    #[arg(long, default_value = "lenet-300-100", value_name = "SPEC")]
    pub model: String,
    /// Passes over the training data.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub epochs: usize,
    /// Samples per step: 1 is pure SGD, the training-set size is full-batch gradient descent.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub batch_size: usize,
    /// Update rule: sgd, momentum, nesterov, adagrad, rmsprop, adam.
    #[arg(long, default_value = "adam", value_name = "NAME")]
    pub optimizer: String,
    /// Base learning rate (> 0).
    #[arg(
        long,
        default_value_t = 1e-3,
        value_name = "F",
        allow_negative_numbers = true
    )]
    pub lr: f64,
    /// Momentum coefficient for momentum and nesterov.
    #[arg(long, default_value_t = 0.9, value_name = "F")]
    pub momentum: f32,
    /// Learning-rate schedule: constant, step, inv-sqrt (η₀/√(1+e)), inv-time (η₀/(1+k·e)), cosine; e = epochs
    /// elapsed, fractional.
    #[arg(long, default_value = "cosine", value_name = "NAME")]
    pub schedule: String,
    /// Schedule parameter: γ for step (0.1), k for inv-time (1), final fraction of η₀ for cosine (0).
    #[arg(long, value_name = "F")]
    pub lr_decay: Option<f64>,
    /// Epochs between drops of the step schedule (default: a third of --epochs).
    #[arg(long, value_name = "F")]
    pub lr_step_every: Option<f64>,
    /// L1 penalty on weights.
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    pub l1: f32,
    /// L2 penalty on weights (weight decay).
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    pub l2: f32,
    /// Dropout rate on hidden fully connected layers, in [0, 1).
    #[arg(long, default_value_t = 0.2, value_name = "F")]
    pub dropout: f32,
    /// Batch normalization after every hidden weighted layer.
    #[arg(long)]
    pub batch_norm: bool,
    /// Loss: cross-entropy (softmax, stable log-sum-exp) or mse (logits against one-hot targets).
    #[arg(long, default_value = "cross-entropy", value_name = "NAME")]
    pub loss: String,
    /// Seed for initialization, shuffling and dropout: equal seeds give identical models.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,
    /// Validation samples carved from the end of the training set, for picking the epoch.
    #[arg(long, default_value_t = 5000, value_name = "N")]
    pub val: usize,
    /// Use only the first N training samples (quick runs).
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
    /// Which epoch's weights to keep.
    #[arg(long, value_enum, default_value_t = Select::Best)]
    pub select: Select,
}

/// `--select`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Select {
    /// The epoch with the best validation accuracy.
    Best,
    /// The last epoch.
    Last,
}

impl RecipeArgs {
    /// The trainer's configuration (validated).
    pub fn config(&self) -> Result<TrainConfig> {
        let optimizer: OptimizerKind = self.optimizer.parse()?;
        let config = TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer: optimizer.with_momentum(self.momentum),
            lr: self.lr,
            schedule: Schedule::parse(
                &self.schedule,
                self.lr_decay,
                self.lr_step_every,
                self.epochs,
            )?,
            l1: self.l1,
            l2: self.l2,
            dropout: self.dropout,
            loss: self.loss.parse::<Loss>()?,
            seed: self.seed,
            select: match self.select {
                Select::Best => Selection::Best,
                Select::Last => Selection::Last,
            },
        };
        config.validate()?;
        Ok(config)
    }
}

/// `slimnet train` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Dataset directory with the four MNIST-format IDX files (default: the bundled MNIST, checksums verified).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Where to write the trained model (safetensors, written atomically).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Per-epoch metrics file: JSON if it ends in .json, CSV otherwise.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Checkpoint written after every epoch (default: OUT.ckpt).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint (same recipe; --epochs may grow).
    #[arg(long)]
    pub resume: bool,
    /// Print only the final summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `slimnet train`.
pub fn run(args: Args) -> Result<()> {
    let config = args.recipe.config()?;
    super::check_out_dir(&args.out)?;
    let data = super::load_data(args.data.clone(), args.quiet)?;
    let checkpoint = args.checkpoint.clone().unwrap_or_else(|| {
        let mut p = args.out.clone().into_os_string();
        p.push(".ckpt");
        PathBuf::from(p)
    });
    if args.resume && !checkpoint.exists() {
        anyhow::bail!("--resume: no checkpoint at {}", checkpoint.display());
    }
    let req = FitRequest {
        arch: args.recipe.model.clone(),
        batch_norm: args.recipe.batch_norm,
        config,
        val: args.recipe.val,
        train_limit: args.recipe.train_limit,
        checkpoint: Some(checkpoint),
        resume: args.resume,
    };
    let mut progress = Progress::new(args.quiet, args.metrics.clone(), "");
    let fitted = fit(&data, &req, &mut progress)?;
    fitted.model.save(&args.out)?;
    let m = &fitted.metrics;
    println!(
        "{}: {} ({} parameters), epoch {} of {} selected{}, test accuracy {} (loss {:.4}), {:.1} s of training",
        args.out.display(),
        fitted.model.net.arch,
        super::thousands(fitted.model.net.parameter_count()),
        m.selected_epoch,
        m.epochs,
        m.val_accuracy.map(|v| format!(" (validation {})", super::pct(v))).unwrap_or_default(),
        super::pct(m.test_accuracy),
        m.test_loss,
        m.train_seconds
    );
    Ok(())
}
