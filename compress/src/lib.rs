//! `slimnet-compress`: pruning with retraining, weight sharing, quantization, entropy coding and the `.slim`
//! writer. It retrains through `slimnet-models`' trainer (its projection hook) and measures accuracy by running
//! `slimnet-runtime` on the file it wrote. The stages arrive with the compressor issue.
#![warn(missing_docs)]
