//! `slimnet-compress`: pruning with retraining ([`prune`]), weight sharing with centroid fine-tuning
//! ([`cluster`]), 8-bit quantization ([`quantize`]), entropy coding ([`huffman`]) and the `.slim` writer
//! ([`slim`], [`export`]), put together by [`compressor`]. It retrains through `slimnet-models`' trainer and
//! measures accuracy by running `slimnet-runtime` on the file it wrote ([`evaluate`]).
#![warn(missing_docs)]

pub mod auto;
pub mod cluster;
pub mod compressor;
mod error;
pub mod evaluate;
pub mod export;
pub mod huffman;
pub mod lossless;
pub mod prune;
pub mod quantize;
pub mod sensitivity;
pub mod slim;
pub mod tflite;

pub use compressor::{compress, Compressed, Preset, Report, Settings};
pub use error::{Error, Result};
pub use evaluate::{evaluate_slim, NumericPath, SlimEvaluation};
pub use export::{export, DenseEncoding};
pub use slim::SlimFile;
