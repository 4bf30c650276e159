//! Helpers shared by the ingest-side tests (files_*, nifti_*, deid_*,
//! ingest_*, archive_*).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use imaging::deid::DeidConfig;
use imaging::ingest::IngestConfig;
use imaging::limits::Limits;
use imaging::Source;

/// `$MEDVISION_FIXTURES/<rel>` (default `~/.cache/medvision/fixtures`), or
/// None with a note on stderr when scripts/fixtures.sh has not run.
pub fn fixture(rel: &str) -> Option<PathBuf> {
    let root = std::env::var_os("MEDVISION_FIXTURES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/medvision/fixtures"))
        })?;
    let p = root.join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {} missing; run scripts/fixtures.sh", p.display());
        None
    }
}

pub const PYDICOM: &str = "pydicom-3.0.2/pydicom/data/test_files";

pub fn config() -> IngestConfig {
    IngestConfig {
        limits: Limits::default(),
        deid: DeidConfig::new([7u8; 32]),
    }
}

pub fn source(path: &Path) -> Source {
    Source {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: path.to_path_buf(),
    }
}

/// Files directly in `dir` (not folders), for asserting nothing was left.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}
