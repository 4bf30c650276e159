//! Files from `imaging::write` read back through imaging's own readers (and
//! pydicom / nibabel when their venv is there) with the values, tags and
//! geometry that went in, and pass ingest.

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

mod files_common;

use std::path::Path;
use std::process::Command;

use dicom_dictionary_std::tags;
use imaging::dicom::{self, FrameData};
use imaging::ingest::ingest;
use imaging::write::{
    uuid_uid, write_ct_dicom, write_dx_dicom, write_nifti, write_nifti_labels, SynthMeta,
    SYNTHETIC_COMMENT,
};
use imaging::{nifti, ImagingError};

const PYTHON: &str = "/root/.cache/mv/venv-pydicom/bin/python";

/// A head-CT-like test pattern: air, bone, brain and blood values with
/// fractional parts, rows * cols.
fn ct_pattern(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| {
            let (x, y) = ((i % cols) as f32, (i / cols) as f32);
            match (i * 7) % 5 {
                0 => -1000.0 + x * 0.37,
                1 => 1450.25 - y,
                2 => 31.6 + x * 0.1,
                3 => 72.49,
                _ => -5.5 + y * 0.01,
            }
        })
        .collect()
}

fn ct_meta() -> SynthMeta {
    let mut meta = SynthMeta::phantom("HEAD", 42, 1);
    meta.pixel_spacing_mm = [0.9, 0.8];
    meta.slice_thickness_mm = 5.0;
    meta.centre(48, 40, 12.5);
    meta
}

fn python_with(module: &str) -> Option<&'static str> {
    if !Path::new(PYTHON).exists() {
        eprintln!("SKIPPED: {PYTHON} not found; the {module} cross-check did not run");
        return None;
    }
    let ok = Command::new(PYTHON)
        .args(["-c", &format!("import {module}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED: {PYTHON} cannot import {module}; the cross-check did not run");
        return None;
    }
    Some(PYTHON)
}

#[test]
fn ct_reads_back_in_hounsfield_units() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ct.dcm");
    let (rows, cols) = (48, 40);
    let hu = ct_pattern(rows, cols);
    let meta = ct_meta();
    write_ct_dicom(&path, &hu, rows, cols, &meta).unwrap();

    let file = dicom::open(&path).unwrap();
    assert!(file.has_file_meta());
    assert_eq!(file.transfer_syntax(), "1.2.840.10008.1.2.1");
    assert_eq!(file.sop_class_uid().unwrap(), "1.2.840.10008.5.1.4.1.1.2");
    assert_eq!(
        file.object().meta().media_storage_sop_class_uid(),
        "1.2.840.10008.5.1.4.1.1.2"
    );
    assert_eq!(
        file.object().meta().media_storage_sop_instance_uid(),
        meta.sop_uid
    );
    assert_eq!(file.modality().unwrap(), "CT");
    assert_eq!(file.string(tags::BODY_PART_EXAMINED).unwrap(), "HEAD");
    assert_eq!(
        file.string(tags::PATIENT_NAME).unwrap(),
        "PHANTOM^HEAD^0001"
    );
    assert_eq!(
        file.string(tags::IMAGE_COMMENTS).unwrap(),
        SYNTHETIC_COMMENT
    );
    assert_eq!(
        file.string(tags::STUDY_DESCRIPTION).unwrap(),
        meta.study_description
    );
    assert_eq!(
        file.string(tags::SERIES_DESCRIPTION).unwrap(),
        meta.series_description
    );
    assert_eq!(file.string(tags::RESCALE_TYPE).unwrap(), "HU");
    for uid in [
        file.study_instance_uid().unwrap(),
        file.series_instance_uid().unwrap(),
        file.sop_instance_uid().unwrap(),
        file.string(tags::FRAME_OF_REFERENCE_UID).unwrap(),
    ] {
        assert!(uid.starts_with("2.25.") && uid.len() <= 64, "{uid}");
    }
    assert_eq!(file.study_instance_uid().unwrap(), meta.study_uid);
    assert_eq!(file.series_instance_uid().unwrap(), meta.series_uid);
    assert_eq!(file.sop_instance_uid().unwrap(), meta.sop_uid);
    assert_eq!(file.instance_number(), Some(1));
    assert_eq!(file.rows(), Some(rows as u32));
    assert_eq!(file.columns(), Some(cols as u32));
    assert_eq!(file.pixel_spacing(), Some([0.9, 0.8]));
    assert_eq!(file.slice_thickness(), Some(5.0));
    assert_eq!(
        file.image_orientation(),
        Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    );
    let [x, y, z] = file.image_position().unwrap();
    assert!((x + 15.6).abs() < 1e-9 && (y + 21.15).abs() < 1e-9 && (z - 12.5).abs() < 1e-9);

    let frame = file.decode_frame(0).unwrap();
    assert_eq!(frame.bits_stored, 16);
    assert_eq!(frame.rescale_slope, 1.0);
    assert_eq!(frame.rescale_intercept, -1024.0);
    assert_eq!(frame.windows.len(), 1);
    assert_eq!(
        (frame.windows[0].center, frame.windows[0].width),
        (40.0, 80.0)
    );
    let FrameData::I16(stored) = &frame.data else {
        panic!("CT pixels are signed 16-bit, got {}", frame.data.dtype());
    };
    assert_eq!(stored.len(), rows * cols);
    for (i, (&s, &want)) in stored.iter().zip(&hu).enumerate() {
        let got = s as f64 * frame.rescale_slope + frame.rescale_intercept;
        assert!(
            (got - want as f64).abs() <= 0.5,
            "pixel {i}: {got} HU, wrote {want}"
        );
    }
}

