//! De-identification of real files from pydicom's test corpus (fetched by
//! scripts/fixtures.sh), checked against every row of PS3.15 Table E.1-1.

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

mod files_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_object::mem::InMemElement;
use dicom_object::{open_file, DefaultDicomObject, InMemDicomObject};
use files_common::*;
use imaging::deid::{is_repeating_group_removal, Action, BurnedInPolicy, PROFILE};
use imaging::ingest::{ingest, IngestConfig};
use imaging::{IngestReport, Source};

/// Real files covering CT, MR, RT, SR, overlays, JPEG 2000, RLE, deflate,
/// big endian; plus the DICOMDIR folder (several studies, several
/// instances per series, and the DICOMDIR files themselves).
const FILES: &[&str] = &[
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "JPEG2000.dcm",
    "ExplVR_BigEnd.dcm",
    "image_dfl.dcm",
    "examples_overlay.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "rtdose.dcm",
    "test-SR.dcm",
    "reportsi.dcm",
    "waveform_ecg.dcm",
    "dicomdirtests",
];

fn corpus_sources(dir: &Path) -> Vec<Source> {
    FILES
        .iter()
        .map(|f| Source {
            name: f.to_string(),
            path: dir.join(f),
        })
        .collect()
}

fn original_path(dir: &Path, accepted_name: &str) -> PathBuf {
    dir.join(accepted_name)
}

/// Opens a corpus original: Part 10, or a bare little-endian dataset (the
/// DICOMDIR folder's images have no file meta group).
fn open_original(path: &Path) -> InMemDicomObject {
    if let Ok(obj) = open_file(path) {
        return DefaultDicomObject::into_inner(obj);
    }
    let bytes = std::fs::read(path).unwrap();
    let ts = if bytes[4].is_ascii_uppercase() && bytes[5].is_ascii_uppercase() {
        dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased()
    } else {
        dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased()
    };
    InMemDicomObject::read_dataset_with_ts(&bytes[..], &ts).unwrap()
}

/// Every element at every nesting depth.
fn walk<'a>(obj: &'a InMemDicomObject, out: &mut Vec<&'a InMemElement>) {
    for e in obj.iter() {
        out.push(e);
        if let Value::Sequence(seq) = e.value() {
            for item in seq.items() {
                walk(item, out);
            }
        }
    }
}

fn is_empty_value(e: &InMemElement) -> bool {
    match e.value() {
        Value::Sequence(s) => s.items().is_empty(),
        Value::Primitive(PrimitiveValue::Empty) => true,
        Value::Primitive(p) => p.to_str().trim_end_matches(['\0', ' ']).is_empty(),
        Value::PixelSequence(_) => false,
    }
}

