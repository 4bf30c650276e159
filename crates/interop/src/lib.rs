//! Speaking the hospital's standards, so scanners and PACS can send studies
//! to MedVision and take its results back.
//!
//! Server-only and tenant-agnostic: it knows AE titles, files and UIDs, never
//! cases or databases. The server decides which calling AE titles belong to
//! which organisation ([`scp::Gate`]) and what happens to a received study
//! once it has gone quiet ([`spool::Spool::claim_quiet`]).
//!
//! - [`scp`]: a C-STORE / C-ECHO service class provider over dicom-ul.
//! - [`spool`]: received instances on disk, grouped by study, crash-safe.
//! - [`scu`]: C-ECHO and C-STORE to a remote node.
//! - [`sr`]: a Comprehensive SR document of a case's findings and report.
//! - [`sc`]: a Secondary Capture of a key image with the AI overlay.

pub mod dimse;
pub mod sc;
pub mod scp;
pub mod scu;
pub mod spool;
pub mod sr;

/// Everything that can go wrong talking DICOM.
#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    #[error("DICOM protocol error: {0}")]
    Protocol(String),
    #[error("association refused: {0}")]
    Refused(String),
    #[error("could not connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = InteropError> = std::result::Result<T, E>;

/// A DICOM UID (PS3.5 §9.1): digits and dots, at most 64 characters.
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= 64 && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Writes a data set MedVision made as a Part 10 file in Explicit VR
/// Little Endian, with this implementation's file meta.
pub fn write_part10(
    obj: dicom_object::InMemDicomObject,
    sop_class: &str,
    sop_instance: &str,
    path: &std::path::Path,
) -> Result<()> {
    let meta = dicom_object::FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance)
        .transfer_syntax("1.2.840.10008.1.2.1")
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .build()
        .map_err(|e| InteropError::Invalid(format!("file meta: {e}")))?;
    obj.with_exact_meta(meta)
        .write_to_file(path)
        .map_err(|e| InteropError::Io(std::io::Error::other(e.to_string())))
}

/// This implementation's identity in file meta groups and associations
/// (a UUID-derived root, PS3.5 §B.2).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.207417631806155395476829146712548720613";
pub const IMPLEMENTATION_VERSION_NAME: &str = "MEDVISION_01";

/// The transfer syntaxes this node accepts and sends: the ones the imaging
/// crate decodes (uncompressed, deflated, RLE, JPEG, JPEG-LS, JPEG 2000).
pub const TRANSFER_SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
];

/// The storage SOP classes a radiology department sends (PS3.4 Annex B),
/// plus the SR and SEG objects MedVision itself produces.
pub const STORAGE_SOP_CLASSES: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.1",     // CR
    "1.2.840.10008.5.1.4.1.1.1.1",   // DX for presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1", // DX for processing
    "1.2.840.10008.5.1.4.1.1.1.2",   // MG for presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1", // MG for processing
    "1.2.840.10008.5.1.4.1.1.2",     // CT
    "1.2.840.10008.5.1.4.1.1.2.1",   // Enhanced CT
    "1.2.840.10008.5.1.4.1.1.4",     // MR
    "1.2.840.10008.5.1.4.1.1.4.1",   // Enhanced MR
    "1.2.840.10008.5.1.4.1.1.6.1",   // US
    "1.2.840.10008.5.1.4.1.1.3.1",   // US multi-frame
    "1.2.840.10008.5.1.4.1.1.7",     // Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.2",   // MF grayscale byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",   // MF grayscale word SC
    "1.2.840.10008.5.1.4.1.1.7.4",   // MF true colour SC
    "1.2.840.10008.5.1.4.1.1.12.1",  // XA
    "1.2.840.10008.5.1.4.1.1.12.2",  // RF
    "1.2.840.10008.5.1.4.1.1.20",    // NM
    "1.2.840.10008.5.1.4.1.1.128",   // PET
    "1.2.840.10008.5.1.4.1.1.88.11", // Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22", // Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33", // Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.66.4",  // Segmentation
];
