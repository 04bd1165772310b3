//! Training over a network of nodes, each with its own private shard of the training data.
//!
//! - **master–worker** ([`Algorithm::MasterWorker`]): rank 0 holds the model and the optimizer; every worker
//!   receives the model, computes a mini-batch gradient on its shard and sends it back. Synchronous (the master
//!   averages one gradient per worker per step), or asynchronous with bounded staleness (the master applies each
//!   gradient as it arrives, drops those computed on a model more than `staleness` updates old, and answers with
//!   the current model).
//! - **decentralized** ([`Algorithm::Decentralized`]): no master; every node keeps its own model, takes a local
//!   optimizer step on its shard, then averages with its neighbours with Metropolis–Hastings weights
//!   ([`Topology::metropolis_hastings`]). With compressed messages this is CHOCO-SGD (Koloskova et al., ICML
//!   2019): a node sends the compressed difference between its model and the copy its neighbours hold of it, and
//!   every node updates those copies; uncompressed with consensus step 1 it is exactly decentralized SGD.
//!
//! Messages are bytes ([`codec`]) and every byte a node sends is counted per link. The same code runs over MPI
//! (`mpirun -n N slimnet train --distributed …`, the `mpi` feature) and over threads ([`run_threads`]); only the
//! [`Transport`] differs.

pub mod codec;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod shard;
pub mod topology;
pub mod transport;

pub use codec::{ErrorFeedback, MessageCompression};
pub use topology::Topology;
pub use transport::{Threads, Transport};

use crate::data::{Dataset, Normalization, Split};
use crate::error::{Error, Result};
use crate::eval::evaluate;
use crate::net::Mode;
use crate::optim::Optimizer;
use crate::params::Params;
use crate::train::{apply_update, Backprop, TrainConfig};
use crate::NetSpec;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Which distributed algorithm.
#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    /// Rank 0 is the master, ranks 1… are workers.
    MasterWorker {
        /// `None`: synchronous averaging. `Some(s)`: asynchronous updates, dropping gradients more than `s`
        /// updates stale.
        staleness: Option<usize>,
    },
    /// Every rank is a node of `topology`.
    Decentralized {
        /// The communication graph; its node count must equal the number of ranks.
        topology: Topology,
        /// Consensus step size γ in (0, 1]: how far a node moves towards its neighbours' average per step.
        consensus_step: f32,
    },
}

impl Algorithm {
    /// A short description: `master-worker (sync)`, `decentralized two-star`.
    pub fn describe(&self) -> String {
        match self {
            Algorithm::MasterWorker { staleness: None } => "master-worker (synchronous)".into(),
            Algorithm::MasterWorker { staleness: Some(s) } => {
                format!("master-worker (asynchronous, staleness ≤ {s})")
            }
            Algorithm::Decentralized { topology, .. } => format!("decentralized {}", topology.name),
        }
    }
}

/// A distributed training job: the same on every node.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    /// The architecture.
    pub net: &'a NetSpec,
    /// The recipe: epochs (passes of every node over its shard), batch size per node, optimizer, schedule.
    pub config: &'a TrainConfig,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// How gradients (master–worker) or model differences (decentralized) are compressed.
    pub compression: MessageCompression,
    /// Input normalization (from the whole training split, like single-node training).
    pub normalization: Normalization,
}

impl Job<'_> {
    /// Nodes that hold data: the workers, or every node of the graph.
    pub fn data_nodes(&self, size: usize) -> usize {
        match self.algorithm {
            Algorithm::MasterWorker { .. } => size.saturating_sub(1),
            Algorithm::Decentralized { .. } => size,
        }
    }

    /// Checks the job against the number of ranks and the data, before any message is sent: every rank
    /// reaches the same verdict, so an error stops them all without a hang.
    pub fn check(&self, size: usize, train_samples: usize) -> Result<()> {
        self.config.validate()?;
        if self.net.batch_norm() {
            return Err(Error::config(
                "--batch-norm",
                "not supported in distributed training (running statistics would differ per node)",
            ));
        }
        match &self.algorithm {
            Algorithm::MasterWorker { staleness } => {
                if size < 2 {
                    return Err(Error::Distributed(format!(
                        "master-worker needs a master and at least one worker: {size} node given \
                         (mpirun -n 2 or more, or --nodes 2 or more)"
                    )));
                }
                if *staleness == Some(0) {
                    return Err(Error::config("--staleness", "must be at least 1"));
                }
            }
            Algorithm::Decentralized {
                topology,
                consensus_step,
            } => {
                if topology.nodes() != size {
                    return Err(Error::Distributed(format!(
                        "the topology {} has {} nodes but {size} were started (mpirun -n {} or --nodes {})",
                        topology.name,
                        topology.nodes(),
                        topology.nodes(),
                        topology.nodes()
                    )));
                }
                if !(*consensus_step > 0.0 && *consensus_step <= 1.0) {
                    return Err(Error::config(
                        "--consensus-step",
                        format!("must be in (0, 1], got {consensus_step}"),
                    ));
                }
            }
        }
        shard::shard_indices(train_samples, self.data_nodes(size), self.config.seed).map(|_| ())
    }
}

