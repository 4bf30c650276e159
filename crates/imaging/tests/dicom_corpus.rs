//! Every file of pydicom's own test corpus (pydicom 3.0.2 wheel,
//! `pydicom/data/test_files`, fetched by scripts/fixtures.sh) against what
//! pydicom decoded from it: tests/fixtures/pydicom_expected.json, written by
//! tests/fixtures/gen_pydicom_expected.py.
//!
//! Lossless transfer syntaxes must match pydicom bit for bit (sha256 of each
//! frame's little-endian samples). Lossy ones (JPEG baseline/extended, JPEG-LS
//! near-lossless, JPEG 2000 irreversible) and YBR colour (converted with
//! rounding) are compared on pydicom's strided sample of each frame: see
//! [`LOSSY_MEAN_ABS`] and [`LOSSY_MAX_ABS`]. Files pydicom cannot decode must
//! give an ImagingError here, never a panic.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use imaging::dicom;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lossy codecs: IDCT / wavelet implementations differ in rounding. Mean
/// absolute difference over the sampled values, in stored units…
const LOSSY_MEAN_ABS: f64 = 1.0;
/// …and the largest single difference (a few units of an 8-bit scale).
const LOSSY_MAX_ABS: f64 = 8.0;

/// Files pydicom refuses that dicom-rs decodes: their pixels cannot be
/// checked against pydicom, so the test only requires they do not panic.
/// Each entry says why decoding them is right.
const DECODED_THOUGH_PYDICOM_REFUSES: &[(&str, &str)] = &[];

/// Files pydicom decodes that we refuse, each with the reason and the error
/// the uploader sees. Kept short and explicit: anything else must match.
const KNOWN_GAPS: &[(&str, &str)] = &[(
    "JPGExtended.dcm",
    // No pure-Rust decoder implements 12-bit DCT JPEG (jpeg-decoder stops
    // at 8 bits); pydicom uses libjpeg through pylibjpeg.
    "unsupported: 12-bit lossy JPEG (JPEG Extended) compression",
)];

fn corpus_dir() -> Option<PathBuf> {
    let root = std::env::var_os("MEDVISION_FIXTURES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/medvision/fixtures"))
        })?;
    let dir = root.join("pydicom-3.0.2/pydicom/data/test_files");
    dir.is_dir().then_some(dir)
}

fn expected() -> Value {
    let text = include_str!("fixtures/pydicom_expected.json");
    serde_json::from_str(text).expect("pydicom_expected.json parses")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Decodes every frame, comparing with pydicom; returns what differs.
fn check_decodes(path: &Path, want: &Value) -> Result<(), String> {
    let file = dicom::open(path).map_err(|e| format!("open failed: {e}"))?;
    let frames = want["frames"].as_u64().unwrap_or(0) as u32;
    if file.frames() != frames {
        return Err(format!("{} frames, pydicom {}", file.frames(), frames));
    }
    let lossy = want["lossy"].as_bool().unwrap_or(false);
    for f in 0..frames {
        let frame = file
            .decode_frame(f)
            .map_err(|e| format!("frame {f}: {e}"))?;
        if frame.data.dtype() != want["dtype"].as_str().unwrap_or("") {
            return Err(format!(
                "dtype {} vs pydicom {}",
                frame.data.dtype(),
                want["dtype"]
            ));
        }
        let samples =
            (frame.rows as usize * frame.columns as usize) * usize::from(frame.samples_per_pixel);
        if frame.data.len() != samples {
            return Err(format!("{} samples, expected {samples}", frame.data.len()));
        }
        let sha = sha256_hex(&frame.data.to_le_bytes());
        if !lossy {
            if sha != want["frame_sha256"][f as usize].as_str().unwrap_or("") {
                return Err(format!(
                    "frame {f}: sha256 differs from pydicom's (lossless)"
                ));
            }
            continue;
        }
        let step = want["sample_step"].as_u64().unwrap_or(1) as usize;
        let reference = want["frame_samples"][f as usize]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let (mut sum, mut max) = (0.0f64, 0.0f64);
        for (k, r) in reference.iter().enumerate() {
            let ours = frame.data.get_f64(k * step).unwrap_or(f64::NAN);
            let diff = (ours - r.as_f64().unwrap_or(f64::NAN)).abs();
            sum += diff;
            max = max.max(diff);
        }
        let mean = sum / reference.len().max(1) as f64;
        if !(mean <= LOSSY_MEAN_ABS && max <= LOSSY_MAX_ABS) {
            return Err(format!(
                "frame {f}: lossy difference mean {mean:.3}, max {max}"
            ));
        }
    }
    Ok(())
}

/// A file pydicom refuses must not decode silently here (or be a listed
/// exception); an error must read like one for the uploader.
fn check_refused(path: &Path, name: &str) -> Result<String, String> {
    let outcome = dicom::open(path)
        .and_then(|f| (0..f.frames()).try_for_each(|i| f.decode_frame(i).map(|_| ())));
    match outcome {
        Err(e) => {
            let text = e.to_string();
            if text.is_empty() || text.contains("Error") || text.contains("::") {
                return Err(format!("unclear error {text:?}"));
            }
            Ok(text)
        }
        Ok(())
            if DECODED_THOUGH_PYDICOM_REFUSES
                .iter()
                .any(|(n, _)| *n == name) =>
        {
            Ok("decoded (listed exception)".into())
        }
        Ok(()) => Err("decoded although pydicom refuses it".into()),
    }
}

#[test]
fn pydicom_corpus_decodes_like_pydicom() {
    let Some(dir) = corpus_dir() else {
        eprintln!("SKIPPED: pydicom test corpus not found; run scripts/fixtures.sh");
        return;
    };
    let expected = expected();
    let files = expected["files"].as_object().expect("files");
    let mut failures = BTreeMap::new();
    let (mut decoded, mut refused) = (0, 0);
    for (name, want) in files {
        let path = dir.join(name);
        let status = want["status"].as_str().unwrap_or("");
        let gap = KNOWN_GAPS.iter().find(|(n, _)| n == name);
        let result = catch_unwind(AssertUnwindSafe(|| {
            if let Some((_, message)) = gap {
                let got = dicom::open(&path).and_then(|f| f.decode_frame(0).map(|_| ()));
                return match got {
                    Err(e) if e.to_string() == *message => Ok("known gap".to_string()),
                    other => Err(format!("known gap changed: {other:?}")),
                };
            }
            if status == "decodes" {
                check_decodes(&path, want).map(|()| "decoded".to_string())
            } else {
                check_refused(&path, name)
            }
        }));
        match result {
            Ok(Ok(outcome)) => {
                if gap.is_some() {
                    eprintln!("known gap: {name}: {outcome}");
                } else if status == "decodes" {
                    decoded += 1;
                } else {
                    refused += 1;
                    eprintln!("refused as expected: {name}: {outcome}");
                }
            }
            Ok(Err(why)) => {
                failures.insert(
                    name.clone(),
                    format!("[{}] {why}", want["transfer_syntax"].as_str().unwrap_or("")),
                );
            }
            Err(_) => {
                failures.insert(name.clone(), "PANICKED".into());
            }
        }
    }
    eprintln!("{decoded} files decoded like pydicom, {refused} refused like pydicom");
    assert!(
        failures.is_empty(),
        "{} of {} files differ from pydicom:\n{}",
        failures.len(),
        files.len(),
        failures
            .iter()
            .map(|(k, v)| format!("  {k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        decoded + KNOWN_GAPS.len(),
        89,
        "pydicom decodes 89 files of the corpus"
    );
}
