//! `slimnet-compress`: quantization, entropy coding and the `.slim` writer (pruning and weight sharing arrive
//! with the compressor issue). It retrains through `slimnet-models`' trainer and measures accuracy by running
//! `slimnet-runtime` on the file it wrote.
#![warn(missing_docs)]

mod error;
pub mod evaluate;
pub mod export;
pub mod huffman;
pub mod naive;
pub mod quantize;
pub mod slim;

pub use error::{Error, Result};
pub use evaluate::{evaluate_slim, NumericPath, SlimEvaluation};
pub use export::{export, DenseEncoding};
pub use slim::SlimFile;
