//! One call from data to a saved-ready [`Model`]: split the data, parse the architecture, train, select the
//! epoch on the validation split, evaluate once on the test split, and record it all in the model's metadata.
//! The CLI's `train` and `pipeline` both use it.

use crate::arch::{NetSpec, Shape};
use crate::data::{Mnist, Normalization};
use crate::distributed::{
    self, Algorithm, DistEpoch, DistTrained, Job, MessageCompression, Topology,
};
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

/// The final figures recorded in a model's metadata (`slimnet.metrics`). Everything in it follows from the seed
/// and the data, so that the same training run writes the same bytes; the wall-clock time is reported, not stored.
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
    /// Seconds spent in training steps (printed; kept out of the model file, which must be reproducible).
    #[serde(skip)]
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
    let (split, net, normalization) = prepare(data, req)?;
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
    let per_epoch: Vec<(Option<f64>, f64)> = trained
        .history
        .iter()
        .map(|m| (m.val_accuracy, m.seconds))
        .collect();
    let metrics = FinalMetrics::of(&test, &per_epoch, trained.selected_epoch, split.train.count);
    let metadata = metadata(&metrics, &req.config);
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

/// The split, the network and the input normalization a request trains with.
fn prepare(data: &Mnist, req: &FitRequest) -> Result<(crate::data::Split, NetSpec, Normalization)> {
    let split = data.split(req.val, req.train_limit)?;
    let net = NetSpec::parse(
        &req.arch,
        Shape::image(data.train.rows, data.train.cols),
        data.classes.max(2),
        req.batch_norm,
    )?;
    let normalization = Normalization::of(&split.train);
    Ok((split, net, normalization))
}

impl FinalMetrics {
    /// From the test evaluation, each epoch's (validation accuracy, seconds), the selected epoch (1-based) and
    /// the training samples.
    fn of(
        test: &Evaluation,
        per_epoch: &[(Option<f64>, f64)],
        selected_epoch: usize,
        train_samples: usize,
    ) -> Self {
        FinalMetrics {
            test_accuracy: test.accuracy,
            test_loss: test.loss,
            val_accuracy: per_epoch
                .get(selected_epoch.saturating_sub(1))
                .and_then(|m| m.0),
            selected_epoch,
            epochs: per_epoch.len(),
            train_seconds: per_epoch.iter().map(|m| m.1).sum(),
            train_samples,
        }
    }
}

fn metadata(metrics: &FinalMetrics, config: &crate::TrainConfig) -> HashMap<String, String> {
    HashMap::from([
        (
            "slimnet.metrics".to_string(),
            serde_json::to_string(metrics).expect("serializable"),
        ),
        (
            "slimnet.train".to_string(),
            serde_json::to_string(config).expect("serializable"),
        ),
    ])
}

/// Which distributed algorithm, as the command line says it; resolved into an [`Algorithm`] once the number of
/// nodes is known (under MPI: the job's size).
#[derive(Debug, Clone, PartialEq)]
pub enum DistMode {
    /// Master–worker; asynchronous with this staleness bound if set.
    MasterWorker {
        /// `Some(s)`: asynchronous updates, gradients more than `s` updates stale dropped.
        staleness: Option<usize>,
    },
    /// Decentralized over a graph.
    Decentralized {
        /// A name (`two-star`, `ring`, `complete`) or an edge list (see [`Topology::parse`]).
        topology: String,
        /// Consensus step γ in (0, 1].
        consensus_step: f32,
    },
}

/// Where the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Threads in this process, this many nodes (the master included).
    Threads {
        /// Nodes.
        nodes: usize,
    },
    /// The ranks of an MPI job (`mpirun -n N`); `nodes`, if set, must equal N.
    Mpi {
        /// Expected number of ranks.
        nodes: Option<usize>,
    },
}

/// A distributed training request.
#[derive(Debug, Clone)]
pub struct DistRequest {
    /// The algorithm.
    pub mode: DistMode,
    /// Message compression.
    pub compression: MessageCompression,
    /// Threads or MPI.
    pub backend: Backend,
}

