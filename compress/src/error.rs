//! The one error type of `slimnet-compress`.

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while compressing, exporting or writing `.slim` files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the models crate (data, model files, training).
    #[error(transparent)]
    Models(#[from] slimnet_models::Error),
    /// The runtime rejected a file this crate wrote (a bug) or a file given to evaluate.
    #[error("{context}: {source}")]
    Runtime {
        /// What was being done.
        context: String,
        /// The runtime's error.
        source: slimnet_runtime::Error,
    },
    /// The model cannot be expressed in the `.slim` format.
    #[error("cannot express the model as .slim: {0}")]
    Unsupported(String),
    /// A TFLite file that cannot be read, or that uses what the runtime does not run: names the operator or
    /// tensor (by index) and what is wrong.
    #[error("TFLite model: {0}")]
    Tflite(String),
    /// A setting is out of range (`flag` names the command-line flag).
    #[error("{flag}: {reason}")]
    Config {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A tensor operation failed.
    #[error("tensor backend: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// A setting out of range, named by its flag.
    pub fn config(flag: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            flag,
            reason: reason.into(),
        }
    }

    /// Wraps a runtime error with context.
    pub fn runtime(context: impl Into<String>, source: slimnet_runtime::Error) -> Self {
        Error::Runtime {
            context: context.into(),
            source,
        }
    }
}
