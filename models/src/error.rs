//! The one error type of `slimnet-models`: every variant names the file, flag or layer at fault.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading data, building networks, training or reading model files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // === Files ===
    /// An operating-system error while reading or writing a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// An output path that cannot be written as asked (a directory, a missing directory, an input of the same
    /// command), found before any work.
    #[error("{}: {reason}", path.display())]
    Output {
        /// The output path as given.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A file (or stream) longer than anything this tool reads as that kind of file (`/dev/zero`, say).
    #[error("{}: larger than {} bytes: not a file of the expected kind (or a stream that does not end)", path.display(), limit)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },

    // === IDX data ===
    /// The file is not in the IDX format (bad magic, wrong element type, bad dimensions).
    #[error("{}: not an IDX file of unsigned bytes: {reason}", path.display())]
    NotIdx {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The header promises more bytes than the file holds.
    #[error("{}: truncated: the header promises {expected} bytes of data, the file has {actual}", path.display())]
    TruncatedIdx {
        /// The file.
        path: PathBuf,
        /// Data bytes the header promises.
        expected: u64,
        /// Data bytes present.
        actual: u64,
    },
    /// The file is well formed but its contents do not fit the dataset (labels out of range, wrong rank, extra bytes).
    #[error("{}: {reason}", path.display())]
    BadIdx {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An image file and its label file disagree on the number of samples.
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Its sample count.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Its sample count.
        labels: usize,
    },
    /// A file's SHA-256 differs from the one listed in the dataset's `SHA256SUMS`.
    #[error("{}: SHA-256 {actual} does not match {expected} listed in SHA256SUMS (corrupt or replaced file)", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Digest listed in `SHA256SUMS`.
        expected: String,
        /// Digest of the decompressed file.
        actual: String,
    },
    /// A dataset split cannot be carved as asked (for example `--val` larger than the training set).
    #[error("{0}")]
    Split(String),

    // === Architectures ===
    /// The architecture spec string does not parse or describes an impossible network.
    #[error("bad architecture `{spec}`: {reason}")]
    ArchSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        reason: String,
    },

    // === Model files ===
    /// A model or checkpoint file is unreadable or inconsistent.
    #[error("{}: {reason}", path.display())]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    // === Training ===
    /// A training setting is out of range (`flag` names the command-line flag).
    #[error("{flag}: {reason}")]
    Config {
        /// The setting, spelled as its command-line flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The loss became NaN or infinite.
    #[error("training diverged: the loss became {loss} at epoch {epoch}, step {step}, with learning rate {lr:e}; try a smaller --lr")]
    Diverged {
        /// The non-finite loss.
        loss: f32,
        /// Epoch (1-based).
        epoch: usize,
        /// Step within the epoch (1-based).
        step: usize,
        /// Learning rate in force.
        lr: f64,
    },
    /// An observer (progress display, metrics writer) asked to stop.
    #[error("{0}")]
    Observer(String),

    // === Distributed training ===
    /// A node of a distributed run failed, or the run cannot start (topology, node count, shards).
    #[error("{0}")]
    Distributed(String),

    // === Tensor backend ===
    /// An error from candle (shapes, kernels).
    #[error("tensor backend: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A model-file error for `path`.
    pub fn model_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::ModelFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A bad setting for command-line flag `flag`.
    pub fn config(flag: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            flag,
            reason: reason.into(),
        }
    }
}