impl DistMode {
    /// The algorithm for `nodes` nodes.
    pub fn algorithm(&self, nodes: usize) -> Result<Algorithm> {
        Ok(match self {
            DistMode::MasterWorker { staleness } => Algorithm::MasterWorker {
                staleness: *staleness,
            },
            DistMode::Decentralized {
                topology,
                consensus_step,
            } => Algorithm::Decentralized {
                topology: Topology::parse(topology, Some(nodes))?,
                consensus_step: *consensus_step,
            },
        })
    }

    /// The node count when none is given: 7 for master–worker (six workers and the master), the graph's for a
    /// named two-star or an edge list, 6 for a ring or a complete graph.
    pub fn default_nodes(&self) -> usize {
        match self {
            DistMode::MasterWorker { .. } => 7,
            DistMode::Decentralized { topology, .. } => Topology::parse(topology, None)
                .map(|t| t.nodes())
                .unwrap_or(6),
        }
    }
}

/// A model trained over a network, with its history, traffic and test evaluation.
pub struct DistFitted {
    /// The model, metadata filled in.
    pub model: Model,
    /// The run: history, bytes per link.
    pub trained: DistTrained,
    /// Test-set evaluation of the selected weights.
    pub test: Evaluation,
    /// The figures stored in the metadata.
    pub metrics: FinalMetrics,
}

/// Trains `req` over a network of nodes as `dist` says. Returns the model on rank 0 (always, with threads) and
/// `None` on the other MPI ranks. Checkpoints and resuming are not supported here.
pub fn fit_distributed(
    data: &Mnist,
    req: &FitRequest,
    dist: &DistRequest,
    on_epoch: &mut (dyn FnMut(&DistEpoch) + Send),
) -> Result<Option<DistFitted>> {
    if req.resume {
        return Err(Error::config(
            "--resume",
            "not supported with --distributed",
        ));
    }
    let (split, net, normalization) = prepare(data, req)?;
    let job = |nodes: usize| -> Result<Job> {
        Ok(Job {
            net: &net,
            config: &req.config,
            algorithm: dist.mode.algorithm(nodes)?,
            compression: dist.compression,
            normalization,
        })
    };
    let trained = match dist.backend {
        Backend::Threads { nodes } => {
            Some(distributed::run_threads(&job(nodes)?, &split, nodes, on_epoch)?)
        }
        #[cfg(feature = "mpi")]
        Backend::Mpi { nodes } => distributed::mpi::run(
            |size| match nodes {
                Some(n) if n != size => Err(Error::Distributed(format!(
                    "--nodes {n} but mpirun started {size} ranks"
                ))),
                _ => job(size),
            },
            &split,
            on_epoch,
        )?,
        #[cfg(not(feature = "mpi"))]
        Backend::Mpi { .. } => {
            return Err(Error::Distributed(
                "this slimnet was built without MPI: rebuild with `cargo build --release --features mpi` \
                 (needs Open MPI and libclang), or train on threads with --backend threads"
                    .into(),
            ))
        }
    };
    let Some(trained) = trained else {
        return Ok(None);
    };
    let test = evaluate(&net, &trained.params, &normalization, &split.test)?;
    let per_epoch: Vec<(Option<f64>, f64)> = trained
        .history
        .iter()
        .map(|m| (m.val_accuracy, m.seconds))
        .collect();
    let metrics = FinalMetrics::of(&test, &per_epoch, trained.selected_epoch, split.train.count);
    let mut metadata = metadata(&metrics, &req.config);
    metadata.insert(
        "slimnet.distributed".to_string(),
        serde_json::json!({
            "algorithm": job(trained.nodes)?.algorithm.describe(),
            "nodes": trained.nodes,
            "message_compression": dist.compression.to_string(),
            "bytes_sent": trained.bytes_sent(),
        })
        .to_string(),
    );
    Ok(Some(DistFitted {
        model: Model {
            net,
            normalization,
            params: trained.params.clone(),
            dataset_sha256: Some(data.sha256.clone()),
            metadata,
        },
        trained,
        test,
        metrics,
    }))
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
