//! The types the server relies on. Changing a field here is a contract change
//! for `server` (tables, JSON answers): do it on purpose.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What an accepted file is stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceKind {
    /// A de-identified DICOM Part 10 file.
    Dicom,
    /// A NIfTI-1 or NIfTI-2 volume (`.nii`, or `.nii.gz` kept compressed).
    Nifti,
    /// A raster image, re-encoded as PNG so no EXIF or text chunk survives.
    Raster,
}

/// One file handed to [`crate::ingest::ingest`]: what the uploader called it
/// (only for messages) and where it lies on disk.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub path: PathBuf,
}

/// A refused file and why, in words a doctor understands, e.g.
/// `file: "study.zip/IMG0012.dcm"`, `reason: "pixel data is truncated"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub file: String,
    pub reason: String,
}

/// One change de-identification made to a header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeidChange {
    /// `"(0010,0010)"`.
    pub tag: String,
    /// `"PatientName"`, or empty for a private tag.
    pub keyword: String,
    /// PS3.15 action: `removed`, `emptied`, `replaced`, `uid_remapped`,
    /// `date_shifted`, `cleaned`, `private_removed`.
    pub action: String,
}

/// The index entry for one accepted file, taken from its *de-identified* header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    pub modality: String,
    pub body_part: Option<String>,
    pub study_description: Option<String>,
    pub series_description: Option<String>,
    pub series_number: Option<i32>,
    pub instance_number: Option<i32>,
    pub rows: u32,
    pub columns: u32,
    /// Frames of a multi-frame DICOM, or slices × volumes of a NIfTI.
    pub frames: u32,
    /// Row spacing, column spacing in mm.
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    pub image_position: Option<[f64; 3]>,
    pub image_orientation: Option<[f64; 6]>,
    pub transfer_syntax: Option<String>,
    pub photometric: Option<String>,
    pub bits_allocated: Option<u16>,
    /// Burned In Annotation was YES and the policy was to flag, not refuse.
    pub burned_in_annotation: bool,
}

/// An accepted file: the de-identified bytes are at `path` (inside the
/// caller's output folder), `sha256` is of those bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    pub file: String,
    pub kind: InstanceKind,
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub info: InstanceInfo,
    pub deid: Vec<DeidChange>,
    /// The stored header in the DICOM JSON model (PS3.18 F.2), bulk data
    /// (pixel data) left out. NIfTI and raster files get the equivalent
    /// header we synthesise for them.
    pub dicom_json: serde_json::Value,
}

/// What an ingest did. A study appears in `accepted` only if every one of its
/// files passed; otherwise all of them are in `rejected` (all-or-nothing).
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub accepted: Vec<Accepted>,
    pub rejected: Vec<Rejected>,
    /// Original → replacement identifiers, for re-identification by an
    /// admin. Empty unless `DeidConfig::keep_identity_map` is on: the
    /// mapping is PHI and is never kept otherwise. Entries of rejected
    /// studies are left out.
    pub identity_map: Vec<IdentityEntry>,
}

/// One original identifier and what replaced it (empty when it was
/// removed or emptied). Only produced on request; see
/// [`IngestReport::identity_map`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityEntry {
    /// `"(0020,000D)"`.
    pub tag: String,
    pub original: String,
    pub replacement: String,
}
