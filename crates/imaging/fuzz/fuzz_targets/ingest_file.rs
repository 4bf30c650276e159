#![no_main]
//! Any bytes, uploaded as one file: must end as accepted or refused, with
//! nothing but accepted files left in the output folder.

use imaging::deid::DeidConfig;
use imaging::ingest::{ingest, IngestConfig};
use imaging::limits::Limits;
use imaging::Source;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("upload");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let out = dir.path().join("out");
    let cfg = IngestConfig {
        limits: Limits {
            // Keep a single run's memory and time small.
            max_file_bytes: 64 << 20,
            max_uncompressed_bytes: 64 << 20,
            max_raster_pixels: 4_000_000,
            ..Limits::default()
        },
        deid: DeidConfig::new([1; 32]),
    };
    let src = Source { name: "upload".into(), path };
    if let Ok(report) = ingest(&[src], &cfg, &out) {
        let stored = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
        assert!(stored <= report.accepted.len());
    }
});
