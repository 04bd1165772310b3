//! `slimnet experiment NAME`: the course's experiments, one command each. Every experiment trains what it
//! compares on the same data slice, writes `NAME.md` (tables, what the numbers show, where they contradict the
//! usual expectation) and its charts (`NAME-*.svg`, `.png`) into the output directory, and returns the markdown.
//!
//! The findings are computed from the measured numbers: each expectation is checked and the report says whether
//! this run confirmed it.

use crate::plot::{self, Chart, Series};
use anyhow::{bail, Context, Result};
use slimnet_compress::compressor::{self, Preset, Quiet};
use slimnet_compress::sensitivity::{self, Analysis, Evaluator};
use slimnet_models::distributed::{DistEpoch, MessageCompression};
use slimnet_models::fit::{
    fit, fit_distributed, Backend, DistMode, DistRequest, FitRequest, Fitted,
};
use slimnet_models::net::Loss;
use slimnet_models::train::{EpochMetrics, Observer, Projection, Selection, StepContext, Trainer};
use slimnet_models::{Mnist, NetSpec, OptimizerKind, Params, Role, Schedule, Shape, TrainConfig};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// The experiments, by name.
pub const NAMES: [&str; 6] = [
    "optimizers",
    "depth",
    "master-worker",
    "decentralized",
    "sparsity",
    "smoothness",
];

/// What every experiment shares.
pub struct Setup {
    /// The data.
    pub data: Mnist,
    /// Architecture for the experiments that fix one (all but `depth`).
    pub model: String,
    /// Epochs per run.
    pub epochs: usize,
    /// Training images used (`None`: all).
    pub train_limit: Option<usize>,
    /// Validation images.
    pub val: usize,
    /// Hidden neurons in total (`depth`).
    pub neurons: usize,
    /// Seed of every run.
    pub seed: u64,
    /// Output directory (exists).
    pub out: PathBuf,
    /// Progress lines on stderr.
    pub verbose: bool,
}

/// Runs the experiment `name`; returns the path of its report.
pub fn run(name: &str, setup: &Setup) -> Result<PathBuf> {
    let mut doc = Doc::new(name, setup);
    match name {
        "optimizers" => optimizers(setup, &mut doc)?,
        "depth" => depth(setup, &mut doc)?,
        "master-worker" => master_worker(setup, &mut doc)?,
        "decentralized" => decentralized(setup, &mut doc)?,
        "sparsity" => sparsity(setup, &mut doc)?,
        "smoothness" => smoothness(setup, &mut doc)?,
        other => bail!(
            "unknown experiment `{other}` (expected one of {})",
            NAMES.join(", ")
        ),
    }
    let path = setup.out.join(format!("{name}.md"));
    slimnet_models::atomic::write_atomic(&path, doc.md.as_bytes())?;
    Ok(path)
}

/// The report being written.
struct Doc {
    name: String,
    md: String,
    out: PathBuf,
}

impl Doc {
    fn new(name: &str, s: &Setup) -> Doc {
        let mut md = format!("# Experiment: {name}\n\n");
        let _ = writeln!(
            md,
            "Data: {} ({} training images{}, {} for validation, {} test images); {} epochs per run; seed {}. \
             Command: `slimnet experiment {name}{}`.\n",
            s.data.dir.display(),
            s.train_limit.map_or(s.data.train.count.saturating_sub(s.val), |l| l.min(s.data.train.count)),
            if s.train_limit.is_some() { ", a slice" } else { "" },
            s.val,
            s.data.test.count,
            s.epochs,
            s.seed,
            flags(s),
        );
        Doc {
            name: name.to_string(),
            md,
            out: s.out.clone(),
        }
    }

    fn para(&mut self, text: &str) {
        self.md.push_str(text);
        self.md.push_str("\n\n");
    }

    fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        let _ = writeln!(self.md, "| {} |", header.join(" | "));
        let _ = writeln!(self.md, "|{}", " --- |".repeat(header.len()));
        for r in rows {
            let _ = writeln!(self.md, "| {} |", r.join(" | "));
        }
        self.md.push('\n');
    }

    /// Writes a chart as `NAME-key.svg/png` and links the SVG.
    fn chart(&mut self, key: &str, chart: Chart) -> Result<()> {
        let stem = self.out.join(format!("{}-{key}", self.name));
        plot::write(&chart, &stem)?;
        let _ = writeln!(self.md, "![{}]({}-{key}.svg)\n", chart.title, self.name);
        Ok(())
    }

    /// One finding: the expectation, whether this run confirmed it, and the numbers.
    fn finding(&mut self, expectation: &str, confirmed: bool, numbers: &str) {
        let verdict = if confirmed {
            "confirmed"
        } else {
            "**contradicted**"
        };
        let _ = writeln!(
            self.md,
            "- *Expected:* {expectation} — {verdict}: {numbers}"
        );
    }
}

fn flags(s: &Setup) -> String {
    let mut f = format!(" --epochs {}", s.epochs);
    if let Some(l) = s.train_limit {
        let _ = write!(f, " --train-limit {l}");
    }
    let _ = write!(f, " --model {} --seed {}", s.model, s.seed);
    f
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

/// Prints a run's epochs on stderr when verbose.
struct Say<'a> {
    label: &'a str,
    verbose: bool,
}

