//! Batch evaluation of a model on a dataset: accuracy, loss, per-class accuracy and the confusion matrix.

use crate::data::{Dataset, Normalization};
use crate::error::Result;
use crate::net::{self, Loss, Mode};
use crate::params::Params;
use crate::NetSpec;
use serde::Serialize;

/// Samples per forward pass while evaluating.
pub const EVAL_BATCH: usize = 1000;

/// The result of evaluating a model on a dataset.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Fraction of samples classified correctly (0..1).
    pub accuracy: f64,
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// Number of samples.
    pub samples: usize,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u32>>,
    /// The predicted class of every sample, in order.
    #[serde(skip)]
    pub predictions: Vec<u32>,
}

impl Evaluation {
    /// Accuracy of each true class (NaN-free: a class without samples gets 0).
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let n: u32 = row.iter().sum();
                if n == 0 {
                    0.0
                } else {
                    f64::from(row[c]) / f64::from(n)
                }
            })
            .collect()
    }
}

/// Evaluates `params` on all of `data`, in batches.
pub fn evaluate(
    net: &NetSpec,
    params: &Params,
    norm: &Normalization,
    data: &Dataset,
) -> Result<Evaluation> {
    let tensors = net::constants(params)?;
    let classes = net.classes;
    let mut confusion = vec![vec![0u32; classes]; classes];
    let mut predictions = Vec::with_capacity(data.count);
    let (mut loss_sum, mut correct) = (0f64, 0usize);
    let indices: Vec<usize> = (0..data.count).collect();
    for chunk in indices.chunks(EVAL_BATCH) {
        let (x, y) = net::batch(net, data, norm, chunk)?;
        let (logits, _) = net::forward(net, &tensors, &x, Mode::Eval)?;
        let l = net::loss(Loss::CrossEntropy, &logits, &y)?.to_scalar::<f32>()?;
        loss_sum += f64::from(l) * chunk.len() as f64;
        for (&i, p) in chunk.iter().zip(net::argmax(&logits)?) {
            let t = usize::from(data.labels[i]);
            predictions.push(p);
            let p = p as usize;
            if t < classes && p < classes {
                confusion[t][p] += 1;
            }
            correct += usize::from(t == p);
        }
    }
    let samples = data.count;
    Ok(Evaluation {
        accuracy: if samples == 0 {
            0.0
        } else {
            correct as f64 / samples as f64
        },
        loss: if samples == 0 {
            0.0
        } else {
            loss_sum / samples as f64
        },
        samples,
        confusion,
        predictions,
    })
}