/// One epoch of a distributed run, as rank 0 reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistEpoch {
    /// Epoch, 1-based: every data node has passed once over its shard.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches on all nodes.
    pub train_loss: f64,
    /// Validation loss of the model (master's, or the nodes' average).
    pub val_loss: Option<f64>,
    /// Validation accuracy of the model (master's, or the nodes' average).
    pub val_accuracy: Option<f64>,
    /// Wall-clock seconds of the epoch's training (evaluation excluded).
    pub seconds: f64,
    /// Mean over data nodes: seconds in forward, backward and optimizer steps.
    pub compute_seconds: f64,
    /// Mean over data nodes: seconds encoding, decoding and mixing messages.
    pub codec_seconds: f64,
    /// Mean over data nodes: seconds inside send / receive / collectives, waiting included.
    pub comm_seconds: f64,
    /// Training bytes sent by all nodes since the start.
    pub bytes_sent: u64,
    /// Decentralized: mean squared distance of the nodes' models to their average, `(1/n) Σ ‖x_i − x̄‖²`.
    pub consensus_distance: Option<f64>,
    /// Master–worker asynchronous: gradients dropped as too stale since the start.
    pub dropped: u64,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
}

/// Bytes sent over one directed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Sender rank, 0-based.
    pub from: usize,
    /// Receiver rank, 0-based.
    pub to: usize,
    /// Bytes.
    pub bytes: u64,
}

/// What a distributed run returns (on rank 0).
#[derive(Debug, Clone)]
pub struct DistTrained {
    /// The selected model (master's, or the nodes' average).
    pub params: Params,
    /// Every epoch.
    pub history: Vec<DistEpoch>,
    /// The selected epoch, 1-based.
    pub selected_epoch: usize,
    /// Bytes per directed link, links that carried nothing left out.
    pub links: Vec<Link>,
    /// Number of nodes.
    pub nodes: usize,
}

impl DistTrained {
    /// Total training bytes sent.
    pub fn bytes_sent(&self) -> u64 {
        self.links.iter().map(|l| l.bytes).sum()
    }
}

/// Whether this process was started by an MPI launcher (`mpirun`, `srun`): Open MPI's, PMI's or PMIx's
/// variables are set.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Runs `job` with one thread per node: the training split is sharded, rank 0 also gets the validation split.
/// `size` counts every node (the master included). Progress reaches `on_epoch` from rank 0.
pub fn run_threads(
    job: &Job,
    split: &Split,
    size: usize,
    on_epoch: &mut (dyn FnMut(&DistEpoch) + Send),
) -> Result<DistTrained> {
    job.check(size, split.train.count)?;
    let shards = shard::shard_indices(split.train.count, job.data_nodes(size), job.config.seed)?;
    let neighbors = |i: usize| match &job.algorithm {
        Algorithm::Decentralized { topology, .. } => topology.neighbors(i).to_vec(),
        Algorithm::MasterWorker { .. } => Vec::new(),
    };
    let ends = Threads::network(size, neighbors);
    let mut on_epoch = Some(on_epoch);
    let results: Vec<Result<Option<DistTrained>>> = std::thread::scope(|s| {
        let handles: Vec<_> = ends
            .into_iter()
            .map(|mut t| {
                let rank = t.rank();
                let shard =
                    shard_of(job, rank, &shards).map(|idx| shard::subset(&split.train, idx));
                let val = (rank == 0).then_some(&split.val);
                let callback = if rank == 0 { on_epoch.take() } else { None };
                std::thread::Builder::new()
                    .name(format!("node-{}", rank + 1))
                    .spawn_scoped(s, move || {
                        let mut quiet = |_: &DistEpoch| {};
                        let cb: &mut dyn FnMut(&DistEpoch) = match callback {
                            Some(c) => c,
                            None => &mut quiet,
                        };
                        let r = run_node(job, &mut t, shard.as_ref(), val, cb);
                        if let Err(e) = &r {
                            t.fail(&e.to_string());
                        }
                        r
                    })
                    .expect("spawning a node thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Distributed("a node thread panicked".into())))
            })
            .collect()
    });
    // The first error that is a cause, not another node's "stopping: …".
    let mut first_err = None;
    let mut trained = None;
    for r in results {
        match r {
            Ok(Some(t)) => trained = Some(t),
            Ok(None) => {}
            Err(e) => {
                let stopping = e.to_string().starts_with("stopping:");
                if first_err.is_none() || (!stopping && first_err.as_ref().is_some_and(|(s, _)| *s))
                {
                    first_err = Some((stopping, e));
                }
            }
        }
    }
    match (first_err, trained) {
        (Some((_, e)), _) => Err(e),
        (None, Some(t)) => Ok(t),
        (None, None) => Err(Error::Distributed("rank 0 returned no model".into())),
    }
}

/// The shard rank `rank` trains on, if it trains.
pub fn shard_of<'s>(job: &Job, rank: usize, shards: &'s [Vec<usize>]) -> Option<&'s [usize]> {
    match job.algorithm {
        Algorithm::MasterWorker { .. } => rank.checked_sub(1).map(|w| shards[w].as_slice()),
        Algorithm::Decentralized { .. } => Some(shards[rank].as_slice()),
    }
}