impl Observer for Say<'_> {
    fn epoch_end(&mut self, m: &EpochMetrics, _h: &[EpochMetrics]) -> slimnet_models::Result<()> {
        if self.verbose {
            eprintln!(
                "  {}: epoch {} loss {:.4} validation {}",
                self.label,
                m.epoch,
                m.train_loss,
                m.val_accuracy.map(pct).unwrap_or_default()
            );
        }
        Ok(())
    }
}

fn config(
    s: &Setup,
    optimizer: &str,
    batch: usize,
    lr: f64,
    schedule: Schedule,
) -> Result<TrainConfig> {
    Ok(TrainConfig {
        epochs: s.epochs,
        batch_size: batch,
        optimizer: optimizer.parse::<OptimizerKind>()?,
        lr,
        schedule,
        l1: 0.0,
        l2: 0.0,
        dropout: 0.0,
        loss: Loss::CrossEntropy,
        seed: s.seed,
        select: Selection::Last,
        sam_rho: 0.0,
    })
}

fn request(s: &Setup, arch: &str, batch_norm: bool, config: TrainConfig) -> FitRequest {
    FitRequest {
        arch: arch.to_string(),
        batch_norm,
        config,
        val: s.val,
        train_limit: s.train_limit,
        checkpoint: None,
        resume: false,
    }
}

fn train(s: &Setup, label: &str, req: &FitRequest) -> Result<Fitted> {
    if s.verbose {
        eprintln!("{label}");
    }
    fit(
        &s.data,
        req,
        &mut Say {
            label,
            verbose: s.verbose,
        },
    )
    .with_context(|| format!("training {label}"))
}

fn cumulative_seconds(h: &[EpochMetrics]) -> Vec<f64> {
    h.iter()
        .scan(0.0, |t, m| {
            *t += m.seconds;
            Some(*t)
        })
        .collect()
}

fn line(label: &str, points: Vec<(f64, f64)>) -> Series {
    Series {
        label: label.to_string(),
        points: points.into_iter().map(|(x, y)| (x, y, 0.0)).collect(),
        markers_only: false,
    }
}

fn chart(title: &str, x: &str, y: &str, log_x: bool, series: Vec<Series>) -> Chart {
    Chart {
        title: title.into(),
        x_label: x.into(),
        y_label: y.into(),
        log_x,
        series,
    }
}

// === optimizers ===

fn optimizers(s: &Setup, doc: &mut Doc) -> Result<()> {
    let split = s.data.split(s.val, s.train_limit)?;
    let n = split.train.count;
    let runs: Vec<(&str, &str, usize, f64, Schedule)> = vec![
        ("SGD, batch 1", "sgd", 1, 0.01, Schedule::Constant),
        ("SGD, batch 64", "sgd", 64, 0.1, Schedule::Constant),
        ("GD, full batch", "sgd", n, 0.2, Schedule::Constant),
        ("SGD 64, η₀/√(1+e)", "sgd", 64, 0.2, Schedule::InvSqrt),
        ("AdaGrad 64", "adagrad", 64, 0.01, Schedule::Constant),
        ("RMSProp 64", "rmsprop", 64, 0.001, Schedule::Constant),
        ("Adam 64", "adam", 64, 0.001, Schedule::Constant),
    ];
    doc.para(&format!(
        "`{}` trained {} epochs by each update rule from the same initial weights, no dropout or penalties. \
         Batch 1 is stochastic gradient descent proper, the full batch ({n} images) gradient descent; the \
         others use mini-batches of 64. Learning rates are each rule's usual scale (constant unless stated). \
         Training loss is the mean over each epoch's steps; the generalization gap is the last epoch's training \
         accuracy minus the test accuracy.",
        s.model, s.epochs
    ));
    let mut rows = Vec::new();
    let (mut by_epoch, mut by_time) = (Vec::new(), Vec::new());
    let mut results = Vec::new();
    for (label, opt, batch, lr, schedule) in runs {
        let f = train(
            s,
            label,
            &request(s, &s.model, false, config(s, opt, batch, lr, schedule)?),
        )?;
        let h = &f.history;
        let secs = cumulative_seconds(h);
        by_epoch.push(line(
            label,
            h.iter().map(|m| (m.epoch as f64, m.train_loss)).collect(),
        ));
        by_time.push(line(
            label,
            secs.iter()
                .zip(h)
                .map(|(&t, m)| (t, m.train_loss))
                .collect(),
        ));
        let last = h.last().expect("at least one epoch");
        let gap = last.train_accuracy - f.test.accuracy;
        rows.push(vec![
            label.to_string(),
            format!("{lr}"),
            format!("{:.4}", last.train_loss),
            pct(last.train_accuracy),
            pct(f.test.accuracy),
            format!("{:+.2}", 100.0 * gap),
            format!("{:.1}", secs.last().copied().unwrap_or(0.0)),
        ]);
        results.push((
            label,
            last.train_loss,
            f.test.accuracy,
            gap,
            *secs.last().unwrap_or(&0.0),
        ));
    }
    doc.table(
        &[
            "run",
            "η₀",
            "final training loss",
            "training accuracy",
            "test accuracy",
            "gap (points)",
            "seconds",
        ],
        &rows,
    );
    doc.chart(
        "loss-epochs",
        chart(
            "Training loss against epochs",
            "epoch",
            "training loss",
            false,
            by_epoch,
        ),
    )?;
    doc.chart(
        "loss-seconds",
        chart(
            "Training loss against seconds",
            "seconds",
            "training loss",
            false,
            by_time,
        ),
    )?;
    doc.para("## What the numbers show");
    let get = |l: &str| {
        results
            .iter()
            .find(|r| r.0 == l)
            .expect("a run of this experiment")
    };
    let (sgd1, mini, full, dimin, adam) = (
        get("SGD, batch 1"),
        get("SGD, batch 64"),
        get("GD, full batch"),
        get("SGD 64, η₀/√(1+e)"),
        get("Adam 64"),
    );
    doc.finding(
        "per epoch, smaller batches make more progress (more updates per pass)",
        sgd1.1 < mini.1 && mini.1 < full.1,
        &format!(
            "final loss batch 1 {:.4}, batch 64 {:.4}, full batch {:.4}",
            sgd1.1, mini.1, full.1
        ),
    );
    doc.finding(
        "per second, mini-batches do best: far less time than batch 1 (vectorized work), lower loss than the \
         full batch (more updates)",
        mini.4 < sgd1.4 && mini.1 < full.1,
        &format!("seconds: batch 1 {:.1}, batch 64 {:.1}, full batch {:.1}", sgd1.4, mini.4, full.4),
    );
    let best = results
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("runs");
    doc.finding(
        "an adaptive method (Adam) reaches the lowest training loss",
        best.0 == adam.0,
        &format!(
            "lowest final loss: {} ({:.4}); Adam {:.4}",
            best.0, best.1, adam.1
        ),
    );
    doc.finding(
        "a diminishing step converges more steadily than the constant one at the same batch",
        dimin.1 <= mini.1,
        &format!(
            "final loss η₀/√(1+e) {:.4} against constant {:.4} (η₀ {} against {})",
            dimin.1, mini.1, 0.2, 0.1
        ),
    );
    let widest = results
        .iter()
        .max_by(|a, b| a.3.total_cmp(&b.3))
        .expect("runs");
    let top = results
        .iter()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .expect("runs");
    doc.finding(
        "the run that fits the training data best generalizes best too",
        top.0 == best.0,
        &format!(
            "best test accuracy {} ({}); largest gap {} ({:+.2} points)",
            top.0,
            pct(top.2),
            widest.0,
            100.0 * widest.3
        ),
    );
    Ok(())
}

