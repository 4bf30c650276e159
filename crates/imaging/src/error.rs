//! The crate's one error type. Every message is written for the doctor who
//! uploaded the file: it says what is wrong with *their* file, never how the
//! code failed, and never carries patient data.

/// Why a file (or an upload) was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ImagingError {
    #[error("the file is empty")]
    Empty,
    #[error("not a recognised medical image (DICOM, NIfTI, PNG, JPEG, TIFF, BMP or ZIP)")]
    NotRecognised,
    #[error("{what} is truncated")]
    Truncated { what: String },
    #[error("the file is damaged: {detail}")]
    Corrupt { detail: String },
    #[error("unsupported: {detail}")]
    Unsupported { detail: String },
    #[error("{what} is larger than the limit of {limit}")]
    TooLarge { what: String, limit: String },
    #[error("the archive expands suspiciously (compression ratio above {max_ratio}:1); refused as a possible zip bomb")]
    ArchiveBomb { max_ratio: u64 },
    #[error("the archive has more than {max} files")]
    TooManyFiles { max: u64 },
    #[error("the archive entry {entry:?} points outside the archive")]
    UnsafePath { entry: String },
    #[error("the archive entry {entry:?} is a symbolic link")]
    Symlink { entry: String },
    #[error("de-identification failed: {detail}; the file was not stored")]
    Deidentification { detail: String },
    #[error("the image has burned-in patient annotation (Burned In Annotation = YES)")]
    BurnedInAnnotation,
    #[error("could not read or write the file")]
    Io,
    /// [`crate::write`] was handed something it cannot encode (wrong pixel
    /// count, values that do not fit, a bad file name).
    #[error("cannot write the file: {detail}")]
    Write { detail: String },
}

impl From<std::io::Error> for ImagingError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => ImagingError::Truncated {
                what: "the file".into(),
            },
            _ => ImagingError::Io,
        }
    }
}

pub type Result<T, E = ImagingError> = std::result::Result<T, E>;
