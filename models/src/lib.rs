//! `slimnet-models`: MNIST-format data, network descriptions, and the candle trainer.
//!
//! - [`data`] reads IDX files (gzipped or raw), verifies checksums and splits train / validation / test;
//! - [`arch`] describes networks once ([`NetSpec`]), shared with the compressor;
//! - [`params`] holds weights on the host and reads / writes self-describing safetensors model files;
//! - [`net`] builds the candle graph and the losses; [`optim`] the optimizers and schedules;
//! - [`train`] runs training with a per-step [`train::Projection`] hook; [`eval`] measures accuracy;
//! - [`distributed`] trains over a network of nodes (master–worker, decentralized), on MPI or on threads.
#![warn(missing_docs)]

pub mod arch;
pub mod atomic;
pub mod data;
pub mod distributed;
mod error;
pub mod eval;
pub mod fit;
pub mod input;
pub mod net;
mod ops;
pub mod optim;
pub mod params;
pub mod train;

pub use arch::{Activation, Layer, NetSpec, Role, Shape};
pub use data::{Dataset, Mnist, Normalization, Split};
pub use error::{Error, Result};
pub use eval::{evaluate, Evaluation};
pub use optim::{OptimizerKind, Schedule};
pub use params::{Model, Params};
pub use train::{Observer, Projection, TrainConfig, Trainer};