// === depth ===

/// `total` neurons over `layers` hidden layers, as even as possible: `mlp:134-133-133`.
pub fn spread(total: usize, layers: usize) -> String {
    let widths: Vec<String> = (0..layers)
        .map(|j| (total / layers + usize::from(j < total % layers)).to_string())
        .collect();
    format!("mlp:{}", widths.join("-"))
}

fn depth(s: &Setup, doc: &mut Doc) -> Result<()> {
    if s.neurons < 4 {
        bail!(
            "--neurons: needs at least 4 hidden neurons to spread over 1–4 layers, got {}",
            s.neurons
        );
    }
    doc.para(&format!(
        "The same {} hidden neurons spread over 1 to 4 hidden layers (ReLU), Adam η₀ = 1e-3 with cosine \
         decay, batch 64, no dropout.",
        s.neurons
    ));
    let mut rows = Vec::new();
    let (mut acc, mut time, mut curves) = (Vec::new(), Vec::new(), Vec::new());
    let mut results = Vec::new();
    for layers in 1..=4 {
        let spec = spread(s.neurons, layers);
        let f = train(
            s,
            &spec,
            &request(
                s,
                &spec,
                false,
                config(s, "adam", 64, 1e-3, Schedule::Cosine { floor: 0.0 })?,
            ),
        )?;
        let params = f.model.net.parameter_count();
        let secs: f64 = f.history.iter().map(|m| m.seconds).sum();
        acc.push((layers as f64, 100.0 * f.test.accuracy));
        time.push((layers as f64, secs));
        curves.push(line(
            &spec,
            f.history
                .iter()
                .filter_map(|m| Some((m.epoch as f64, 100.0 * m.val_accuracy?)))
                .collect(),
        ));
        rows.push(vec![
            layers.to_string(),
            format!("`{spec}`"),
            params.to_string(),
            pct(f.history.last().and_then(|m| m.val_accuracy).unwrap_or(0.0)),
            pct(f.test.accuracy),
            format!("{secs:.1}"),
        ]);
        results.push((layers, params, f.test.accuracy, secs));
    }
    doc.table(
        &[
            "hidden layers",
            "architecture",
            "parameters",
            "validation",
            "test accuracy",
            "seconds",
        ],
        &rows,
    );
    doc.chart(
        "accuracy",
        chart(
            "Test accuracy against depth (same neurons)",
            "hidden layers",
            "test accuracy (%)",
            false,
            vec![line("test accuracy", acc)],
        ),
    )?;
    doc.chart(
        "seconds",
        chart(
            "Training time against depth",
            "hidden layers",
            "seconds",
            false,
            vec![line("training seconds", time)],
        ),
    )?;
    doc.chart(
        "validation",
        chart(
            "Validation accuracy per epoch",
            "epoch",
            "validation accuracy (%)",
            false,
            curves,
        ),
    )?;
    doc.para("## What the numbers show");
    let best = results
        .iter()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .expect("runs");
    doc.finding(
        "with the neurons fixed, parameters fall as depth grows (the first layer shrinks)",
        results.windows(2).all(|w| w[1].1 < w[0].1),
        &format!(
            "{} → {} parameters from 1 to 4 layers",
            results[0].1, results[3].1
        ),
    );
    doc.finding(
        "some depth helps: two or more layers beat one",
        best.0 > 1,
        &format!(
            "best test accuracy with {} layer(s): {}; one layer {}",
            best.0,
            pct(best.2),
            pct(results[0].2)
        ),
    );
    doc.finding(
        "fewer parameters mean less time per epoch",
        results[3].3 <= results[0].3,
        &format!(
            "{:.1} s with 1 layer, {:.1} s with 4",
            results[0].3, results[3].3
        ),
    );
    Ok(())
}

