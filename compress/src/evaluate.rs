//! Accuracy of a `.slim` file measured by the runtime itself, on either numeric path: the number a user reads is
//! the number of the artifact they deploy.

use crate::error::{Error, Result};
use slimnet_models::Dataset;
use slimnet_runtime::Model;

/// Which numeric path runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericPath {
    /// f32 kernels.
    F32,
    /// Integer-only kernels.
    Integer,
}

/// The result of running a `.slim` file over a dataset.
#[derive(Debug, Clone)]
pub struct SlimEvaluation {
    /// Fraction of samples classified correctly.
    pub accuracy: f64,
    /// Samples run.
    pub samples: usize,
    /// Mean cross-entropy of the runtime's logits (f32 path only: int8 logits carry no scale in the file).
    pub loss: Option<f64>,
    /// Predicted class of every sample.
    pub predictions: Vec<u16>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u32>>,
}

/// Runs every sample of `data` through `bytes` on `path`, split over the available cores.
pub fn evaluate_slim(bytes: &[u8], data: &Dataset, path: NumericPath) -> Result<SlimEvaluation> {
    let model =
        Model::from_bytes(bytes).map_err(|e| Error::runtime("reading the .slim file", e))?;
    if model.input_len() != data.image_len() {
        return Err(Error::Unsupported(format!(
            "the model takes {} inputs, the images have {}",
            model.input_len(),
            data.image_len()
        )));
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = data.count.div_ceil(threads).max(1);
    let arena_len = match path {
        NumericPath::F32 => model.arena_len(),
        NumericPath::Integer => model.arena_len_int8(),
    };
    let results: Vec<Result<Vec<(u16, f64)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..data.count)
            .step_by(chunk)
            .map(|start| {
                let model = &model;
                s.spawn(move || {
                    let mut arena = vec![0u8; arena_len];
                    let mut logits = vec![0f32; model.classes()];
                    let mut q = vec![0i8; model.classes()];
                    (start..(start + chunk).min(data.count))
                        .map(|i| {
                            let img = data.image(i);
                            let run = match path {
                                NumericPath::F32 => {
                                    model.run_u8(img, &mut arena, &mut logits).map(|()| {
                                        let label = usize::from(data.labels[i]);
                                        (
                                            slimnet_runtime::argmax(&logits),
                                            cross_entropy(&logits, label),
                                        )
                                    })
                                }
                                NumericPath::Integer => model
                                    .run_u8_int8(img, &mut arena, &mut q)
                                    .map(|()| (slimnet_runtime::argmax(&q), 0.0)),
                            };
                            run.map(|(c, l)| (c as u16, l))
                                .map_err(|e| Error::runtime("running the model", e))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("evaluation thread"))
            .collect()
    });
    let mut predictions = Vec::with_capacity(data.count);
    let mut loss_sum = 0f64;
    for r in results {
        for (p, l) in r? {
            predictions.push(p);
            loss_sum += l;
        }
    }
    let classes = model.classes().max(data.classes_needed());
    let mut confusion = vec![vec![0u32; classes]; classes];
    let mut correct = 0usize;
    for (p, &t) in predictions.iter().zip(&data.labels) {
        confusion[usize::from(t)][usize::from(*p)] += 1;
        correct += usize::from(usize::from(*p) == usize::from(t));
    }
    Ok(SlimEvaluation {
        accuracy: correct as f64 / data.count.max(1) as f64,
        loss: (path == NumericPath::F32).then(|| loss_sum / data.count.max(1) as f64),
        samples: data.count,
        predictions,
        confusion,
    })
}

/// `−log softmax(logits)[label]`, with the max subtracted before exponentiating.
fn cross_entropy(logits: &[f32], label: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let sum: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
    sum.ln() - f64::from(logits.get(label).copied().unwrap_or(max) - max)
}
