use std::path::PathBuf;

/// Everything that can go wrong in the evidence crate. Bad input is reported
/// as a specific variant and leaves stores and files as they were.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "embedding model not found: {missing} is missing in {dir} \
         (run scripts/fetch-embedder.sh or set MEDVISION_EMBEDDER_DIR)"
    )]
    ModelMissing { dir: PathBuf, missing: &'static str },
    #[error("embedding model: {0}")]
    Model(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("vector store ({backend}): {message}")]
    Store {
        backend: &'static str,
        message: String,
    },
    #[error("signed reports are indexed and searched only within one organisation: an organisation id is required")]
    TenantRequired,
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("PubMed XML {origin}: {message}")]
    Xml { origin: String, message: String },
    #[error("guideline {path}: {message}")]
    Guideline { path: PathBuf, message: String },
    #[error("PubMed E-utilities: {0}")]
    Http(String),
    #[error("PubMed E-utilities answered {status} for {endpoint} after {attempts} attempts")]
    HttpStatus {
        status: u16,
        endpoint: String,
        attempts: u32,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Model(e.to_string())
    }
}