// === master-worker and decentralized ===

struct DistRun {
    label: String,
    history: Vec<DistEpoch>,
    test: f64,
}

fn distributed(
    s: &Setup,
    label: &str,
    nodes: usize,
    mode: DistMode,
    compression: &str,
) -> Result<DistRun> {
    if s.verbose {
        eprintln!("{label}");
    }
    let req = request(
        s,
        &s.model,
        false,
        config(s, "adam", 64, 1e-3, Schedule::Cosine { floor: 0.0 })?,
    );
    let dist = DistRequest {
        mode,
        compression: compression.parse::<MessageCompression>()?,
        backend: Backend::Threads { nodes },
    };
    let verbose = s.verbose;
    let mut say = |e: &DistEpoch| {
        if verbose {
            eprintln!(
                "  epoch {} validation {} bytes {}",
                e.epoch,
                e.val_accuracy.map(pct).unwrap_or_default(),
                e.bytes_sent
            );
        }
    };
    let f = fit_distributed(&s.data, &req, &dist, &mut say)
        .with_context(|| format!("training {label}"))?
        .context("threads always return the model")?;
    Ok(DistRun {
        label: label.to_string(),
        history: f.trained.history,
        test: f.test.accuracy,
    })
}

fn master_worker(s: &Setup, doc: &mut Doc) -> Result<()> {
    doc.para(&format!(
        "`{}` trained by one node against six workers and a master (threads in one process, running the same \
         algorithm code as `mpirun`). Every worker holds a disjoint sixth of the training data and computes \
         gradients of batches of 64; the master averages one gradient per worker per step (synchronous) or applies \
         each as it arrives, dropping any more than 6 updates stale (asynchronous). Adam, η₀ = 1e-3 with cosine \
         decay; bytes are what the nodes sent (the model down, the gradients up).",
        s.model
    ));
    let single = train(
        s,
        "one node",
        &request(
            s,
            &s.model,
            false,
            config(s, "adam", 64, 1e-3, Schedule::Cosine { floor: 0.0 })?,
        ),
    )?;
    let runs = [
        (
            "6 workers, synchronous",
            7,
            DistMode::MasterWorker { staleness: None },
            "none",
        ),
        (
            "6 workers, asynchronous",
            7,
            DistMode::MasterWorker { staleness: Some(6) },
            "none",
        ),
        (
            "6 workers, sync, top-k-int8 5 %",
            7,
            DistMode::MasterWorker { staleness: None },
            "top-k-int8:0.05",
        ),
    ]
    .into_iter()
    .map(|(label, nodes, mode, compression)| distributed(s, label, nodes, mode, compression))
    .collect::<Result<Vec<_>>>()?;
    let single_secs = cumulative_seconds(&single.history);
    let mut rows = vec![vec![
        "one node".to_string(),
        pct(single
            .history
            .last()
            .and_then(|m| m.val_accuracy)
            .unwrap_or(0.0)),
        pct(single.test.accuracy),
        format!("{:.1}", single_secs.last().unwrap_or(&0.0)),
        "—".into(),
        "0".into(),
    ]];
    let val = |h: &[EpochMetrics]| {
        h.iter()
            .filter_map(|m| Some((m.epoch as f64, 100.0 * m.val_accuracy?)))
            .collect::<Vec<_>>()
    };
    let (mut by_epoch, mut by_time, mut by_bytes) = (
        vec![line("one node", val(&single.history))],
        vec![line(
            "one node",
            single_secs
                .iter()
                .zip(&single.history)
                .filter_map(|(&t, m)| Some((t, 100.0 * m.val_accuracy?)))
                .collect(),
        )],
        Vec::new(),
    );
    for r in &runs {
        let secs: Vec<f64> = r
            .history
            .iter()
            .scan(0.0, |t, e| {
                *t += e.seconds;
                Some(*t)
            })
            .collect();
        let pts = |x: &dyn Fn(usize, &DistEpoch) -> f64| {
            r.history
                .iter()
                .enumerate()
                .filter_map(|(i, e)| Some((x(i, e), 100.0 * e.val_accuracy?)))
                .collect::<Vec<_>>()
        };
        by_epoch.push(line(&r.label, pts(&|_, e| e.epoch as f64)));
        by_time.push(line(&r.label, pts(&|i, _| secs[i])));
        by_bytes.push(line(&r.label, pts(&|_, e| e.bytes_sent as f64)));
        let last = r.history.last().expect("epochs");
        let n = r.history.len() as f64;
        rows.push(vec![
            r.label.clone(),
            pct(last.val_accuracy.unwrap_or(0.0)),
            pct(r.test),
            format!("{:.1}", secs.last().unwrap_or(&0.0)),
            format!(
                "{:.1} / {:.1} / {:.1}",
                r.history.iter().map(|e| e.compute_seconds).sum::<f64>() / n,
                r.history.iter().map(|e| e.codec_seconds).sum::<f64>() / n,
                r.history.iter().map(|e| e.comm_seconds).sum::<f64>() / n
            ),
            mb(last.bytes_sent as f64),
        ]);
    }
    doc.table(
        &[
            "run",
            "validation",
            "test accuracy",
            "seconds",
            "per worker and epoch: compute / codec / communication s",
            "bytes sent",
        ],
        &rows,
    );
    doc.chart(
        "epochs",
        chart(
            "Validation accuracy against epochs",
            "epoch",
            "validation accuracy (%)",
            false,
            by_epoch,
        ),
    )?;
    doc.chart(
        "seconds",
        chart(
            "Validation accuracy against seconds",
            "seconds",
            "validation accuracy (%)",
            false,
            by_time,
        ),
    )?;
    doc.chart(
        "bytes",
        chart(
            "Validation accuracy against bytes sent",
            "bytes sent",
            "validation accuracy (%)",
            true,
            by_bytes,
        ),
    )?;
    doc.para("## What the numbers show");
    let sync = &runs[0];
    let sync_secs: f64 = sync.history.iter().map(|e| e.seconds).sum();
    let one_secs = *single_secs.last().unwrap_or(&0.0);
    doc.finding(
        "six workers finish an epoch faster than one node",
        sync_secs < one_secs,
        &format!(
            "{sync_secs:.1} s against {one_secs:.1} s — here six workers share this machine's cores, so they add \
             communication without adding compute"
        ),
    );
    doc.finding(
        "per epoch, one node (6× more updates of batch 64) is ahead of synchronous averaging (one update of 6×64)",
        single.test.accuracy >= sync.test,
        &format!("test accuracy {} against {}", pct(single.test.accuracy), pct(sync.test)),
    );
    let (asy, comp) = (&runs[1], &runs[2]);
    let bytes = |r: &DistRun| r.history.last().map_or(0, |e| e.bytes_sent) as f64;
    doc.finding(
        "asynchronous updates do as well per epoch as synchronous ones, despite stale gradients",
        asy.test >= sync.test - 0.005,
        &format!(
            "{} against {} ({} stale gradients dropped)",
            pct(asy.test),
            pct(sync.test),
            asy.history.last().map_or(0, |e| e.dropped)
        ),
    );
    doc.finding(
        "compressing the gradients (top-k 5 %, int8, error feedback) costs little accuracy",
        comp.test >= sync.test - 0.005,
        &format!(
            "{} against {}, with {} instead of {} sent",
            pct(comp.test),
            pct(sync.test),
            mb(bytes(comp)),
            mb(bytes(sync))
        ),
    );
    Ok(())
}

