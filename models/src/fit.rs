//! One call from data to a saved-ready [`Model`]: split the data, parse the architecture, train, select the
//! epoch on the validation split, evaluate once on the test split, and record it all in the model's metadata.
//! The CLI's `train` and `pipeline` both use it.

use crate::arch::{NetSpec, Shape};
use crate::data::{Mnist, Normalization};
use crate::error::{Error, Result};
use crate::eval::{evaluate, Evaluation};
use crate::params::{Model, Params};
use crate::train::{EpochMetrics, NoProjection, Observer, TrainConfig, Trainer};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// What to train and how.
#[derive(Debug, Clone)]
pub struct FitRequest {
    /// Architecture spec string (`lenet-300-100`, `mlp:…`, `cnn:…`).
    pub arch: String,
    /// Batch normalization on hidden layers.
    pub batch_norm: bool,
    /// The recipe.
    pub config: TrainConfig,
    /// Validation samples carved from the end of the training set.
    pub val: usize,
    /// Keep only this many training samples (quick runs).
    pub train_limit: Option<usize>,
    /// Checkpoint file, written every epoch.
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint if it exists.
    pub resume: bool,
}

/// The final figures recorded in a model's metadata (`slimnet.metrics`).
#[derive(Debug, Clone, Serialize)]
pub struct FinalMetrics {
    /// Test accuracy (0..1).
    pub test_accuracy: f64,
    /// Test cross-entropy.
    pub test_loss: f64,
    /// Validation accuracy of the selected epoch.
    pub val_accuracy: Option<f64>,
    /// The selected epoch (1-based).
    pub selected_epoch: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Training samples used.
    pub train_samples: usize,
}

/// A trained model with its history and test evaluation.
pub struct Fitted {
    /// The model, metadata filled in.
    pub model: Model,
    /// Every epoch's metrics.
    pub history: Vec<EpochMetrics>,
    /// Test-set evaluation of the selected weights.
    pub test: Evaluation,
    /// The figures stored in the metadata.
    pub metrics: FinalMetrics,
}

/// Trains `req` on `data`.
pub fn fit(data: &Mnist, req: &FitRequest, observer: &mut dyn Observer) -> Result<Fitted> {
    let split = data.split(req.val, req.train_limit)?;
    let net = NetSpec::parse(
        &req.arch,
        Shape::image(data.train.rows, data.train.cols),
        data.classes.max(2),
        req.batch_norm,
    )?;
    let normalization = Normalization::of(&split.train);
    let trainer = Trainer {
        net: &net,
        config: &req.config,
        split: &split,
        normalization,
        checkpoint: req.checkpoint.clone(),
        teacher: None,
    };
    let init = Params::init(&net, req.config.seed);
    let trained = trainer.run(init, req.resume, &mut NoProjection, observer)?;
    let test = evaluate(&net, &trained.params, &normalization, &split.test)?;
    let selected = trained
        .history
        .get(trained.selected_epoch.saturating_sub(1));
    let metrics = FinalMetrics {
        test_accuracy: test.accuracy,
        test_loss: test.loss,
        val_accuracy: selected.and_then(|m| m.val_accuracy),
        selected_epoch: trained.selected_epoch,
        epochs: trained.history.len(),
        train_seconds: trained.history.iter().map(|m| m.seconds).sum(),
        train_samples: split.train.count,
    };
    let metadata = HashMap::from([
        (
            "slimnet.metrics".to_string(),
            serde_json::to_string(&metrics).expect("serializable"),
        ),
        (
            "slimnet.train".to_string(),
            serde_json::to_string(&req.config).expect("serializable"),
        ),
    ]);
    Ok(Fitted {
        model: Model {
            net,
            normalization,
            params: trained.params,
            dataset_sha256: Some(data.sha256.clone()),
            metadata,
        },
        history: trained.history,
        test,
        metrics,
    })
}

/// Checks that `model` can run on `data`: same image size, no label beyond its classes.
pub fn check_compatible(model: &Model, data: &Mnist) -> Result<()> {
    let s = model.net.input;
    if s.channels != 1 || (s.height, s.width) != (data.test.rows, data.test.cols) {
        return Err(Error::Split(format!(
            "{}: images are {}×{}, the model expects {s}",
            data.dir.display(),
            data.test.rows,
            data.test.cols
        )));
    }
    if data.classes > model.net.classes {
        return Err(Error::Split(format!(
            "{}: labels use {} classes, the model has {} outputs",
            data.dir.display(),
            data.classes,
            model.net.classes
        )));
    }
    Ok(())
}