#[test]
fn ct_outside_the_usual_range_moves_the_intercept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.dcm");
    // 32000 HU does not fit with intercept -1024; the range still fits 16 bits.
    let hu = vec![-3000.0, 0.0, 32000.0, 12.4];
    write_ct_dicom(&path, &hu, 2, 2, &ct_meta()).unwrap();
    let frame = dicom::open(&path).unwrap().decode_frame(0).unwrap();
    assert_ne!(frame.rescale_intercept, -1024.0);
    let values: Vec<f64> = (0..4)
        .map(|i| frame.data.get_f64(i).unwrap() + frame.rescale_intercept)
        .collect();
    for (got, want) in values.iter().zip(&hu) {
        assert!((got - *want as f64).abs() <= 0.5, "{got} vs {want}");
    }

    let too_wide = vec![-40000.0, 40000.0];
    assert!(matches!(
        write_ct_dicom(dir.path().join("x.dcm"), &too_wide, 1, 2, &ct_meta()),
        Err(ImagingError::Write { .. })
    ));
    assert!(matches!(
        write_ct_dicom(dir.path().join("x.dcm"), &[0.0; 5], 2, 2, &ct_meta()),
        Err(ImagingError::Write { .. })
    ));
    assert!(matches!(
        write_ct_dicom(dir.path().join("x.dcm"), &[f32::NAN; 4], 2, 2, &ct_meta()),
        Err(ImagingError::Write { .. })
    ));
}

#[test]
fn ct_matches_pydicom() {
    let Some(python) = python_with("pydicom") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ct.dcm");
    let (rows, cols) = (48, 40);
    let hu = ct_pattern(rows, cols);
    write_ct_dicom(&path, &hu, rows, cols, &ct_meta()).unwrap();
    let script = r#"
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
px = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
print(json.dumps({
    "hu": px.ravel().tolist(),
    "shape": list(px.shape),
    "intercept": float(ds.RescaleIntercept),
    "dtype": str(ds.pixel_array.dtype),
    "sop_class": str(ds.SOPClassUID),
    "ts": str(ds.file_meta.TransferSyntaxUID),
    "comments": str(ds.ImageComments),
    "window": [float(ds.WindowCenter), float(ds.WindowWidth)],
    "modality": ds.Modality,
    "body_part": ds.BodyPartExamined,
}))
"#;
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pydicom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["shape"], serde_json::json!([rows, cols]));
    assert_eq!(v["intercept"], -1024.0);
    assert_eq!(v["dtype"], "int16");
    assert_eq!(v["sop_class"], "1.2.840.10008.5.1.4.1.1.2");
    assert_eq!(v["ts"], "1.2.840.10008.1.2.1");
    assert_eq!(v["comments"], SYNTHETIC_COMMENT);
    assert_eq!(v["window"], serde_json::json!([40.0, 80.0]));
    assert_eq!(v["modality"], "CT");
    assert_eq!(v["body_part"], "HEAD");
    let got = v["hu"].as_array().unwrap();
    assert_eq!(got.len(), hu.len());
    for (i, (g, &want)) in got.iter().zip(&hu).enumerate() {
        let g = g.as_f64().unwrap();
        assert!(
            (g - want as f64).abs() <= 0.5,
            "pixel {i}: pydicom {g}, wrote {want}"
        );
    }
}