/// Runs one node of `job`. `shard`: this node's training data (none for a master); `val`: the validation data
/// (rank 0). Returns the trained model on rank 0.
pub fn run_node(
    job: &Job,
    t: &mut dyn Transport,
    shard: Option<&Dataset>,
    val: Option<&Dataset>,
    on_epoch: &mut dyn FnMut(&DistEpoch),
) -> Result<Option<DistTrained>> {
    let mut node = Node::new(job, t.rank(), t.size(), shard, val, on_epoch)?;
    match &job.algorithm {
        Algorithm::MasterWorker { staleness: None } => node.master_worker_sync(t),
        Algorithm::MasterWorker { staleness: Some(s) } => node.master_worker_async(t, *s),
        Algorithm::Decentralized {
            topology,
            consensus_step,
        } => node.decentralized(t, topology, *consensus_step),
    }
}

/// Seconds spent per kind of work since the last epoch.
#[derive(Debug, Clone, Copy, Default)]
struct Clock {
    compute: f64,
    codec: f64,
    comm: f64,
}

impl Clock {
    /// Adds a worker's figures from its message header, as a share of the mean over `workers`.
    fn add(&mut self, h: &Header, workers: usize) {
        let w = workers as f64;
        self.compute += f64::from(h.clock[0]) / w;
        self.codec += f64::from(h.clock[1]) / w;
        self.comm += f64::from(h.clock[2]) / w;
    }
}

/// The header every worker's message starts with (master–worker): the model version the gradient was computed
/// on, and the worker's figures for the step.
#[derive(Debug, Clone, Copy, Default)]
struct Header {
    version: u64,
    loss_sum: f32,
    samples: u32,
    clock: [f32; 3],
}

const HEADER: usize = 8 + 4 + 4 + 12;

impl Header {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.loss_sum.to_le_bytes());
        out.extend_from_slice(&self.samples.to_le_bytes());
        for c in self.clock {
            out.extend_from_slice(&c.to_le_bytes());
        }
    }
    fn read(msg: &[u8]) -> Result<(Header, &[u8])> {
        if msg.len() < HEADER {
            return Err(Error::Distributed(format!(
                "corrupt message: {} bytes, shorter than its header",
                msg.len()
            )));
        }
        let f = |at: usize| f32::from_le_bytes(msg[at..at + 4].try_into().expect("4 bytes"));
        Ok((
            Header {
                version: u64::from_le_bytes(msg[..8].try_into().expect("8 bytes")),
                loss_sum: f(8),
                samples: u32::from_le_bytes(msg[12..16].try_into().expect("4 bytes")),
                clock: [f(16), f(20), f(24)],
            },
            &msg[HEADER..],
        ))
    }
}

/// One node's state.
struct Node<'a, 'j> {
    job: &'a Job<'j>,
    rank: usize,
    size: usize,
    params: Params,
    optimizer: Optimizer,
    backprop: Backprop,
    /// Lengths of the trainable tensors, in order (0 for the others).
    lens: Vec<usize>,
    shard: Option<&'a Dataset>,
    val: Option<&'a Dataset>,
    on_epoch: &'a mut dyn FnMut(&DistEpoch),
    rng: ChaCha8Rng,
    order: Vec<usize>,
    cursor: usize,
    /// Bytes sent to each rank.
    sent: Vec<u64>,
    clock: Clock,
    history: Vec<DistEpoch>,
    best: Option<(usize, f64, Params)>,
}

impl<'a, 'j> Node<'a, 'j> {
    fn new(
        job: &'a Job<'j>,
        rank: usize,
        size: usize,
        shard: Option<&'a Dataset>,
        val: Option<&'a Dataset>,
        on_epoch: &'a mut dyn FnMut(&DistEpoch),
    ) -> Result<Self> {
        // Every node starts from the same weights (same seed): the common starting point decentralized
        // averaging needs, and the master's model for the workers.
        let params = Params::init(job.net, job.config.seed);
        let lens: Vec<usize> = params
            .tensors
            .iter()
            .map(|p| {
                if p.spec.role.trainable() {
                    p.data.len()
                } else {
                    0
                }
            })
            .collect();
        let all: Vec<usize> = params.tensors.iter().map(|p| p.data.len()).collect();
        Ok(Node {
            job,
            rank,
            size,
            optimizer: Optimizer::new(job.config.optimizer, &all),
            backprop: Backprop::new(&params)?,
            params,
            lens,
            shard,
            val,
            on_epoch,
            rng: ChaCha8Rng::seed_from_u64(job.config.seed ^ ((rank as u64 + 1) << 32)),
            order: Vec::new(),
            cursor: usize::MAX,
            sent: vec![0; size],
            clock: Clock::default(),
            history: Vec::new(),
            best: None,
        })
    }

