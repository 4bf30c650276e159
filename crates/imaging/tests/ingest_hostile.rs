//! Hostile and broken uploads built in the test: each is refused with a
//! reason a doctor can read, and nothing of it is left in the output
//! folder. Also all-or-nothing per study, nesting, NIfTI and raster
//! de-identification. No fixtures needed.

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

mod files_common;

use std::io::Write;
use std::path::{Path, PathBuf};

use files_common::*;
use imaging::ingest::{ingest, IngestConfig};
use imaging::{ImagingError, IngestReport, InstanceKind, Source};
use zip::write::SimpleFileOptions;

/// The header bytes of the Pixel Data element (explicit VR LE, OB).
fn pixel_header_at(bytes: &[u8]) -> usize {
    bytes
        .windows(6)
        .position(|w| w == b"\xe0\x7f\x10\x00OB")
        .unwrap()
}

fn truncated_dicom(study: &str, sop: &str) -> Vec<u8> {
    let mut d = dicom(study, sop);
    d.truncate(d.len() - 100);
    d
}

fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn run(path: &Path, cfg: &IngestConfig) -> (tempfile::TempDir, IngestReport) {
    let out = tempfile::tempdir().unwrap();
    let report = ingest(&[source(path)], cfg, out.path()).unwrap();
    (out, report)
}

/// Refused with `reason` containing `why`, and nothing left behind.
fn assert_refused(path: &Path, why: &str) {
    let (out, report) = run(path, &config());
    assert!(
        report.accepted.is_empty(),
        "{:?}",
        report.accepted.iter().map(|a| &a.file).collect::<Vec<_>>()
    );
    assert!(
        report.rejected.iter().any(|r| r.reason.contains(why)),
        "expected {why:?} in {:#?}",
        report.rejected
    );
    assert!(
        files_in(out.path()).is_empty(),
        "left behind: {:?}",
        files_in(out.path())
    );
}

#[test]
fn zip_bomb_is_refused_while_inflating() {
    let tmp = tempfile::tempdir().unwrap();
    let bomb = zip_of(&[
        ("ok.dcm", dicom("1.2.3", "1.2.3.1")),
        ("bomb.dcm", vec![0u8; 64 << 20]),
    ]);
    assert!(
        bomb.len() < 1 << 20,
        "the bomb should be small: {}",
        bomb.len()
    );
    let p = write(&tmp, "bomb.zip", &bomb);
    assert_refused(&p, "zip bomb");
}

#[test]
fn total_inflated_size_is_a_whole_upload_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(
        &tmp,
        "big.zip",
        &zip_of(&[
            ("a.dcm", dicom("1.2.3", "1.2.3.1")),
            ("b.bin", vec![1u8; 3 << 20]),
        ]),
    );
    let mut cfg = config();
    cfg.limits.max_uncompressed_bytes = 2 << 20;
    cfg.limits.max_ratio = u64::MAX;
    let out = tempfile::tempdir().unwrap();
    let err = ingest(&[source(&p)], &cfg, out.path()).unwrap_err();
    assert!(matches!(err, ImagingError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("decompressed"));
    assert!(files_in(out.path()).is_empty());
}

#[test]
fn zip_slip_entry_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut z = zip_of(&[("AA/AA/evil.dcm", dicom("1.2.3", "1.2.3.1"))]);
    // The writer will not name an entry "../", so rename it in place (both
    // the local header and the central directory, same length).
    let mut n = 0;
    while let Some(i) = z.windows(6).position(|w| w == b"AA/AA/") {
        z[i..i + 6].copy_from_slice(b"../../");
        n += 1;
    }
    assert_eq!(n, 2);
    let p = write(&tmp, "slip.zip", &z);
    assert_refused(&p, "points outside the archive");
    assert!(!tmp.path().parent().unwrap().join("evil.dcm").exists());
}

#[test]
fn symlink_entry_and_symlink_in_folder_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.add_symlink("IMG0001.dcm", "/etc/passwd", SimpleFileOptions::default())
        .unwrap();
    let p = write(&tmp, "link.zip", &w.finish().unwrap().into_inner());
    assert_refused(&p, "symbolic link");

    let folder = tmp.path().join("upload");
    std::fs::create_dir(&folder).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", folder.join("IMG0002.dcm")).unwrap();
    assert_refused(&folder, "symbolic link");
}

#[test]
fn empty_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(&tmp, "empty.zip", &zip_of(&[("IMG0001.dcm", Vec::new())]));
    assert_refused(&p, "empty");
}

#[test]
fn truncated_dicom_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(&tmp, "IMG0012.dcm", &truncated_dicom("1.2.3", "1.2.3.1"));
    assert_refused(&p, "pixel data is truncated");
}

#[test]
fn four_gigabyte_declared_length_is_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = dicom("1.2.3", "1.2.3.1");
    let at = pixel_header_at(&d) + 8;
    d[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let p = write(&tmp, "huge.dcm", &d);
    assert_refused(&p, "larger than any real file");
}

