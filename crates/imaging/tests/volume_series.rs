//! Series → volume: sorting along the normal, spacing, affine.

mod dicom_synth;

use std::path::PathBuf;

use dicom_synth::{ct_slice, to_bytes, CtSlice};
use imaging::volume::{build_volume, build_volumes, slice_normal};

/// An oblique plane: rotated 30° about z, then tilted 20° about the new x.
fn oblique() -> [f64; 6] {
    let (a, b) = (30f64.to_radians(), 20f64.to_radians());
    let row = [a.cos(), a.sin(), 0.0];
    let col = [-a.sin() * b.cos(), a.cos() * b.cos(), b.sin()];
    [row[0], row[1], row[2], col[0], col[1], col[2]]
}

/// Writes `positions.len()` slices into a temp dir in the order given; the
/// stored value of every pixel of slice `n` (in geometric order) is `n`.
fn write_series(
    dir: &std::path::Path,
    series: &str,
    offsets_mm: &[f64],
    write_order: &[usize],
) -> Vec<PathBuf> {
    let orientation = oblique();
    let normal = slice_normal(orientation);
    let origin = [-100.0, 50.0, 20.0];
    write_order
        .iter()
        .map(|&n| {
            let position = [0, 1, 2].map(|a| origin[a] + normal[a] * offsets_mm[n]);
            let sop = format!("{series}.{n}");
            let obj = ct_slice(&CtSlice {
                series_uid: series,
                sop_uid: &sop,
                position,
                orientation,
                rows: 3,
                columns: 5,
                pixel_spacing: [0.7, 0.8],
                stored: vec![n as i16 + 1024; 15],
                ..CtSlice::default()
            });
            let path = dir.join(format!("{series}-{n}.dcm"));
            std::fs::write(&path, to_bytes(&obj)).expect("temp dir is writable");
            path
        })
        .collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imaging-volume-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

#[test]
fn shuffled_oblique_series_is_sorted_along_the_normal_with_its_spacing() {
    let dir = temp_dir("sorted");
    let offsets: Vec<f64> = (0..6).map(|n| n as f64 * 2.5).collect();
    let paths = write_series(&dir, "1.2.3.1", &offsets, &[3, 0, 5, 1, 4, 2]);
    let v = build_volume(&paths).unwrap();

    assert_eq!(v.dims, [5, 3, 6]);
    // Slice k holds value k − 1024 + 1024 = k in HU (intercept −1024).
    for k in 0..6 {
        assert_eq!(v.get(0, 0, k), Some(k as f32), "slice {k} out of order");
    }
    assert!((v.spacing[2] - 2.5).abs() < 1e-6, "spacing {:?}", v.spacing);
    assert_eq!(v.spacing[..2], [0.8, 0.7]);
    assert!(v.slice_spacing.uniform);

    // The affine puts voxel (0,0,k) at slice k's Image Position, and one
    // column step 0.8 mm along the row cosines.
    let normal = slice_normal(oblique());
    for k in 0..6 {
        let p = v.voxel_to_patient([0.0, 0.0, k as f64]);
        let want = [0, 1, 2].map(|a| [-100.0, 50.0, 20.0][a] + normal[a] * 2.5 * k as f64);
        for a in 0..3 {
            assert!((p[a] - want[a]).abs() < 1e-4, "k={k}: {p:?} vs {want:?}");
        }
    }
    let step = v.voxel_to_patient([1.0, 0.0, 0.0]);
    let origin = v.voxel_to_patient([0.0, 0.0, 0.0]);
    let moved: f64 = (0..3)
        .map(|a| (step[a] - origin[a]).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((moved - 0.8).abs() < 1e-9);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn non_uniform_spacing_is_reported_not_hidden() {
    let dir = temp_dir("gap");
    // A missing slice: gaps 2, 2, 4, 2.
    let offsets = [0.0, 2.0, 4.0, 8.0, 10.0];
    let paths = write_series(&dir, "1.2.3.2", &offsets, &[4, 2, 0, 3, 1]);
    let v = build_volume(&paths).unwrap();
    assert!(!v.slice_spacing.uniform);
    assert_eq!(v.slice_spacing.gaps.len(), 4);
    assert!((v.slice_spacing.max - 4.0).abs() < 1e-6);
    assert!((v.slice_spacing.min - 2.0).abs() < 1e-6);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn files_are_grouped_by_series_uid() {
    let dir = temp_dir("groups");
    let mut paths = write_series(&dir, "1.2.3.3", &[0.0, 1.0, 2.0], &[2, 1, 0]);
    paths.extend(write_series(&dir, "1.2.3.4", &[0.0, 3.0], &[1, 0]));
    let volumes = build_volumes(&paths).unwrap();
    let summary: Vec<(String, usize)> = volumes
        .iter()
        .map(|v| (v.series_uid.clone(), v.dims[2]))
        .collect();
    assert_eq!(summary, vec![("1.2.3.3".into(), 3), ("1.2.3.4".into(), 2)]);
    assert!(
        build_volume(&paths).is_err(),
        "two series are not one volume"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn duplicate_positions_are_refused() {
    let dir = temp_dir("dup");
    let paths = write_series(&dir, "1.2.3.5", &[0.0, 0.0, 1.0], &[0, 1, 2]);
    let err = build_volume(&paths).unwrap_err();
    assert!(err.to_string().contains("share a position"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// Real series from pydicom's corpus (dicomdirtests) against the order,
/// gaps and values pydicom gives (tests/fixtures/gen_pydicom_expected.py).
#[test]
fn corpus_series_match_pydicom() {
    use sha2::{Digest, Sha256};
    let root = std::env::var_os("MEDVISION_FIXTURES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/medvision/fixtures"))
        })
        .map(|r| r.join("pydicom-3.0.2/pydicom/data/test_files"));
    let Some(root) = root.filter(|r| r.is_dir()) else {
        eprintln!("SKIPPED: pydicom test corpus not found; run scripts/fixtures.sh");
        return;
    };
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/pydicom_expected.json")).unwrap();
    let volumes = expected["volumes"].as_object().unwrap();
    assert!(volumes.len() >= 3);
    for (folder, want) in volumes {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        let built = build_volume(&paths);
        if want["status"] == "refused" {
            let err = built.expect_err(folder);
            assert!(err.to_string().contains("orientation"), "{folder}: {err}");
            continue;
        }
        let v = built.unwrap();
        let order: Vec<String> = v
            .slice_paths
            .iter()
            .map(|p| {
                p.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let want_order: Vec<String> = serde_json::from_value(want["order"].clone()).unwrap();
        assert_eq!(order, want_order, "{folder}");
        let dims: Vec<usize> = serde_json::from_value(want["dims"].clone()).unwrap();
        assert_eq!(v.dims.to_vec(), dims, "{folder}");
        let gaps: Vec<f64> = serde_json::from_value(want["gaps"].clone()).unwrap();
        assert_eq!(v.slice_spacing.gaps.len(), gaps.len());
        for (a, b) in v.slice_spacing.gaps.iter().zip(&gaps) {
            assert!(
                (a - b).abs() < 1e-4,
                "{folder}: gaps {:?} vs {gaps:?}",
                v.slice_spacing.gaps
            );
        }
        let uniform = gaps
            .iter()
            .all(|g| (g - gaps[0]).abs() < 0.01 * gaps[0].abs().max(1.0));
        assert_eq!(v.slice_spacing.uniform, uniform, "{folder}");
        let first: Vec<f64> = serde_json::from_value(want["first_position"].clone()).unwrap();
        let origin = v.voxel_to_patient([0.0, 0.0, 0.0]);
        for a in 0..3 {
            assert!(
                (origin[a] - first[a]).abs() < 1e-4,
                "{folder}: origin {origin:?}"
            );
        }
        let bytes: Vec<u8> = v.data.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            want["sha256"].as_str().unwrap(),
            "{folder}"
        );
    }
}
