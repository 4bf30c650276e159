//! DICOM / NIfTI / raster decoding, de-identification, windowing and volumes.
//!
//! Server-only: this crate never enters the wasm build. It knows nothing of
//! cases, tenants or databases; the server hands it files on disk and gets back
//! de-identified files plus the metadata to index them (see [`ingest`]).
//!
//! Layout, one job per module:
//! - [`sniff`]: what a file is, by its bytes, never its name.
//! - [`limits`]: upload, archive and decompression limits.
//! - [`archive`]: ZIP / folder / DICOMDIR expansion under those limits.
//! - [`dicom`]: DICOM parsing and pixel decoding for every transfer syntax.
//! - [`pixel`]: modality LUT, VOI LUT and windows, photometric conversion, resampling.
//! - [`volume`]: series grouping into volumes sorted along the slice normal.
//! - [`nifti`]: NIfTI-1/2 volumes with their affine in the DICOM (LPS) convention.
//! - [`raster`]: PNG, JPEG, TIFF, BMP.
//! - [`deid`]: DICOM PS3.15 Annex E de-identification.
//! - [`render`]: PNG previews and tiles for the viewer.
//! - [`ingest`]: the whole pipeline, all-or-nothing per study.
//! - [`write`]: DICOM and NIfTI writers for synthetic phantoms.

pub mod archive;
pub mod deid;
pub mod dicom;
pub mod error;
pub mod ingest;
pub mod limits;
pub mod model;
pub mod nifti;
pub mod pixel;
pub mod raster;
pub mod render;
pub mod sniff;
pub mod volume;
pub mod write;

pub use error::{ImagingError, Result};
pub use model::*;
