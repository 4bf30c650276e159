//! Helpers shared by the ingest-side tests (files_*, nifti_*, deid_*,
//! ingest_*, archive_*).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
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

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

/// A small, valid CT image (explicit VR little endian) naming a patient.
pub fn dicom(study: &str, sop: &str) -> Vec<u8> {
    let s = |g, e, vr, v: &str| DataElement::new(Tag(g, e), vr, PrimitiveValue::from(v));
    let u = |g, e, v: u16| DataElement::new(Tag(g, e), VR::US, PrimitiveValue::from(v));
    let obj = InMemDicomObject::from_element_iter([
        s(0x0008, 0x0016, VR::UI, CT),
        s(0x0008, 0x0018, VR::UI, sop),
        s(0x0008, 0x0060, VR::CS, "CT"),
        s(0x0010, 0x0010, VR::PN, "Doe^Jane"),
        s(0x0010, 0x0020, VR::LO, "PID123456"),
        s(0x0020, 0x000D, VR::UI, study),
        s(0x0020, 0x000E, VR::UI, &format!("{study}.1")),
        u(0x0028, 0x0002, 1),
        s(0x0028, 0x0004, VR::CS, "MONOCHROME2"),
        u(0x0028, 0x0010, 16),
        u(0x0028, 0x0011, 16),
        u(0x0028, 0x0100, 16),
        u(0x0028, 0x0101, 16),
        u(0x0028, 0x0102, 15),
        u(0x0028, 0x0103, 0),
        DataElement::new(
            Tag(0x7FE0, 0x0010),
            VR::OB,
            PrimitiveValue::from(vec![7u8; 16 * 16 * 2]),
        ),
    ]);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(CT)
                .media_storage_sop_instance_uid(sop)
                .transfer_syntax("1.2.840.10008.1.2.1"),
        )
        .unwrap();
    let mut out = Vec::new();
    file.write_all(&mut out).unwrap();
    out
}

/// A 2x2x1 uint8 NIfTI-1 volume with a name in `descrip`.
pub fn tiny_nifti() -> Vec<u8> {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (i, d) in [3i16, 2, 2, 1, 1, 1, 1, 1].iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&2i16.to_le_bytes());
    h[72..74].copy_from_slice(&8i16.to_le_bytes());
    for i in 0..4 {
        h[76 + 4 * i..80 + 4 * i].copy_from_slice(&1f32.to_le_bytes());
    }
    h[108..112].copy_from_slice(&352f32.to_le_bytes());
    h[148..156].copy_from_slice(b"Doe^Jane");
    h[344..348].copy_from_slice(b"n+1\0");
    h.extend_from_slice(&[1, 2, 3, 4]);
    h
}