    /// Steps per epoch, the same on every node: the largest shard's batches (shards differ by at most one
    /// sample). Collective: the data nodes tell the others (a master has no shard) how many samples they hold.
    fn steps(&self, t: &mut dyn Transport, data_nodes: usize) -> Result<usize> {
        let mut samples = [self.shard.map_or(0, |s| s.count) as f64];
        t.all_sum(&mut samples)?;
        let per_node = (samples[0] as usize).div_ceil(data_nodes.max(1));
        Ok(per_node.div_ceil(self.job.config.batch_size))
    }

    fn flat_len(&self) -> usize {
        self.lens.iter().sum()
    }

    /// The trainable parameters, concatenated.
    fn flat_params(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.flat_len());
        for (p, &len) in self.params.tensors.iter().zip(&self.lens) {
            if len > 0 {
                out.extend_from_slice(&p.data);
            }
        }
        out
    }

    fn set_flat_params(&mut self, flat: &[f32]) {
        let mut at = 0;
        for (p, &len) in self.params.tensors.iter_mut().zip(&self.lens) {
            if len > 0 {
                p.data.copy_from_slice(&flat[at..at + len]);
                at += len;
            }
        }
    }

    fn split_flat(&self, flat: &[f32]) -> Vec<Vec<f32>> {
        let mut at = 0;
        self.lens
            .iter()
            .map(|&len| {
                let g = flat[at..at + len].to_vec();
                at += len;
                g
            })
            .collect()
    }

    /// The next batch of this node's shard, reshuffled at every pass.
    fn next_batch(&mut self) -> Vec<usize> {
        let shard = self.shard.expect("only data nodes take batches");
        if self.cursor >= self.order.len() {
            self.order = (0..shard.count).collect();
            self.order.shuffle(&mut self.rng);
            self.cursor = 0;
        }
        let end = (self.cursor + self.job.config.batch_size).min(self.order.len());
        let batch = self.order[self.cursor..end].to_vec();
        self.cursor = end;
        batch
    }

    /// A gradient of the current parameters on the next batch, concatenated; returns it with the batch's loss
    /// sum and size. The host parameters are the truth: they reach candle's variables here, once per gradient,
    /// not after every change (a master never computes one; a decentralized node changes them twice per step).
    fn gradient(&mut self) -> Result<(Vec<f32>, f32, u32)> {
        let started = Instant::now();
        self.backprop.sync(&self.params)?;
        let batch = self.next_batch();
        let shard = self.shard.expect("a data node");
        let (x, y) = crate::net::batch(self.job.net, shard, &self.job.normalization, &batch)?;
        let mode = Mode::Train {
            dropout: self.job.config.dropout,
            rng: &mut self.rng,
        };
        let g = self.backprop.gradients(
            self.job.net,
            &self.params,
            &x,
            &y,
            self.job.config.loss,
            mode,
            None,
        )?;
        if !g.loss.is_finite() {
            return Err(Error::Distributed(format!(
                "node {}: training diverged (loss {}); try a smaller --lr",
                self.rank + 1,
                g.loss
            )));
        }
        let mut flat = Vec::with_capacity(self.flat_len());
        for v in &g.grads {
            flat.extend_from_slice(v);
        }
        self.clock.compute += started.elapsed().as_secs_f64();
        Ok((flat, g.loss * batch.len() as f32, batch.len() as u32))
    }

    /// A worker's step (master–worker): loads the model message `model`, computes a gradient on the next batch
    /// and returns the reply: a header (the model's `version`, the batch's loss, the time spent since the last
    /// reply) and the gradient, compressed with error feedback.
    fn worker_step(
        &mut self,
        model: &[u8],
        version: u64,
        ef: &mut ErrorFeedback,
    ) -> Result<Vec<u8>> {
        let started = Instant::now();
        let mut flat = vec![0f32; self.flat_len()];
        MessageCompression::decode(model, &mut flat)?;
        self.clock.codec += started.elapsed().as_secs_f64();
        self.set_flat_params(&flat);
        let (g, loss, n) = self.gradient()?;
        let started = Instant::now();
        let (msg, _) = ef.encode(&g);
        let mut reply = Vec::with_capacity(HEADER + msg.len());
        let c = std::mem::take(&mut self.clock);
        let encoding = started.elapsed().as_secs_f64();
        Header {
            version,
            loss_sum: loss,
            samples: n,
            clock: [c.compute as f32, (c.codec + encoding) as f32, c.comm as f32],
        }
        .write(&mut reply);
        reply.extend_from_slice(&msg);
        self.sent[0] += reply.len() as u64;
        Ok(reply)
    }

    /// Applies one optimizer step with the concatenated gradient `flat`.
    fn update(&mut self, flat: &[f32], lr: f32) {
        let started = Instant::now();
        let mut grads = self.split_flat(flat);
        apply_update(
            self.job.config,
            &mut self.optimizer,
            &mut self.params,
            &mut grads,
            lr,
        );
        self.clock.compute += started.elapsed().as_secs_f64();
    }

    fn lr(&self, epoch: usize, step: usize, steps: usize) -> f64 {
        let c = self.job.config;
        c.schedule.lr(
            c.lr,
            (epoch - 1) as f64 + step as f64 / steps as f64,
            c.epochs,
        )
    }

    /// Times a transport operation.
    fn comm<T>(&mut self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let r = f();
        self.clock.comm += started.elapsed().as_secs_f64();
        r
    }

    /// Rank 0: evaluates `params` on the validation split, records the epoch, keeps the best.
    fn record(&mut self, mut e: DistEpoch, params: &Params) -> Result<()> {
        if let Some(val) = self.val.filter(|v| v.count > 0) {
            let ev = evaluate(self.job.net, params, &self.job.normalization, val)?;
            e.val_loss = Some(ev.loss);
            e.val_accuracy = Some(ev.accuracy);
            if self.best.as_ref().is_none_or(|(_, b, _)| ev.accuracy > *b) {
                self.best = Some((e.epoch, ev.accuracy, params.clone()));
            }
        }
        (self.on_epoch)(&e);
        self.history.push(e);
        Ok(())
    }

    /// Rank 0's result: the best epoch's model (or the last), the history, the bytes per link from `sent`
    /// (every rank's, summed).
    fn finish(&mut self, last: Params, sent_by_all: &[f64]) -> DistTrained {
        let n = self.size;
        let links = (0..n)
            .flat_map(|from| (0..n).map(move |to| (from, to)))
            .filter_map(|(from, to)| {
                let bytes = sent_by_all[from * n + to] as u64;
                (bytes > 0).then_some(Link { from, to, bytes })
            })
            .collect();
        let select_best = self.job.config.select == crate::train::Selection::Best;
        let (selected_epoch, params) = match self.best.take() {
            Some((e, _, p)) if select_best => (e, p),
            _ => (self.history.len(), last),
        };
        DistTrained {
            params,
            history: std::mem::take(&mut self.history),
            selected_epoch,
            links,
            nodes: n,
        }
    }

    /// This rank's sent-bytes row, placed in an `n × n` matrix, summed over ranks.
    fn sent_matrix(&mut self, t: &mut dyn Transport) -> Result<Vec<f64>> {
        let n = self.size;
        let mut m = vec![0f64; n * n];
        for (to, &b) in self.sent.iter().enumerate() {
            m[self.rank * n + to] = b as f64;
        }
        t.all_sum(&mut m)?;
        Ok(m)
    }

    fn master_worker_sync(&mut self, t: &mut dyn Transport) -> Result<Option<DistTrained>> {
        let cfg = self.job.config;
        let workers = self.size - 1;
        let steps = self.steps(t, workers)?;
        let mut ef = ErrorFeedback::new(self.job.compression, self.flat_len());
        for epoch in 1..=cfg.epochs {
            let started = Instant::now();
            let (mut loss_sum, mut samples) = (0f64, 0u64);
            let mut worker_clock = Clock::default();
            let mut lr = cfg.lr;
            for step in 0..steps {
                lr = self.lr(epoch, step, steps);
                // The master sends the model; the workers load it.
                let mut model = if self.rank == 0 {
                    let started = Instant::now();
                    let m = MessageCompression::None.encode(&self.flat_params());
                    self.clock.codec += started.elapsed().as_secs_f64();
                    for w in 1..self.size {
                        self.sent[w] += m.len() as u64;
                    }
                    m
                } else {
                    Vec::new()
                };
                self.comm(|| t.broadcast(&mut model))?;
                let reply = if self.rank == 0 {
                    Vec::new()
                } else {
                    self.worker_step(&model, step as u64, &mut ef)?
                };
                let gathered = self.comm(|| t.gather(&reply))?;
                if self.rank == 0 {
                    let started = Instant::now();
                    let mut avg = vec![0f32; self.flat_len()];
                    for (w, msg) in gathered.iter().enumerate().skip(1) {
                        let (h, body) = Header::read(msg)?;
                        MessageCompression::decode_scaled_add(body, 1.0 / workers as f32, &mut avg)
                            .map_err(|e| Error::Distributed(format!("from node {}: {e}", w + 1)))?;
                        loss_sum += f64::from(h.loss_sum);
                        samples += u64::from(h.samples);
                        worker_clock.add(&h, workers);
                    }
                    self.clock.codec += started.elapsed().as_secs_f64();
                    self.update(&avg, lr as f32);
                }
            }
            // Bytes so far, from every rank (a measurement: not counted as traffic).
            let mut b = [self.sent.iter().sum::<u64>() as f64];
            t.all_sum(&mut b)?;
            if self.rank == 0 {
                let e = DistEpoch {
                    epoch,
                    train_loss: loss_sum / samples.max(1) as f64,
                    val_loss: None,
                    val_accuracy: None,
                    seconds: started.elapsed().as_secs_f64(),
                    compute_seconds: worker_clock.compute,
                    codec_seconds: worker_clock.codec,
                    comm_seconds: worker_clock.comm,
                    bytes_sent: b[0] as u64,
                    consensus_distance: None,
                    dropped: 0,
                    lr,
                };
                let params = self.params.clone();
                self.record(e, &params)?;
            }
        }
        let sent = self.sent_matrix(t)?;
        Ok((self.rank == 0).then(|| {
            let last = self.params.clone();
            self.finish(last, &sent)
        }))
    }

    fn master_worker_async(
        &mut self,
        t: &mut dyn Transport,
        staleness: usize,
    ) -> Result<Option<DistTrained>> {
        let cfg = self.job.config;
        let workers = self.size - 1;
        let steps = self.steps(t, workers)?;
        if self.rank != 0 {
            // A worker: answer every model with a gradient until told to stop (an empty message).
            let mut ef = ErrorFeedback::new(self.job.compression, self.flat_len());
            loop {
                let (_, model) = self.comm(|| t.recv(Some(0)))?;
                if model.is_empty() {
                    break;
                }
                let (h, body) = Header::read(&model)?;
                let reply = self.worker_step(body, h.version, &mut ef)?;
                self.comm(|| t.send(0, &reply))?;
            }
            self.sent_matrix(t)?;
            return Ok(None);
        }
        // The master: applies gradients as they come, one update per gradient not too stale.
        let model_msg = |node: &Node, version: u64| {
            let mut m = Vec::new();
            Header {
                version,
                ..Header::default()
            }
            .write(&mut m);
            m.extend_from_slice(&MessageCompression::None.encode(&node.flat_params()));
            m
        };
        let mut version = 0u64;
        for w in 1..self.size {
            let m = model_msg(self, version);
            self.sent[w] += m.len() as u64;
            self.comm(|| t.send(w, &m))?;
        }
        let per_epoch = (steps * workers) as u64;
        let mut dropped = 0u64;
        let mut bytes_received = 0u64;
        let mut epoch_start = Instant::now();
        let (mut loss_sum, mut samples) = (0f64, 0u64);
        let mut worker_clock = Clock::default();
        let mut lr;
        let mut avg = vec![0f32; self.flat_len()];
        let mut last_src = 0;
        while version < per_epoch * cfg.epochs as u64 {
            let (src, msg) = self.comm(|| t.recv(None))?;
            bytes_received += msg.len() as u64;
            let (h, body) = Header::read(&msg)?;
            loss_sum += f64::from(h.loss_sum);
            samples += u64::from(h.samples);
            worker_clock.add(&h, workers);
            if version - h.version > staleness as u64 {
                dropped += 1;
            } else {
                let started = Instant::now();
                MessageCompression::decode(body, &mut avg)
                    .map_err(|e| Error::Distributed(format!("from node {}: {e}", src + 1)))?;
                self.clock.codec += started.elapsed().as_secs_f64();
                let epoch = (version / per_epoch) as usize + 1;
                lr = self.lr(epoch, (version % per_epoch) as usize, per_epoch as usize);
                self.update(&avg, lr as f32);
                version += 1;
                if version.is_multiple_of(per_epoch) {
                    // An epoch's worth of updates: evaluate (the workers keep computing meanwhile).
                    let e = DistEpoch {
                        epoch,
                        train_loss: loss_sum / samples.max(1) as f64,
                        val_loss: None,
                        val_accuracy: None,
                        seconds: epoch_start.elapsed().as_secs_f64(),
                        compute_seconds: worker_clock.compute,
                        codec_seconds: worker_clock.codec,
                        comm_seconds: worker_clock.comm,
                        bytes_sent: self.sent.iter().sum::<u64>() + bytes_received,
                        consensus_distance: None,
                        dropped,
                        lr,
                    };
                    let params = self.params.clone();
                    self.record(e, &params)?;
                    (loss_sum, samples, worker_clock) = (0.0, 0, Clock::default());
                    epoch_start = Instant::now();
                }
            }
            let reply = if version < per_epoch * cfg.epochs as u64 {
                model_msg(self, version)
            } else {
                Vec::new()
            };
            self.sent[src] += reply.len() as u64;
            self.comm(|| t.send(src, &reply))?;
            if reply.is_empty() {
                last_src = src;
                break;
            }
        }
        // Every other worker has one gradient in flight: take it and tell the worker to stop. (Received by
        // sender, so a stopped worker's next collective message is not mistaken for a gradient.)
        for w in (1..self.size).filter(|&w| w != last_src) {
            self.comm(|| t.recv(Some(w)))?;
            self.comm(|| t.send(w, &[]))?;
        }
        let sent = self.sent_matrix(t)?;
        let last = self.params.clone();
        Ok(Some(self.finish(last, &sent)))
    }

    fn decentralized(
        &mut self,
        t: &mut dyn Transport,
        topology: &Topology,
        gamma: f32,
    ) -> Result<Option<DistTrained>> {
        let cfg = self.job.config;
        let n = self.size;
        let steps = self.steps(t, n)?;
        let neighbors = topology.neighbors(self.rank).to_vec();
        let w = topology.metropolis_hastings();
        let weights: Vec<f32> = neighbors.iter().map(|&j| w[self.rank][j] as f32).collect();
        // The public copies: x̂ of this node and of each neighbour, all starting at the common initial model.
        let x0 = self.flat_params();
        let mut own_copy = x0.clone();
        let mut copies: Vec<Vec<f32>> = neighbors.iter().map(|_| x0.clone()).collect();
        let mut diff = vec![0f32; x0.len()];
        for epoch in 1..=cfg.epochs {
            let started = Instant::now();
            self.clock = Clock::default();
            let (mut loss_sum, mut samples) = (0f64, 0u64);
            let mut lr = cfg.lr;
            for step in 0..steps {
                lr = self.lr(epoch, step, steps);
                let (g, loss, count) = self.gradient()?;
                loss_sum += f64::from(loss);
                samples += u64::from(count);
                self.update(&g, lr as f32);
                // q = Q(x − x̂); every holder of x̂ adds q.
                let codec_start = Instant::now();
                let mut x = self.flat_params();
                for ((d, a), b) in diff.iter_mut().zip(&x).zip(&own_copy) {
                    *d = a - b;
                }
                let msg = self.job.compression.encode(&diff);
                MessageCompression::decode_scaled_add(&msg, 1.0, &mut own_copy)?;
                for &j in &neighbors {
                    self.sent[j] += msg.len() as u64;
                }
                self.clock.codec += codec_start.elapsed().as_secs_f64();
                let received = self.comm(|| t.neighbor_allgather(&msg))?;
                let codec_start = Instant::now();
                for ((copy, m), &j) in copies.iter_mut().zip(&received).zip(&neighbors) {
                    MessageCompression::decode_scaled_add(m, 1.0, copy)
                        .map_err(|e| Error::Distributed(format!("from node {}: {e}", j + 1)))?;
                }
                // x += γ Σ_j w_ij (x̂_j − x̂_i)
                for (copy, &wij) in copies.iter().zip(&weights) {
                    let f = gamma * wij;
                    for ((xv, c), o) in x.iter_mut().zip(copy).zip(&own_copy) {
                        *xv += f * (c - o);
                    }
                }
                self.clock.codec += codec_start.elapsed().as_secs_f64();
                self.set_flat_params(&x);
            }
            let seconds = started.elapsed().as_secs_f64();
            // Measurements (not training traffic): the average model, the consensus distance, the figures.
            let x = self.flat_params();
            let mut mean: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            t.all_sum(&mut mean)?;
            mean.iter_mut().for_each(|v| *v /= n as f64);
            let c = self.clock;
            let mut figures = [
                x.iter()
                    .zip(&mean)
                    .map(|(&a, &m)| (f64::from(a) - m).powi(2))
                    .sum::<f64>(),
                loss_sum,
                samples as f64,
                c.compute,
                c.codec,
                c.comm,
                self.sent.iter().sum::<u64>() as f64,
                seconds,
            ];
            t.all_sum(&mut figures)?;
            if self.rank == 0 {
                let mut avg_params = self.params.clone();
                let mut at = 0;
                for (p, &len) in avg_params.tensors.iter_mut().zip(&self.lens) {
                    for (v, m) in p.data.iter_mut().zip(&mean[at..at + len]) {
                        *v = *m as f32;
                    }
                    at += len;
                }
                let e = DistEpoch {
                    epoch,
                    train_loss: figures[1] / figures[2].max(1.0),
                    val_loss: None,
                    val_accuracy: None,
                    seconds: figures[7] / n as f64,
                    compute_seconds: figures[3] / n as f64,
                    codec_seconds: figures[4] / n as f64,
                    comm_seconds: figures[5] / n as f64,
                    bytes_sent: figures[6] as u64,
                    consensus_distance: Some(figures[0] / n as f64),
                    dropped: 0,
                    lr,
                };
                self.record(e, &avg_params)?;
                if epoch == cfg.epochs {
                    self.params = avg_params;
                }
            }
        }
        let sent = self.sent_matrix(t)?;
        Ok((self.rank == 0).then(|| {
            let last = self.params.clone();
            self.finish(last, &sent)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testing::bands;
    use crate::{Schedule, Shape};

    fn setup() -> (NetSpec, TrainConfig, Split) {
        let net = NetSpec::parse("mlp:16", Shape::image(4, 4), 3, false).unwrap();
        let cfg = TrainConfig {
            epochs: 4,
            batch_size: 8,
            optimizer: "sgd".parse().unwrap(),
            lr: 0.1,
            schedule: Schedule::Constant,
            dropout: 0.0,
            select: crate::train::Selection::Last,
            ..TrainConfig::recipe()
        };
        let split = Split {
            train: bands(240, 1),
            val: bands(60, 2),
            test: bands(60, 3),
        };
        (net, cfg, split)
    }

    fn run(algorithm: Algorithm, compression: &str, size: usize) -> Result<DistTrained> {
        let (net, cfg, split) = setup();
        let job = Job {
            net: &net,
            config: &cfg,
            algorithm,
            compression: compression.parse().unwrap(),
            normalization: Normalization::of(&split.train),
        };
        run_threads(&job, &split, size, &mut |_| {})
    }

    fn decentralized(t: Topology) -> Algorithm {
        Algorithm::Decentralized {
            topology: t,
            consensus_step: 1.0,
        }
    }

    #[test]
    fn every_algorithm_learns_the_toy_problem() {
        for (alg, comp, size) in [
            (Algorithm::MasterWorker { staleness: None }, "none", 4),
            (
                Algorithm::MasterWorker { staleness: None },
                "top-k-int8:0.2",
                4,
            ),
            (Algorithm::MasterWorker { staleness: Some(3) }, "int8", 4),
            (decentralized(Topology::two_star()), "none", 6),
            (decentralized(Topology::two_star()), "top-k-int8:0.2", 6),
            (decentralized(Topology::complete(3).unwrap()), "int8", 3),
        ] {
            let name = format!("{} {comp}", alg.describe());
            let t = run(alg, comp, size).unwrap();
            let last = t.history.last().unwrap();
            assert_eq!(t.history.len(), 4, "{name}");
            assert!(last.val_accuracy.unwrap() > 0.9, "{name}: {last:?}");
            assert!(last.train_loss < t.history[0].train_loss, "{name}");
            assert!(
                t.bytes_sent() > 0 && last.bytes_sent <= t.bytes_sent(),
                "{name}"
            );
        }
    }

    #[test]
    fn uncompressed_decentralized_on_a_complete_graph_keeps_the_nodes_together() {
        // Metropolis–Hastings on the complete graph of n nodes is the exact average: the models agree after
        // every step (up to rounding).
        let t = run(decentralized(Topology::complete(4).unwrap()), "none", 4).unwrap();
        for e in &t.history {
            assert!(e.consensus_distance.unwrap() < 1e-9, "{e:?}");
        }
        let two_star = run(decentralized(Topology::two_star()), "none", 6).unwrap();
        assert!(two_star.history[0].consensus_distance.unwrap() > 1e-9);
    }

    #[test]
    fn bytes_are_counted_per_link() {
        let t = run(decentralized(Topology::two_star()), "none", 6).unwrap();
        // Only graph edges carry bytes, the same in both directions (same message sizes).
        let edges = Topology::two_star().edges();
        assert_eq!(t.links.len(), 2 * edges.len());
        for l in &t.links {
            let (a, b) = (l.from.min(l.to), l.from.max(l.to));
            assert!(edges.contains(&(a, b)));
        }
        // Dense messages: 5-byte header + 4 bytes per parameter, per step, per directed link.
        let (net, cfg, _) = setup();
        let per_message = 5 + 4 * net.parameter_count() as u64;
        let steps = (240usize.div_ceil(6)).div_ceil(8) as u64 * cfg.epochs as u64;
        assert_eq!(t.bytes_sent(), per_message * steps * 10);
        let compressed = run(decentralized(Topology::two_star()), "top-k-int8:0.1", 6).unwrap();
        assert!(compressed.bytes_sent() * 10 < t.bytes_sent());
    }

    #[test]
    fn synchronous_master_worker_with_one_worker_is_single_node_sgd() {
        // One worker, whole data as its shard, plain SGD: the same updates as the trainer makes, batch for batch,
        // except for the shuffling order. Check a weaker but exact property: the run is deterministic.
        let a = run(Algorithm::MasterWorker { staleness: None }, "none", 3).unwrap();
        let b = run(Algorithm::MasterWorker { staleness: None }, "none", 3).unwrap();
        assert_eq!(a.params, b.params);
        assert_eq!(
            a.history.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
            b.history.iter().map(|e| e.train_loss).collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_jobs_fail_before_any_message() {
        let e = run(decentralized(Topology::two_star()), "none", 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("two-star has 6 nodes but 4 were started"), "{e}");
        let e = run(Algorithm::MasterWorker { staleness: None }, "none", 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least one worker"), "{e}");
        let e = run(Algorithm::MasterWorker { staleness: None }, "none", 300)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("299 shards but only 240 training samples"),
            "{e}"
        );
        let e = run(Algorithm::MasterWorker { staleness: Some(0) }, "none", 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--staleness"), "{e}");
    }

    #[test]
    fn a_diverging_node_stops_the_run_with_its_error() {
        let (net, mut cfg, split) = setup();
        cfg.lr = 1e30;
        let job = Job {
            net: &net,
            config: &cfg,
            algorithm: decentralized(Topology::ring(4).unwrap()),
            compression: MessageCompression::None,
            normalization: Normalization::of(&split.train),
        };
        let e = run_threads(&job, &split, 4, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("diverged"), "{e}");
    }
}
