//! Upload, archive and decompression limits. Defaults suit a department
//! uploading a few CT/MR studies at once; the server embeds [`Limits`] in its
//! configuration so an admin can change them.

use serde::Deserialize;

/// Every limit the ingest enforces. Sizes are in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Total size of what was uploaded (before any decompression).
    /// Default 2 GiB: a large multi-phase CT study exported uncompressed.
    pub max_upload_bytes: u64,
    /// Files after expanding every archive and folder. Default 10,000:
    /// several thin-slice CT series.
    pub max_files: u64,
    /// Total bytes after decompression, counted as they are actually
    /// inflated (never taken from archive headers). Default 8 GiB.
    pub max_uncompressed_bytes: u64,
    /// Largest inflated/compressed ratio allowed for an archive entry once it
    /// has inflated past [`Limits::ratio_grace_bytes`]. Default 100:1; real
    /// DICOM rarely compresses beyond 10:1, bombs reach 1000:1 and more.
    pub max_ratio: u64,
    /// Entries smaller than this are not ratio-checked: a tiny, very
    /// repetitive file (an empty mask) legitimately compresses well.
    /// Default 1 MiB.
    pub ratio_grace_bytes: u64,
    /// Largest single file after decompression. Default 2 GiB.
    pub max_file_bytes: u64,
    /// Largest raster image, in pixels (width × height). Default 100
    /// megapixels: a whole-slide thumbnail, far below a decompression bomb.
    pub max_raster_pixels: u64,
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 2 * GIB,
            max_files: 10_000,
            max_uncompressed_bytes: 8 * GIB,
            max_ratio: 100,
            ratio_grace_bytes: MIB,
            max_file_bytes: 2 * GIB,
            max_raster_pixels: 100_000_000,
        }
    }
}

/// Bytes as a doctor reads them in a refusal ("2.0 GiB").
pub fn human_bytes(n: u64) -> String {
    if n >= GIB {
        format!("{:.1} GiB", n as f64 / GIB as f64)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_config_keeps_other_defaults() {
        let l: Limits = serde_json::from_str(r#"{"max_files": 3}"#).unwrap();
        assert_eq!(l.max_files, 3);
        assert_eq!(l.max_ratio, Limits::default().max_ratio);
        assert!(serde_json::from_str::<Limits>(r#"{"max_filez": 3}"#).is_err());
    }
}