#[test]
fn dx_reads_back_as_twelve_bit_chest_pa() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cxr.dcm");
    let (rows, cols) = (30, 20);
    let px: Vec<f32> = (0..rows * cols)
        .map(|i| (i as f32 / (rows * cols - 1) as f32) * 1.2 - 0.1)
        .collect();
    let mut meta = SynthMeta::phantom("CHEST", 9, 12);
    meta.pixel_spacing_mm = [0.7, 0.7];
    write_dx_dicom(&path, &px, rows, cols, &meta).unwrap();

    let file = dicom::open(&path).unwrap();
    assert_eq!(file.sop_class_uid().unwrap(), "1.2.840.10008.5.1.4.1.1.1.1");
    assert_eq!(file.modality().unwrap(), "DX");
    assert_eq!(file.string(tags::BODY_PART_EXAMINED).unwrap(), "CHEST");
    assert_eq!(file.string(tags::VIEW_POSITION).unwrap(), "PA");
    assert_eq!(
        file.string(tags::PRESENTATION_INTENT_TYPE).unwrap(),
        "FOR PRESENTATION"
    );
    assert_eq!(
        file.string(tags::PATIENT_NAME).unwrap(),
        "PHANTOM^CHEST^0012"
    );
    assert_eq!(
        file.string(tags::IMAGE_COMMENTS).unwrap(),
        SYNTHETIC_COMMENT
    );
    assert_eq!(file.photometric().unwrap(), "MONOCHROME2");
    assert_eq!(file.pixel_spacing(), Some([0.7, 0.7]));
    let frame = file.decode_frame(0).unwrap();
    assert_eq!(frame.bits_stored, 12);
    let FrameData::U16(stored) = &frame.data else {
        panic!("DX pixels are unsigned 16-bit, got {}", frame.data.dtype());
    };
    for (&s, &v) in stored.iter().zip(&px) {
        let want = (v.clamp(0.0, 1.0) * 4095.0).round() as u16;
        assert_eq!(s, want);
        assert!(s <= 4095);
    }
    assert_eq!(stored.iter().copied().max(), Some(4095));
    assert_eq!(stored.iter().copied().min(), Some(0));
}

/// Files the writers make pass the real ingest (parse, de-identification,
/// the burned-in annotation check) and keep their geometry.
#[test]
fn written_files_pass_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let ct = dir.path().join("ct.dcm");
    let cxr = dir.path().join("cxr.dcm");
    write_ct_dicom(&ct, &ct_pattern(48, 40), 48, 40, &ct_meta()).unwrap();
    write_dx_dicom(&cxr, &[0.5; 64], 8, 8, &SynthMeta::phantom("CHEST", 1, 1)).unwrap();
    let out = dir.path().join("out");
    let sources = [files_common::source(&ct), files_common::source(&cxr)];
    let report = ingest(&sources, &files_common::config(), &out).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.accepted.len(), 2);
    let ct_info = &report
        .accepted
        .iter()
        .find(|a| a.info.modality == "CT")
        .unwrap()
        .info;
    assert_eq!(ct_info.rows, 48);
    assert_eq!(ct_info.pixel_spacing, Some([0.9, 0.8]));
    assert_eq!(ct_info.body_part.as_deref(), Some("HEAD"));
    assert!(report.accepted.iter().any(|a| a.info.modality == "DX"));
}

fn expected_affine(shape: [usize; 3], spacing: [f64; 3]) -> [[f64; 4]; 4] {
    let c = shape.map(|d| (d as f64 - 1.0) / 2.0);
    [
        [-spacing[0], 0.0, 0.0, c[0] * spacing[0]],
        [0.0, -spacing[1], 0.0, c[1] * spacing[1]],
        [0.0, 0.0, spacing[2], -c[2] * spacing[2]],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

fn assert_affine(got: [[f64; 4]; 4], want: [[f64; 4]; 4], what: &str) {
    for i in 0..4 {
        for j in 0..4 {
            assert!(
                (got[i][j] - want[i][j]).abs() < 1e-5,
                "{what} affine[{i}][{j}] {} != {}",
                got[i][j],
                want[i][j]
            );
        }
    }
}

#[test]
fn nifti_reads_back_with_shape_values_and_affine() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [5, 4, 3];
    let spacing = [1.5, 0.75, 2.0];
    let data: Vec<f32> = (0..60).map(|i| i as f32 * 0.25 - 3.0).collect();
    for name in ["vol.nii", "vol.nii.gz", "VOL.NII.GZ"] {
        let path = dir.path().join(name);
        write_nifti(&path, &data, shape, spacing).unwrap();
        let gz = std::fs::read(&path).unwrap()[..2] == [0x1f, 0x8b];
        assert_eq!(gz, name.to_ascii_lowercase().ends_with(".gz"), "{name}");

        let vol = nifti::open(&path).unwrap();
        assert_eq!(vol.header.version, 1);
        assert_eq!(vol.header.datatype, 16);
        assert_eq!(vol.header.dims, vec![5, 4, 3]);
        assert_eq!(vol.shape(), [5, 4, 3, 1]);
        assert_eq!(vol.header.sform_code, 1);
        assert_eq!(vol.header.qform_code, 1);
        assert_eq!(vol.header.xyzt_units & 7, 2, "mm");
        let want = expected_affine(shape, spacing);
        assert_affine(vol.affine_ras(), want, name);
        // The qform alone gives the same affine.
        let mut q = vol.clone();
        q.header.sform_code = 0;
        assert_affine(q.affine_ras(), want, "qform");
        // In DICOM terms: i runs to the patient's left (+x in LPS), j to
        // the back (+y), k up, as an axial series with IOP 1\0\0\0\1\0.
        let lps = vol.affine_lps();
        assert!(lps[0][0] > 0.0 && lps[1][1] > 0.0 && lps[2][2] > 0.0);

        let mut all = Vec::new();
        vol.for_each_slice(|z, _, s| {
            assert_eq!(s.len(), 20);
            assert_eq!(s, &data[z * 20..(z + 1) * 20]);
            all.extend_from_slice(s);
            Ok(())
        })
        .unwrap();
        assert_eq!(all, data);
        assert_eq!(vol.slice(1, 0).unwrap(), &data[20..40]);
    }
}

#[test]
fn nifti_labels_are_uint8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg.nii.gz");
    let seg: Vec<u8> = (0..27).map(|i| [0, 1, 2, 4][i % 4]).collect();
    write_nifti_labels(&path, &seg, [3, 3, 3], [1.0; 3]).unwrap();
    let vol = nifti::open(&path).unwrap();
    assert_eq!(vol.header.datatype, 2);
    let mut all = Vec::new();
    vol.for_each_slice(|_, _, s| {
        all.extend(s.iter().map(|&v| v as u8));
        Ok(())
    })
    .unwrap();
    assert_eq!(all, seg);
}

