//! DICOM / NIfTI / raster decoding, de-identification, windowing and volumes.
//!
//! Server-only: this crate never enters the wasm build. Its implementation
//! lands with the imaging issue.