fn decentralized(s: &Setup, doc: &mut Doc) -> Result<()> {
    doc.para(&format!(
        "`{}` trained by six nodes, each with a disjoint sixth of the training data: a master with six workers \
         (synchronous), and decentralized SGD on the two-star graph (1,2)-3-4-(5,6) and on the complete graph of \
         six, with Metropolis–Hastings weights; each node takes a local Adam step on a batch of 64, then averages \
         with its neighbours. Compressed: top-k 5 % with int8 values (CHOCO-SGD, consensus step 0.2). Accuracy is \
         the nodes' average model's on the validation split; the consensus distance is `(1/n) Σ ‖x_i − x̄‖²`.",
        s.model
    ));
    let dec = |topology: &str, step: f32| DistMode::Decentralized {
        topology: topology.into(),
        consensus_step: step,
    };
    let runs = [
        (
            "master-worker",
            7,
            DistMode::MasterWorker { staleness: None },
            "none",
        ),
        ("two-star", 6, dec("two-star", 1.0), "none"),
        (
            "two-star, compressed",
            6,
            dec("two-star", 0.2),
            "top-k-int8:0.05",
        ),
        ("complete", 6, dec("complete", 1.0), "none"),
        (
            "complete, compressed",
            6,
            dec("complete", 0.2),
            "top-k-int8:0.05",
        ),
    ]
    .into_iter()
    .map(|(label, nodes, mode, compression)| distributed(s, label, nodes, mode, compression))
    .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    let (mut acc, mut cons) = (Vec::new(), Vec::new());
    for r in &runs {
        let last = r.history.last().expect("epochs");
        acc.push(line(
            &r.label,
            r.history
                .iter()
                .filter_map(|e| Some((e.bytes_sent as f64, 100.0 * e.val_accuracy?)))
                .collect(),
        ));
        if r.history
            .iter()
            .all(|e| e.consensus_distance.is_some_and(|c| c > 0.0))
        {
            cons.push(line(
                &r.label,
                r.history
                    .iter()
                    .filter_map(|e| Some((e.bytes_sent as f64, e.consensus_distance?.log10())))
                    .collect(),
            ));
        }
        rows.push(vec![
            r.label.clone(),
            pct(last.val_accuracy.unwrap_or(0.0)),
            pct(r.test),
            last.consensus_distance
                .map_or("—".into(), |c| format!("{c:.2e}")),
            mb(last.bytes_sent as f64),
        ]);
    }
    doc.table(
        &[
            "run",
            "validation",
            "test accuracy",
            "final consensus distance",
            "bytes sent",
        ],
        &rows,
    );
    doc.chart(
        "accuracy-bytes",
        chart(
            "Validation accuracy against bytes sent",
            "bytes sent",
            "validation accuracy (%)",
            true,
            acc,
        ),
    )?;
    doc.chart(
        "consensus-bytes",
        chart(
            "Consensus distance against bytes sent",
            "bytes sent",
            "log10 consensus distance",
            true,
            cons,
        ),
    )?;
    doc.para("## What the numbers show");
    let get = |l: &str| runs.iter().find(|r| r.label == l).expect("a run");
    let bytes = |r: &DistRun| r.history.last().map_or(0, |e| e.bytes_sent) as f64;
    let cd = |r: &DistRun| {
        r.history
            .last()
            .and_then(|e| e.consensus_distance)
            .unwrap_or(0.0)
    };
    let (mw, star, star_c, full, full_c) = (
        get("master-worker"),
        get("two-star"),
        get("two-star, compressed"),
        get("complete"),
        get("complete, compressed"),
    );
    doc.finding(
        "the complete graph keeps the nodes closer together than the sparse two-star",
        cd(full) < cd(star),
        &format!(
            "consensus distance {:.2e} against {:.2e}",
            cd(full),
            cd(star)
        ),
    );
    doc.finding(
        "compressed two-star reaches master-worker's accuracy (within 0.3 points) with ≥ 10× fewer bytes",
        star_c.test >= mw.test - 0.003 && bytes(star_c) * 10.0 <= bytes(mw),
        &format!(
            "{} against {}, {} against {} ({:.0}× fewer)",
            pct(star_c.test),
            pct(mw.test),
            mb(bytes(star_c)),
            mb(bytes(mw)),
            bytes(mw) / bytes(star_c).max(1.0)
        ),
    );
    doc.finding(
        "compression costs the complete graph accuracy",
        full_c.test < full.test,
        &format!(
            "{} compressed against {} uncompressed",
            pct(full_c.test),
            pct(full.test)
        ),
    );
    Ok(())
}