#[test]
fn png_renamed_dcm_is_taken_for_what_it_is_and_loses_its_text() {
    // Decision: content decides. A PNG named .dcm is ingested as a raster
    // image (re-encoded, so its text chunks go), never parsed as DICOM.
    let tmp = tempfile::tempdir().unwrap();
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, 4, 3);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.add_text_chunk("Comment".into(), "Doe^Jane PID123456".into())
            .unwrap();
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[9u8; 12]).unwrap();
    }
    assert!(png_bytes.windows(8).any(|w| w == b"Doe^Jane"));
    let p = write(&tmp, "IMG0001.dcm", &png_bytes);
    let (out, report) = run(&p, &config());
    assert_eq!(report.accepted.len(), 1, "{:?}", report.rejected);
    let a = &report.accepted[0];
    assert_eq!(a.kind, InstanceKind::Raster);
    assert_eq!((a.info.columns, a.info.rows), (4, 3));
    let stored = std::fs::read(&a.path).unwrap();
    assert!(stored.starts_with(b"\x89PNG"));
    assert!(!stored.windows(8).any(|w| w == b"Doe^Jane"));
    assert_eq!(files_in(out.path()), vec![a.path.clone()]);
}

#[test]
fn a_failing_file_takes_its_whole_study_down_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let z = zip_of(&[
        ("s1/IMG0001.dcm", dicom("1.2.3", "1.2.3.1")),
        ("s1/IMG0002.dcm", dicom("1.2.3", "1.2.3.2")),
        ("s1/IMG0003.dcm", dicom("1.2.3", "1.2.3.3")),
        ("s1/IMG0004.dcm", truncated_dicom("1.2.3", "1.2.3.4")),
        ("s2/IMG0001.dcm", dicom("1.2.4", "1.2.4.1")),
    ]);
    let p = write(&tmp, "study.zip", &z);
    let (out, report) = run(&p, &config());
    assert_eq!(report.accepted.len(), 1);
    assert_eq!(report.accepted[0].file, "study.zip/s2/IMG0001.dcm");
    assert_eq!(report.rejected.len(), 4, "{:#?}", report.rejected);
    let bad = report
        .rejected
        .iter()
        .find(|r| r.file == "study.zip/s1/IMG0004.dcm")
        .unwrap();
    assert_eq!(bad.reason, "file 4 of 5: pixel data is truncated");
    for r in report.rejected.iter().filter(|r| r.file != bad.file) {
        assert!(
            r.reason
                .contains("file 4 of 5, study.zip/s1/IMG0004.dcm: pixel data is truncated"),
            "{}",
            r.reason
        );
    }
    assert_eq!(files_in(out.path()), vec![report.accepted[0].path.clone()]);
    // The accepted study was de-identified.
    let stored = std::fs::read(&report.accepted[0].path).unwrap();
    assert!(!stored.windows(8).any(|w| w == b"Doe^Jane"));
    assert!(!stored.windows(9).any(|w| w == b"PID123456"));
}

#[test]
fn one_level_of_nested_zip_is_expanded_two_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let inner = zip_of(&[("IMG0001.dcm", dicom("1.2.3", "1.2.3.1"))]);
    let outer = zip_of(&[("series.zip", inner.clone())]);
    let p = write(&tmp, "outer.zip", &outer);
    let (_out, report) = run(&p, &config());
    assert_eq!(report.accepted.len(), 1, "{:?}", report.rejected);
    assert_eq!(report.accepted[0].file, "outer.zip/series.zip/IMG0001.dcm");

    let p2 = write(&tmp, "deep.zip", &zip_of(&[("outer.zip", outer)]));
    assert_refused(&p2, "archive inside an archive inside an archive");
}

#[test]
fn too_many_files_refuses_the_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let entries: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("{i}.dcm"), dicom("1.2.3", &format!("1.2.3.{i}"))))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    let p = write(&tmp, "many.zip", &zip_of(&refs));
    let mut cfg = config();
    cfg.limits.max_files = 3;
    let out = tempfile::tempdir().unwrap();
    assert_eq!(
        ingest(&[source(&p)], &cfg, out.path()).unwrap_err(),
        ImagingError::TooManyFiles { max: 3 }
    );
    assert!(files_in(out.path()).is_empty());
}

#[test]
fn upload_size_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(&tmp, "a.dcm", &dicom("1.2.3", "1.2.3.1"));
    let mut cfg = config();
    cfg.limits.max_upload_bytes = 100;
    let out = tempfile::tempdir().unwrap();
    assert!(matches!(
        ingest(&[source(&p)], &cfg, out.path()),
        Err(ImagingError::TooLarge { .. })
    ));
}

