use std::path::PathBuf;

/// Everything that can go wrong between a weights file and a finding.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// A weights file is missing a tensor the architecture needs.
    #[error("weights file has no tensor `{name}` (the first one missing for {arch})")]
    MissingTensor { arch: String, name: String },
    /// A tensor is present but has the wrong shape.
    #[error("tensor `{name}` has shape {found:?}, {arch} expects {expected:?}")]
    TensorShape {
        arch: String,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A weights file has tensors the architecture does not use: most likely
    /// weights of a different variant or head.
    #[error("weights file has tensor `{name}` that {arch} does not use ({count} such tensors): weights of a different variant?")]
    UnexpectedTensor {
        arch: String,
        name: String,
        count: usize,
    },
    /// The weights file could not be read as safetensors or a PyTorch state dict.
    #[error("cannot read weights {path}: {reason}")]
    CorruptWeights { path: PathBuf, reason: String },
    /// A file's sha256 differs from the one the pack declares.
    #[error("{path}: sha256 is {found}, model.toml says {expected}")]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// `model.toml` is missing, unreadable or inconsistent.
    #[error("model pack {path}: {reason}")]
    Pack { path: PathBuf, reason: String },
    /// The input cannot be what the model was trained on.
    #[error("input rejected: {0}")]
    Input(String),
    /// Arguments to a routine (calibration data, shapes of a call) are unusable.
    #[error("{0}")]
    Invalid(String),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An error inside candle that none of the checks above caught first.
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

pub type Result<T, E = InferenceError> = std::result::Result<T, E>;

impl InferenceError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