// === sparsity ===

/// Fraction of the weights (not biases) with magnitude below `threshold`.
pub fn near_zero(params: &Params, threshold: f32) -> f64 {
    let (mut small, mut total) = (0usize, 0usize);
    for p in params
        .tensors
        .iter()
        .filter(|p| p.spec.role == Role::Weight)
    {
        small += p.data.iter().filter(|w| w.abs() < threshold).count();
        total += p.data.len();
    }
    small as f64 / total.max(1) as f64
}

fn sparsity(s: &Setup, doc: &mut Doc) -> Result<()> {
    doc.para(&format!(
        "`{}` trained with L1 penalties against dropout (Adam η₀ = 1e-3, cosine decay, batch 64), then each \
         model compressed by `slimnet compress --preset slimnet` with its retraining cut to one epoch per stage \
         (the same settings for all, so the file sizes compare). Near-zero: |w| < 10⁻³ (and < 10⁻²).",
        s.model
    ));
    let split = s.data.split(s.val, s.train_limit)?;
    let variants: Vec<(&str, f32, f32)> = vec![
        ("no regularization", 0.0, 0.0),
        ("L1 1e-5", 1e-5, 0.0),
        ("L1 1e-4", 1e-4, 0.0),
        ("L1 1e-3", 1e-3, 0.0),
        ("dropout 0.2", 0.0, 0.2),
        ("dropout 0.5", 0.0, 0.5),
    ];
    let mut rows = Vec::new();
    let mut results = Vec::new();
    for (label, l1, dropout) in variants {
        let mut cfg = config(s, "adam", 64, 1e-3, Schedule::Cosine { floor: 0.0 })?;
        cfg.l1 = l1;
        cfg.dropout = dropout;
        let f = train(s, label, &request(s, &s.model, false, cfg))?;
        let (z3, z2) = (
            near_zero(&f.model.params, 1e-3),
            near_zero(&f.model.params, 1e-2),
        );
        let mut settings = compressor::Settings::preset(Preset::Slimnet, &f.model.net);
        settings.retrain_epochs = settings.retrain_epochs.min(1);
        settings.final_epochs = settings.final_epochs.min(1);
        settings.finetune_epochs = settings.finetune_epochs.min(1);
        settings.seed = s.seed;
        if s.verbose {
            eprintln!("  compressing {label}");
        }
        let c = compressor::compress(&f.model, &split, &settings, &mut Quiet)
            .with_context(|| format!("compressing {label}"))?;
        rows.push(vec![
            label.to_string(),
            pct(f.test.accuracy),
            pct(z3),
            pct(z2),
            c.report.bytes.to_string(),
            pct(c.report.accuracy),
        ]);
        results.push((
            label,
            f.test.accuracy,
            z3,
            c.report.bytes,
            c.report.accuracy,
        ));
    }
    doc.table(
        &[
            "run",
            "test accuracy",
            "near zero (< 1e-3)",
            "near zero (< 1e-2)",
            ".slim bytes",
            ".slim accuracy",
        ],
        &rows,
    );
    doc.chart("near-zero", chart(
        "Weights with |w| < 1e-3 per run (1 none, 2–4 L1 1e-5, 1e-4, 1e-3, 5–6 dropout 0.2, 0.5)",
        "run", "near-zero weights (%)", false,
        vec![Series { label: "near-zero weights".into(), points: results.iter().enumerate().map(|(i, r)| (i as f64 + 1.0, 100.0 * r.2, 0.0)).collect(), markers_only: true }],
    ))?;
    doc.chart(
        "size-accuracy",
        chart(
            "Compressed size against accuracy",
            ".slim bytes",
            ".slim test accuracy (%)",
            false,
            results
                .iter()
                .map(|r| Series {
                    label: r.0.to_string(),
                    points: vec![(r.3 as f64, 100.0 * r.4, 0.0)],
                    markers_only: true,
                })
                .collect(),
        ),
    )?;
    doc.para("## What the numbers show");
    let (none, l1s, l1m, l1b, d5) = (
        &results[0],
        &results[1],
        &results[2],
        &results[3],
        &results[5],
    );
    doc.finding(
        "L1 drives weights to zero, more with a larger penalty",
        l1b.2 > l1m.2 && l1m.2 > l1s.2 && l1s.2 > none.2,
        &format!(
            "near-zero {} (none), {} (1e-5), {} (1e-4), {} (1e-3)",
            pct(none.2),
            pct(l1s.2),
            pct(l1m.2),
            pct(l1b.2)
        ),
    );
    doc.finding(
        "dropout does not make weights sparse",
        d5.2 <= none.2 + 0.01,
        &format!(
            "near-zero {} with dropout 0.5 against {} without",
            pct(d5.2),
            pct(none.2)
        ),
    );
    doc.finding(
        "the L1-trained model (1e-3) compresses to a smaller file at the same settings",
        l1b.3 < none.3,
        &format!(
            "{} bytes against {} (the preset prunes to a fixed sparsity, so sizes differ only by how the kept \
             weights code)",
            l1b.3, none.3
        ),
    );
    doc.finding(
        "L1's sparser model (1e-3) loses less accuracy when pruned and compressed",
        l1b.1 - l1b.4 <= none.1 - none.4,
        &format!(
            "drop {:+.2} points against {:+.2}",
            100.0 * (l1b.1 - l1b.4),
            100.0 * (none.1 - none.4)
        ),
    );
    Ok(())
}