#[test]
fn nifti_text_fields_are_blanked_plain_and_gzipped() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tiny_nifti();
    let plain = write(&tmp, "brain.nii", &h);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&h).unwrap();
    let gzp = write(&tmp, "brain.nii.gz", &gz.finish().unwrap());

    let out = tempfile::tempdir().unwrap();
    let sources = [source(&plain), source(&gzp)];
    let report = ingest(&sources, &config(), out.path()).unwrap();
    assert_eq!(report.accepted.len(), 2, "{:?}", report.rejected);
    assert!(report
        .accepted
        .iter()
        .all(|a| a.kind == InstanceKind::Nifti));
    // Non-DICOM files of one call share one study, each NIfTI its own series.
    assert_eq!(
        report.accepted[0].info.study_uid,
        report.accepted[1].info.study_uid
    );
    assert_ne!(
        report.accepted[0].info.series_uid,
        report.accepted[1].info.series_uid
    );
    for a in &report.accepted {
        let stored = imaging::nifti::open(&a.path).unwrap();
        assert_eq!(stored.header.descrip, "");
        assert_eq!(stored.slice(0, 0).unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        assert!(a.deid.iter().any(|c| c.keyword == "descrip"));
        assert_eq!((a.info.columns, a.info.rows, a.info.frames), (2, 2, 1));
    }
    // Same files again: same synthetic UIDs.
    let out2 = tempfile::tempdir().unwrap();
    let again = ingest(&sources, &config(), out2.path()).unwrap();
    assert_eq!(
        again.accepted[0].info.sop_uid,
        report.accepted[0].info.sop_uid
    );
}

#[test]
fn garbage_is_not_recognised_and_names_its_position() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(
        &tmp,
        "notes.zip",
        &zip_of(&[
            ("a.dcm", dicom("1.2.3", "1.2.3.1")),
            ("readme.txt", b"hello".to_vec()),
        ]),
    );
    let (_out, report) = run(&p, &config());
    assert_eq!(report.accepted.len(), 1);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].file, "notes.zip/readme.txt");
    assert!(report.rejected[0]
        .reason
        .starts_with("file 2 of 2: not a recognised medical image"));
}

#[test]
fn sources_keep_their_names() {
    // Source.name, not the path on disk, is what the report shows.
    let tmp = tempfile::tempdir().unwrap();
    let p = write(
        &tmp,
        "upload-0001.tmp",
        &truncated_dicom("1.2.3", "1.2.3.1"),
    );
    let out = tempfile::tempdir().unwrap();
    let src = Source {
        name: "IMG0012.dcm".into(),
        path: p,
    };
    let report = ingest(&[src], &config(), out.path()).unwrap();
    assert_eq!(report.rejected[0].file, "IMG0012.dcm");
}

#[test]
fn four_gigabyte_length_inside_a_deflated_dataset_is_refused() {
    use std::io::Read;
    // Write the synthetic image with the Deflated Explicit VR Little Endian
    // syntax, then inflate its dataset, plant the length, and deflate again.
    let plain = dicom("1.2.3", "1.2.3.1");
    let obj = dicom_object::from_reader(&plain[128..]).unwrap();
    let deflated_obj = obj
        .into_inner()
        .with_meta(
            dicom_object::FileMetaTableBuilder::new()
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
                .media_storage_sop_instance_uid("1.2.3.1")
                .transfer_syntax("1.2.840.10008.1.2.1.99"),
        )
        .unwrap();
    let mut bytes = Vec::new();
    deflated_obj.write_all(&mut bytes).unwrap();
    let group_len = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    let start = 144 + group_len;
    let mut dataset = Vec::new();
    flate2::read::DeflateDecoder::new(&bytes[start..])
        .read_to_end(&mut dataset)
        .unwrap();
    let at = pixel_header_at(&dataset) + 8;
    dataset[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&dataset).unwrap();
    bytes.truncate(start);
    bytes.extend_from_slice(&enc.finish().unwrap());

    let tmp = tempfile::tempdir().unwrap();
    let p = write(&tmp, "deflated.dcm", &bytes);
    assert_refused(&p, "larger than any real file");
}

#[test]
fn huge_length_inside_an_implicit_vr_un_sequence_is_refused() {
    // Found by the ingest_file fuzz target (cargo fuzz, 2026-11-23): a
    // private UN sequence of undefined length whose items, read in the
    // file's explicit VR as dicom-parser reads them, declare a 3.5 GiB
    // element; the parser allocated it before reading.
    let bytes = include_bytes!("fixtures/fuzz_regressions/un_sequence_huge_length.dcm");
    let tmp = tempfile::tempdir().unwrap();
    let p = write(&tmp, "fuzz.dcm", bytes);
    let (out, report) = run(&p, &config());
    assert!(report.accepted.is_empty());
    assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
    assert!(report.rejected[0]
        .reason
        .contains("larger than any real file"));
    assert!(files_in(out.path()).is_empty());
}