fn str_of(e: &InMemElement) -> String {
    e.to_str()
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

fn ingest_corpus(cfg: &IngestConfig) -> Option<(PathBuf, tempfile::TempDir, IngestReport)> {
    let dir = fixture(PYDICOM)?;
    let out = tempfile::tempdir().unwrap();
    let report = ingest(&corpus_sources(&dir), cfg, out.path()).unwrap();
    Some((dir, out, report))
}

#[test]
fn every_profile_attribute_is_removed_or_replaced() {
    let Some((dir, _out, report)) = ingest_corpus(&config()) else {
        return;
    };
    // Only the corpus's deliberately damaged DICOMDIR and its READMEs.
    let expected_refusal = |f: &str| f.contains("DICOMDIR-") || f.contains("README");
    assert!(
        report.rejected.iter().all(|r| expected_refusal(&r.file)),
        "{:#?}",
        report.rejected
    );
    assert!(report.accepted.len() >= 90, "{}", report.accepted.len());
    // Which table rows the originals actually exercised.
    let mut exercised: BTreeSet<Tag> = BTreeSet::new();
    for a in &report.accepted {
        let original = open_original(&original_path(&dir, &a.file));
        let mut orig_elems = Vec::new();
        walk(&original, &mut orig_elems);
        exercised.extend(
            orig_elems
                .iter()
                .map(|e| e.tag())
                .filter(|t| PROFILE.iter().any(|p| p.tag == *t)),
        );

        let stored = open_file(&a.path).unwrap();
        let mut elems = Vec::new();
        walk(&stored, &mut elems);
        for entry in PROFILE {
            for e in elems.iter().filter(|e| e.tag() == entry.tag) {
                let what = format!(
                    "{} {} in {}",
                    entry.name,
                    imaging::deid::tag_text(entry.tag),
                    a.file
                );
                match entry.basic {
                    Action::X => panic!("{what}: must be removed"),
                    Action::Z | Action::ZD | Action::XZ | Action::XZD => {
                        assert!(is_empty_value(e), "{what}: must be empty")
                    }
                    Action::D | Action::XD => {
                        let v = str_of(e);
                        let ok = is_empty_value(e)
                            || v.starts_with("2.25.")
                            || [
                                "ANONYMIZED",
                                "19000101",
                                "000000",
                                "19000101000000",
                                "000D",
                                "0",
                            ]
                            .contains(&v.as_str());
                        assert!(ok, "{what}: must be a dummy, is {v:?}");
                    }
                    Action::U => {
                        for uid in str_of(e).split('\\').filter(|u| !u.is_empty()) {
                            assert!(uid.starts_with("2.25."), "{what}: UID not remapped: {uid}");
                        }
                    }
                    // Kept sequences: their items are checked as elements.
                    Action::XZU | Action::K | Action::C => {}
                }
            }
        }
        for e in &elems {
            assert!(
                e.tag().group() % 2 == 0,
                "private tag {} left in {}",
                e.tag(),
                a.file
            );
            assert!(
                !is_repeating_group_removal(e.tag()),
                "curve/overlay data {} left in {}",
                e.tag(),
                a.file
            );
        }
        // The patient's name and ID appear nowhere in the stored bytes.
        let bytes = std::fs::read(&a.path).unwrap();
        for tag in [Tag(0x0010, 0x0010), Tag(0x0010, 0x0020)] {
            if let Some(v) = original.get(tag).map(str_of).filter(|v| v.len() >= 4) {
                assert!(
                    !bytes.windows(v.len()).any(|w| w == v.as_bytes()),
                    "{v:?} still in {}",
                    a.file
                );
            }
        }
        assert_eq!(
            stored.get(Tag(0x0012, 0x0062)).map(str_of).as_deref(),
            Some("YES")
        );
        let codes: Vec<String> = stored
            .get(Tag(0x0012, 0x0064))
            .and_then(|e| e.items())
            .unwrap()
            .iter()
            .filter_map(|i| i.get(Tag(0x0008, 0x0100)).map(str_of))
            .collect();
        assert_eq!(codes, ["113100"]);
        assert_eq!(
            stored
                .meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0'),
            a.info.sop_uid
        );
    }
    eprintln!(
        "{} of {} table rows present in the corpus originals",
        exercised.len(),
        PROFILE.len()
    );
    assert!(
        exercised.len() >= 20,
        "the corpus should exercise the table: {exercised:?}"
    );
}

#[test]
fn uids_are_consistent_within_a_study_and_stable_on_reingest() {
    let cfg = config();
    let Some((dir, _out, first)) = ingest_corpus(&cfg) else {
        return;
    };
    let mut study_map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut series_map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in &first.accepted {
        let original = open_original(&original_path(&dir, &a.file));
        let ostudy = original.get(Tag(0x0020, 0x000D)).map(str_of).unwrap();
        let oseries = original.get(Tag(0x0020, 0x000E)).map(str_of).unwrap();
        assert_ne!(ostudy, a.info.study_uid);
        study_map
            .entry(ostudy)
            .or_default()
            .insert(a.info.study_uid.clone());
        series_map
            .entry(oseries)
            .or_default()
            .insert(a.info.series_uid.clone());
        let stored = open_file(&a.path).unwrap();
        assert_eq!(
            stored.get(Tag(0x0020, 0x000D)).map(str_of).unwrap(),
            a.info.study_uid
        );
    }
    // One replacement per original, and distinct originals stay distinct.
    assert!(study_map.values().all(|s| s.len() == 1), "{study_map:?}");
    assert!(series_map.values().all(|s| s.len() == 1));
    let new_studies: BTreeSet<_> = study_map.values().flatten().collect();
    assert_eq!(new_studies.len(), study_map.len());
    assert!(
        study_map.len() >= 5,
        "the DICOMDIR folder holds several studies"
    );
    // Some study has several instances: consistency is really tested.
    let mut per_study: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &first.accepted {
        *per_study.entry(a.info.study_uid.as_str()).or_default() += 1;
    }
    assert!(per_study.values().any(|&n| n >= 10));

    let out2 = tempfile::tempdir().unwrap();
    let second = ingest(&corpus_sources(&dir), &cfg, out2.path()).unwrap();
    let ids = |r: &IngestReport| -> BTreeSet<(String, String, String)> {
        r.accepted
            .iter()
            .map(|a| (a.file.clone(), a.info.sop_uid.clone(), a.sha256.clone()))
            .collect()
    };
    assert_eq!(ids(&first), ids(&second));

    // Another organisation's key maps the same files elsewhere.
    let mut other = config();
    other.deid.key = [8u8; 32];
    let out3 = tempfile::tempdir().unwrap();
    let third = ingest(&corpus_sources(&dir), &other, out3.path()).unwrap();
    let sops = |r: &IngestReport| {
        r.accepted
            .iter()
            .map(|a| a.info.sop_uid.clone())
            .collect::<BTreeSet<_>>()
    };
    assert!(sops(&first).is_disjoint(&sops(&third)));
}

#[test]
fn pixel_data_is_untouched_and_dicomdir_skipped() {
    let Some((dir, out, report)) = ingest_corpus(&config()) else {
        return;
    };
    let is_dicomdir = |f: &str| f.ends_with("/DICOMDIR");
    assert!(report.accepted.iter().all(|a| !is_dicomdir(&a.file)));
    assert!(report.rejected.iter().all(|r| !is_dicomdir(&r.file)));
    let mut compared = 0;
    for a in &report.accepted {
        let original = open_original(&original_path(&dir, &a.file));
        let stored = open_file(&a.path).unwrap();
        let (Some(o), Some(s)) = (
            original.get(Tag(0x7FE0, 0x0010)),
            stored.get(Tag(0x7FE0, 0x0010)),
        ) else {
            assert!(
                original.get(Tag(0x7FE0, 0x0010)).is_none(),
                "pixel data lost in {}",
                a.file
            );
            continue;
        };
        match (o.value(), s.value()) {
            (Value::Primitive(po), Value::Primitive(ps)) => {
                assert!(po.to_bytes() == ps.to_bytes(), "{}", a.file)
            }
            (Value::PixelSequence(po), Value::PixelSequence(ps)) => {
                assert_eq!(po.fragments(), ps.fragments(), "{}", a.file)
            }
            _ => panic!("pixel data changed form in {}", a.file),
        }
        compared += 1;
        assert_eq!(a.path.parent(), Some(out.path()));
        assert_eq!(a.path.file_name().unwrap().to_string_lossy(), a.sha256);
        // The metadata JSON is of the de-identified header, without pixels.
        assert!(a.dicom_json.get("7FE00010").is_none());
        assert_eq!(a.dicom_json["00120062"]["Value"][0], "YES");
    }
    assert!(compared >= 30, "{compared}");
}

#[test]
fn options_shift_dates_and_record_their_codes() {
    let Some(ct) = fixture(&format!("{PYDICOM}/CT_small.dcm")) else {
        return;
    };
    let mut cfg = config();
    cfg.deid.retain_longitudinal_modified_dates = true;
    cfg.deid.clean_descriptors = true;
    let out = tempfile::tempdir().unwrap();
    let report = ingest(&[source(&ct)], &cfg, out.path()).unwrap();
    assert_eq!(report.accepted.len(), 1, "{:?}", report.rejected);
    let stored = open_file(&report.accepted[0].path).unwrap();
    let original = open_file(&ct).unwrap();
    let date = |o: &InMemDicomObject| o.get(Tag(0x0008, 0x0020)).map(str_of).unwrap();
    let days = |d: &str| {
        let (y, m, dd): (i64, i64, i64) = (
            d[0..4].parse().unwrap(),
            d[4..6].parse().unwrap(),
            d[6..8].parse().unwrap(),
        );
        y * 372 + m * 31 + dd
    };
    let (o, s) = (date(&original), date(&stored));
    assert_ne!(o, s);
    // Roughly 1 to 10 years back (372-day "years" of this estimate).
    let back = days(&o) - days(&s);
    assert!((300..=4000).contains(&back), "{o} -> {s}");
    let codes: Vec<String> = stored
        .get(Tag(0x0012, 0x0064))
        .and_then(|e| e.items())
        .unwrap()
        .iter()
        .filter_map(|i| i.get(Tag(0x0008, 0x0100)).map(str_of))
        .collect();
    assert_eq!(codes, ["113100", "113107", "113105"]);
    assert_eq!(
        stored.get(Tag(0x0028, 0x0303)).map(str_of).as_deref(),
        Some("MODIFIED")
    );
    assert!(report.accepted[0]
        .deid
        .iter()
        .any(|c| c.action == "date_shifted" && c.keyword == "StudyDate"));
}

#[test]
fn burned_in_annotation_is_refused_or_flagged() {
    let Some(ct) = fixture(&format!("{PYDICOM}/CT_small.dcm")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let marked = tmp.path().join("burned.dcm");
    let mut obj = open_file(&ct).unwrap();
    obj.put(DataElement::new(
        Tag(0x0028, 0x0301),
        VR::CS,
        PrimitiveValue::from("YES"),
    ));
    obj.write_to_file(&marked).unwrap();

    let out = tempfile::tempdir().unwrap();
    let refused = ingest(&[source(&marked)], &config(), out.path()).unwrap();
    assert!(refused.accepted.is_empty());
    assert!(
        refused.rejected[0].reason.contains("burned-in"),
        "{:?}",
        refused.rejected
    );
    assert!(files_in(out.path()).iter().all(|p| p.is_dir()
        || p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".ingest")));

    let mut cfg = config();
    cfg.deid.burned_in = BurnedInPolicy::Flag;
    let flagged = ingest(&[source(&marked)], &cfg, out.path()).unwrap();
    assert_eq!(flagged.accepted.len(), 1);
    assert!(flagged.accepted[0].info.burned_in_annotation);
}

#[test]
fn identity_map_only_when_asked() {
    let Some(ct) = fixture(&format!("{PYDICOM}/CT_small.dcm")) else {
        return;
    };
    let original_study = open_file(&ct)
        .unwrap()
        .get(Tag(0x0020, 0x000D))
        .map(str_of)
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let plain = ingest(&[source(&ct)], &config(), out.path()).unwrap();
    assert!(plain.identity_map.is_empty());
    let mut cfg = config();
    cfg.deid.keep_identity_map = true;
    let mapped = ingest(&[source(&ct)], &cfg, out.path()).unwrap();
    let study = mapped
        .identity_map
        .iter()
        .find(|m| m.tag == "(0020,000D)")
        .unwrap();
    assert_eq!(study.original, original_study);
    assert_eq!(study.replacement, mapped.accepted[0].info.study_uid);
}
