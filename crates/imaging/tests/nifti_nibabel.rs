//! NIfTI volumes from nibabel's test data and nilearn's MNI152 templates
//! (fetched by scripts/fixtures.sh) read exactly as nibabel reads them.
//! Expected values: fixtures/nibabel_expected.json, written by
//! fixtures/gen_nibabel_expected.py with nibabel 5.4.2.

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

mod files_common;

use files_common::fixture;
use imaging::nifti;
use serde_json::Value;

fn expected() -> Value {
    serde_json::from_str(include_str!("fixtures/nibabel_expected.json")).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn volumes_match_nibabel() {
    let exp = expected();
    let mut checked = 0;
    for f in exp["files"].as_array().unwrap() {
        let rel = f["file"].as_str().unwrap();
        let Some(path) = fixture(rel) else { continue };
        let vol = nifti::open(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(
            vol.header.version as u64,
            f["version"].as_u64().unwrap(),
            "{rel}"
        );
        assert_eq!(
            vol.header.datatype as i64,
            f["datatype"].as_i64().unwrap(),
            "{rel}"
        );
        let shape: Vec<u64> = f["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(vol.header.dims, shape, "{rel}");

        let affine = vol.affine_ras();
        let lps = vol.affine_lps();
        for (i, row) in f["affine"].as_array().unwrap().iter().enumerate() {
            for (j, v) in row.as_array().unwrap().iter().enumerate() {
                let e = v.as_f64().unwrap();
                assert!(
                    close(affine[i][j], e, 1e-5),
                    "{rel} affine[{i}][{j}] {} != {e}",
                    affine[i][j]
                );
                let sign = if i < 2 { -1.0 } else { 1.0 };
                assert!(
                    close(lps[i][j], sign * e, 1e-5),
                    "{rel} LPS affine[{i}][{j}]"
                );
            }
        }

        // Whole-volume statistics, streamed one slice at a time.
        let [nx, ny, nz, _] = vol.shape();
        let (mut n, mut nan, mut sum, mut sum2) = (0u64, 0u64, 0f64, 0f64);
        vol.for_each_slice(|_, _, s| {
            assert_eq!(s.len(), nx * ny);
            for &v in s {
                if v.is_nan() {
                    nan += 1;
                } else {
                    n += 1;
                    sum += v as f64;
                    sum2 += (v as f64) * (v as f64);
                }
            }
            Ok(())
        })
        .unwrap();
        let mean = sum / n as f64;
        let std = (sum2 / n as f64 - mean * mean).max(0.0).sqrt();
        assert_eq!(nan, f["nan_count"].as_u64().unwrap(), "{rel}");
        assert!(
            close(sum, f["sum"].as_f64().unwrap(), 1e-6),
            "{rel} sum {sum}"
        );
        assert!(
            close(mean, f["mean"].as_f64().unwrap(), 1e-6),
            "{rel} mean {mean}"
        );
        assert!(
            close(std, f["std"].as_f64().unwrap(), 1e-4),
            "{rel} std {std}"
        );

        // Sampled voxels through the random-access path.
        for s in f["samples"].as_array().unwrap() {
            let idx = s[0].as_u64().unwrap() as usize;
            let (x, y, z, t) = (
                idx % nx,
                (idx / nx) % ny,
                (idx / (nx * ny)) % nz,
                idx / (nx * ny * nz),
            );
            let got = vol.slice(z, t).unwrap()[y * nx + x];
            match s[1].as_f64() {
                Some(e) => assert!(
                    close(got as f64, e, 1e-6),
                    "{rel} voxel {idx}: {got} != {e}"
                ),
                None => assert!(got.is_nan(), "{rel} voxel {idx} should be NaN"),
            }
        }
        checked += 1;
    }
    if checked > 0 {
        assert_eq!(checked, exp["files"].as_array().unwrap().len());
    }
}

/// Writes a 3×2×2 int16 NIfTI-1 volume in the given byte order, with an
/// sform, scaling and a descrip holding a name.
fn tiny_nifti(big_endian: bool) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    let put16 = |h: &mut Vec<u8>, at: usize, v: i16| {
        let b = if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        h[at..at + 2].copy_from_slice(&b);
    };
    let put32 = |h: &mut Vec<u8>, at: usize, v: [u8; 4]| h[at..at + 4].copy_from_slice(&v);
    let f = |v: f32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    put32(
        &mut h,
        0,
        if big_endian {
            348i32.to_be_bytes()
        } else {
            348i32.to_le_bytes()
        },
    );
    for (i, d) in [3i16, 3, 2, 2, 1, 1, 1, 1].iter().enumerate() {
        put16(&mut h, 40 + 2 * i, *d);
    }
    put16(&mut h, 70, 4);
    put16(&mut h, 72, 16);
    for (i, p) in [1.0f32, 2.0, 3.0, 4.0].iter().enumerate() {
        put32(&mut h, 76 + 4 * i, f(*p));
    }
    put32(&mut h, 108, f(352.0));
    put32(&mut h, 112, f(2.0));
    put32(&mut h, 116, f(-1.0));
    h[148..156].copy_from_slice(b"Doe^John");
    put16(&mut h, 254, 1);
    let srow = [
        [2.0f32, 0.0, 0.0, -10.0],
        [0.0, 3.0, 0.0, 20.0],
        [0.0, 0.0, 4.0, 30.0],
    ];
    for (r, row) in srow.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            put32(&mut h, 280 + 16 * r + 4 * c, f(*v));
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    for v in 0..12i16 {
        h.extend_from_slice(&if big_endian {
            (v - 3).to_be_bytes()
        } else {
            (v - 3).to_le_bytes()
        });
    }
    h
}

#[test]
fn both_byte_orders_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut vols = Vec::new();
    for be in [false, true] {
        let p = dir.path().join(format!("v{be}.nii"));
        std::fs::write(&p, tiny_nifti(be)).unwrap();
        vols.push(nifti::open(&p).unwrap());
    }
    assert!(vols[1].header.big_endian && !vols[0].header.big_endian);
    assert_eq!(vols[0].affine_ras(), vols[1].affine_ras());
    assert_eq!(vols[0].affine_ras()[1], [0.0, 3.0, 0.0, 20.0]);
    assert_eq!(vols[0].affine_lps()[0], [-2.0, 0.0, 0.0, 10.0]);
    // Raw -3..8 scaled by 2x - 1; slice 1 holds raw 3..8.
    assert_eq!(
        vols[0].slice(1, 0).unwrap(),
        vec![5.0, 7.0, 9.0, 11.0, 13.0, 15.0]
    );
    assert_eq!(vols[1].slice(1, 0).unwrap(), vols[0].slice(1, 0).unwrap());
    assert_eq!(vols[0].header.descrip, "Doe^John");
}

#[test]
fn truncated_and_garbage_headers_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let full = tiny_nifti(false);
    let cut = dir.path().join("cut.nii");
    std::fs::write(&cut, &full[..full.len() - 5]).unwrap();
    assert!(matches!(
        nifti::open(&cut),
        Err(imaging::ImagingError::Truncated { .. })
    ));
    let mut bad = full.clone();
    bad[72] = 9; // bitpix no longer matches int16
    let badp = dir.path().join("bad.nii");
    std::fs::write(&badp, &bad).unwrap();
    assert!(nifti::open(&badp).is_err());
    let mut huge = full;
    huge[42..44].copy_from_slice(&i16::MAX.to_le_bytes());
    huge[44..46].copy_from_slice(&i16::MAX.to_le_bytes());
    // Found by the nifti_open fuzz target: time dimensions whose product
    // overflows must be refused, not panic.
    let mut overflow = tiny_nifti(false);
    overflow[40..42].copy_from_slice(&7i16.to_le_bytes());
    for i in 4..8 {
        overflow[40 + 2 * i..42 + 2 * i].copy_from_slice(&i16::MAX.to_le_bytes());
    }
    let overflowp = dir.path().join("overflow.nii");
    std::fs::write(&overflowp, &overflow).unwrap();
    assert!(nifti::open(&overflowp).is_err());
    // The fuzzer's own input: a NIfTI-2 header with 64-bit dimensions.
    let fuzzed = dir.path().join("fuzzed.nii");
    std::fs::write(
        &fuzzed,
        include_bytes!("fixtures/fuzz_regressions/nifti2_dims_overflow.nii"),
    )
    .unwrap();
    if let Ok(vol) = nifti::open(&fuzzed) {
        let _ = vol.for_each_slice(|_, _, _| Ok(()));
    }
    let hugep = dir.path().join("huge.nii");
    std::fs::write(&hugep, &huge).unwrap();
    assert!(nifti::open(&hugep).is_err());
}
