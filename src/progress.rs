//! Training progress for people and for files: an indicatif bar per epoch (drawn only on a terminal), one summary
//! line per epoch on stderr, and the per-epoch metrics file (`--metrics`, CSV or JSON by extension), rewritten
//! atomically after every epoch so that it is complete whenever it is read.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use slimnet_models::train::{EpochMetrics, Observer, StepReport};
use std::path::PathBuf;

/// Draws progress and writes metrics.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    metrics: Option<PathBuf>,
    /// Label printed before each epoch line (e.g. the stage of a pipeline).
    label: String,
}

impl Progress {
    /// A progress reporter; `quiet` silences everything but the metrics file.
    pub fn new(quiet: bool, metrics: Option<PathBuf>, label: impl Into<String>) -> Self {
        Progress {
            bar: None,
            quiet,
            metrics,
            label: label.into(),
        }
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

impl Observer for Progress {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}epoch {epoch}/{epochs}", self.label));
        self.bar = Some(bar);
    }

    fn step(&mut self, r: &StepReport) {
        if let Some(bar) = &self.bar {
            // Redrawing every step would cost more than small steps themselves.
            if r.step.is_multiple_of(16) || r.step == r.steps {
                bar.set_position(r.step as u64);
                bar.set_message(format!("loss {:.4} acc {}", r.loss, pct(r.accuracy)));
            }
        }
    }

    fn epoch_end(
        &mut self,
        m: &EpochMetrics,
        history: &[EpochMetrics],
    ) -> slimnet_models::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            let val = m
                .val_accuracy
                .map(|a| format!("  val {}", pct(a)))
                .unwrap_or_default();
            eprintln!(
                "{}epoch {:>3}  loss {:.4}  train {}{val}  lr {:.2e}  {:.1} s",
                self.label,
                m.epoch,
                m.train_loss,
                pct(m.train_accuracy),
                m.lr,
                m.seconds
            );
        }
        if let Some(path) = &self.metrics {
            let bytes = if path.extension().is_some_and(|e| e == "json") {
                serde_json::to_vec_pretty(history).expect("serializable")
            } else {
                csv(history).into_bytes()
            };
            slimnet_models::atomic::write_atomic(path, &bytes)?;
        }
        Ok(())
    }
}

impl slimnet_compress::compressor::Events for Progress {
    fn stage_start(&mut self, name: &str, what: &str) {
        if !self.quiet {
            eprintln!("{name}: {what}");
        }
        self.label = format!("{name}: ");
    }

    fn warning(&mut self, message: &str) {
        // Shown even with --quiet: it is about the result, not progress.
        eprintln!("warning: {message}");
    }

    fn stage_end(&mut self, s: &slimnet_compress::compressor::Stage) {
        if !self.quiet {
            eprintln!(
                "{}: {} bytes{} ({:.1}×), test accuracy {}{} in {:.1} s",
                s.name,
                s.bytes,
                if s.bytes_kind == "file" {
                    ""
                } else {
                    " accounted"
                },
                s.ratio,
                pct(s.accuracy),
                s.accuracy_integer_only
                    .map(|a| format!(", integer-only {}", pct(a)))
                    .unwrap_or_default(),
                s.seconds
            );
        }
    }
}

/// The metrics as CSV, one row per epoch (empty cells where there is no validation split).
fn csv(history: &[EpochMetrics]) -> String {
    let mut out =
        String::from("epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds,lr\n");
    for m in history {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            m.epoch,
            m.train_loss,
            m.train_accuracy,
            opt(m.val_loss),
            opt(m.val_accuracy),
            m.seconds,
            m.lr
        ));
    }
    out
}