// === smoothness ===

/// Measures the gradient's local Lipschitz constant along the training trajectory: every `every` steps, the
/// gradient on a fixed probe set, and `‖∇L(w_t) − ∇L(w_s)‖ / ‖w_t − w_s‖` against the previous probe.
struct Lipschitz<'a> {
    eval: &'a Evaluator,
    wrt: Vec<usize>,
    every: usize,
    steps: usize,
    last: Option<(Vec<f32>, Vec<f32>)>,
    points: Vec<(usize, f64)>,
    error: Option<String>,
}

impl Projection for Lipschitz<'_> {
    fn project_parameters(&mut self, _ctx: &StepContext, params: &mut Params) {
        self.steps += 1;
        if !self.steps.is_multiple_of(self.every) || self.error.is_some() {
            return;
        }
        let w: Vec<f32> = self
            .wrt
            .iter()
            .flat_map(|&i| params.tensors[i].data.iter().copied())
            .collect();
        match self.eval.gradient(params, &self.wrt) {
            Ok((_, g)) => {
                let g: Vec<f32> = g.into_iter().flatten().collect();
                if let Some((w0, g0)) = &self.last {
                    let dist = |a: &[f32], b: &[f32]| {
                        a.iter()
                            .zip(b)
                            .map(|(x, y)| f64::from(x - y).powi(2))
                            .sum::<f64>()
                            .sqrt()
                    };
                    let dw = dist(&w, w0);
                    if dw > 0.0 {
                        self.points.push((self.steps, dist(&g, g0) / dw));
                    }
                }
                self.last = Some((w, g));
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }
}

fn smoothness(s: &Setup, doc: &mut Doc) -> Result<()> {
    doc.para(&format!(
        "`{}` trained plainly, with batch normalization, and with sharpness-aware minimization (SAM, ρ = 0.05; \
         Foret et al. 2021), by SGD with momentum 0.9 (η₀ = 0.02, cosine decay, batch 64). Smoothness is \
         measured twice: along the trajectory, the gradient's local Lipschitz constant `‖∇L(w_t) − ∇L(w_s)‖ / \
         ‖w_t − w_s‖` about 40 times over the run on a fixed probe of 1,000 training images (inference mode); and at the end, \
         the top eigenvalue of the loss Hessian (power iteration on finite-difference Hessian-vector products, \
         2,000 training images).",
        s.model
    ));
    let split = s.data.split(s.val, s.train_limit)?;
    let mut rows = Vec::new();
    let (mut curves, mut lips) = (Vec::new(), Vec::new());
    let mut results = Vec::new();
    for (label, bn, sam) in [
        ("plain", false, 0.0f32),
        ("batch norm", true, 0.0),
        ("SAM ρ=0.05", false, 0.05),
    ] {
        if s.verbose {
            eprintln!("{label}");
        }
        let net = NetSpec::parse(
            &s.model,
            Shape::image(s.data.train.rows, s.data.train.cols),
            s.data.classes.max(2),
            bn,
        )?;
        let mut cfg = config(s, "momentum", 64, 0.02, Schedule::Cosine { floor: 0.0 })?;
        cfg.sam_rho = sam;
        let norm = slimnet_models::Normalization::of(&split.train);
        let eval = Evaluator::new(&net, &norm, &split.train, Some(1000))?;
        let wrt: Vec<usize> = net
            .tensors()
            .iter()
            .enumerate()
            .filter(|(_, t)| t.role.trainable())
            .map(|(i, _)| i)
            .collect();
        // About 40 probes over the run.
        let steps = s.epochs * split.train.count.div_ceil(cfg.batch_size);
        let mut probe = Lipschitz {
            eval: &eval,
            wrt,
            every: (steps / 40).max(1),
            steps: 0,
            last: None,
            points: Vec::new(),
            error: None,
        };
        let started = Instant::now();
        let trained = Trainer {
            net: &net,
            config: &cfg,
            split: &split,
            normalization: norm,
            checkpoint: None,
            teacher: None,
        }
        .run(
            Params::init(&net, s.seed),
            false,
            &mut probe,
            &mut Say {
                label,
                verbose: s.verbose,
            },
        )?;
        let wall = started.elapsed().as_secs_f64();
        if let Some(e) = probe.error {
            bail!("{label}: measuring the gradient: {e}");
        }
        let model = slimnet_models::Model {
            net: net.clone(),
            normalization: norm,
            params: trained.params.clone(),
            dataset_sha256: None,
            metadata: Default::default(),
        };
        let settings = sensitivity::Settings {
            analyses: vec![Analysis::Flatness],
            seed: s.seed,
            ..Default::default()
        };
        let flat = sensitivity::analyze(
            Some(&model),
            None,
            &split.test.slice(0, split.test.count.min(1000)),
            &split.train,
            &settings,
            &mut |_| {},
        )?;
        let top = flat
            .flatness
            .iter()
            .find(|f| f.target == "model")
            .map_or(f64::NAN, |f| f.top_eigenvalue);
        let test = slimnet_models::evaluate(&net, &trained.params, &norm, &split.test)?;
        let mut l: Vec<f64> = probe.points.iter().map(|p| p.1).collect();
        l.sort_by(f64::total_cmp);
        let (median, max) = (
            l.get(l.len() / 2).copied().unwrap_or(f64::NAN),
            l.last().copied().unwrap_or(f64::NAN),
        );
        let target = 0.95;
        let reached = trained
            .history
            .iter()
            .find(|m| m.val_accuracy.is_some_and(|a| a >= target))
            .map(|m| m.epoch);
        curves.push(line(
            label,
            trained
                .history
                .iter()
                .map(|m| (m.epoch as f64, m.train_loss))
                .collect(),
        ));
        lips.push(line(
            label,
            probe.points.iter().map(|&(st, v)| (st as f64, v)).collect(),
        ));
        rows.push(vec![
            label.to_string(),
            format!(
                "{:.4}",
                trained.history.last().map_or(f64::NAN, |m| m.train_loss)
            ),
            reached.map_or("not reached".into(), |e| e.to_string()),
            pct(test.accuracy),
            format!("{median:.2}"),
            format!("{max:.2}"),
            format!("{top:.2}"),
            format!("{wall:.1}"),
        ]);
        results.push((
            label,
            trained.history.last().map_or(f64::NAN, |m| m.train_loss),
            median,
            top,
            test.accuracy,
        ));
    }
    doc.table(
        &[
            "run",
            "final training loss",
            "epoch reaching 95 % validation",
            "test accuracy",
            "median gradient Lipschitz",
            "max gradient Lipschitz",
            "top Hessian eigenvalue",
            "seconds",
        ],
        &rows,
    );
    doc.chart(
        "loss",
        chart(
            "Training loss against epochs",
            "epoch",
            "training loss",
            false,
            curves,
        ),
    )?;
    doc.chart(
        "lipschitz",
        chart(
            "Gradient Lipschitz estimate along training",
            "step",
            "‖Δ∇L‖ / ‖Δw‖",
            false,
            lips,
        ),
    )?;
    doc.para("## What the numbers show");
    let (plain, bn, sam) = (&results[0], &results[1], &results[2]);
    doc.finding(
        "batch normalization makes the landscape smoother along the trajectory (Santurkar et al. 2018)",
        bn.2 < plain.2,
        &format!("median gradient Lipschitz {:.2} against {:.2} plain", bn.2, plain.2),
    );
    doc.finding(
        "batch normalization converges faster",
        bn.1 < plain.1,
        &format!("final training loss {:.4} against {:.4}", bn.1, plain.1),
    );
    doc.finding(
        "SAM ends in a flatter minimum (smaller top Hessian eigenvalue)",
        sam.3 < plain.3,
        &format!("{:.2} against {:.2} plain", sam.3, plain.3),
    );
    doc.finding(
        "the flatter minimum generalizes at least as well",
        sam.4 >= plain.4,
        &format!("test accuracy {} against {}", pct(sam.4), pct(plain.4)),
    );
    doc.para(
        "Caveat: with batch normalization the Hessian and the probes are taken in inference mode (running \
         statistics), where the network is a different function of its weights than in training mode; the \
         running statistics keep moving when the decayed learning rate hardly moves the weights, which inflates \
         the ratio late in training (hence the median as the headline figure).",
    );
    Ok(())
}