#[test]
fn nifti_refuses_what_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let ok = [0.0f32; 8];
    let bad = |r: imaging::Result<()>| matches!(r, Err(ImagingError::Write { .. }));
    assert!(bad(write_nifti(
        dir.path().join("v.img"),
        &ok,
        [2, 2, 2],
        [1.0; 3]
    )));
    assert!(bad(write_nifti(
        dir.path().join("v.nii"),
        &ok,
        [2, 2, 3],
        [1.0; 3]
    )));
    assert!(bad(write_nifti(
        dir.path().join("v.nii"),
        &ok,
        [2, 2, 2],
        [0.0, 1.0, 1.0]
    )));
    assert!(bad(write_nifti(
        dir.path().join("v.nii"),
        &[f32::INFINITY; 8],
        [2, 2, 2],
        [1.0; 3]
    )));
}

#[test]
fn nifti_matches_nibabel() {
    let Some(python) = python_with("nibabel") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vol.nii.gz");
    let shape = [5, 4, 3];
    let spacing = [1.5, 0.75, 2.0];
    let data: Vec<f32> = (0..60).map(|i| (i as f32).sin() * 100.0).collect();
    write_nifti(&path, &data, shape, spacing).unwrap();
    let script = r#"
import json, sys, nibabel as nib
img = nib.load(sys.argv[1])
a = img.get_fdata()
print(json.dumps({
    "shape": list(a.shape),
    "values": a.ravel(order="F").tolist(),
    "affine": img.affine.tolist(),
    "qform": img.get_qform().tolist(),
    "codes": [int(img.header["sform_code"]), int(img.header["qform_code"])],
    "axcodes": list(nib.aff2axcodes(img.affine)),
}))
"#;
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nibabel failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["shape"], serde_json::json!(shape));
    assert_eq!(v["codes"], serde_json::json!([1, 1]));
    assert_eq!(v["axcodes"], serde_json::json!(["L", "P", "S"]));
    let want = expected_affine(shape, spacing);
    for key in ["affine", "qform"] {
        let rows = v[key].as_array().unwrap();
        let got: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect();
        let got: [[f64; 4]; 4] = std::array::from_fn(|i| std::array::from_fn(|j| got[i][j]));
        assert_affine(got, want, key);
    }
    let values = v["values"].as_array().unwrap();
    for (g, &want) in values.iter().zip(&data) {
        assert_eq!(g.as_f64().unwrap() as f32, want);
    }
}

#[test]
fn phantom_meta_is_deterministic_and_distinct() {
    let a = SynthMeta::phantom("head", 7, 1);
    assert_eq!(a, SynthMeta::phantom("HEAD", 7, 1));
    assert_eq!(a.patient_name, "PHANTOM^HEAD^0001");
    let b = SynthMeta::phantom("HEAD", 8, 1);
    let c = SynthMeta::phantom("HEAD", 7, 2);
    for other in [&b, &c] {
        assert_ne!(a.study_uid, other.study_uid);
        assert_ne!(a.sop_uid, other.sop_uid);
    }
    let s2 = a.slice(2, 5.0);
    assert_eq!(s2.series_uid, a.series_uid);
    assert_ne!(s2.sop_uid, a.sop_uid);
    assert_eq!(s2.instance_number, 2);
    assert_eq!(s2.image_position_mm[2], 5.0);
    assert!(uuid_uid("x").starts_with("2.25."));
}
