//! Bad input never panics and never allocates what a header claims: every
//! refusal is an ImagingError a doctor can read.

mod dicom_synth;

use std::panic::{catch_unwind, AssertUnwindSafe};

use dicom_dictionary_std::uids;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_synth::{ct_slice, to_bytes, CtSlice};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use imaging::{dicom, ImagingError};

fn sample() -> Vec<u8> {
    let stored: Vec<i16> = (0..64).map(|v| v * 10).collect();
    to_bytes(&ct_slice(&CtSlice {
        rows: 8,
        columns: 8,
        stored,
        ..CtSlice::default()
    }))
}

/// Where the Pixel Data element's 4-byte length sits in an explicit VR LE file.
fn pixel_data_length_at(bytes: &[u8]) -> usize {
    let header = [0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0];
    bytes
        .windows(8)
        .rposition(|w| w == header)
        .expect("the sample has Pixel Data")
        + 8
}

#[test]
fn empty_and_foreign_files_are_refused() {
    assert_eq!(dicom::open_bytes(&[]).unwrap_err(), ImagingError::Empty);
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
    assert_eq!(
        dicom::open_bytes(png).unwrap_err(),
        ImagingError::NotRecognised
    );
    assert_eq!(
        dicom::open_bytes(b"DI").unwrap_err(),
        ImagingError::NotRecognised
    );
}

#[test]
fn a_four_gigabyte_element_length_is_refused_without_allocating_it() {
    let mut bytes = sample();
    let at = pixel_data_length_at(&bytes);
    bytes[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    // The length walker refuses it from the header, before dicom-rs could
    // allocate the declared length (its speed is a benchmark matter).
    let err = dicom::open_bytes(&bytes).unwrap_err();
    match err {
        ImagingError::Corrupt { detail } => {
            assert!(
                detail.contains("(7FE0,0010) declares 4294967280 bytes"),
                "{detail}"
            )
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn truncated_pixel_data_says_so() {
    let bytes = sample();
    let cut = &bytes[..bytes.len() - 30];
    assert_eq!(
        dicom::open_bytes(cut).unwrap_err(),
        ImagingError::Truncated {
            what: "pixel data".into()
        }
    );
}

#[test]
fn a_bare_data_set_without_preamble_or_meta_is_read() {
    let obj = ct_slice(&CtSlice {
        stored: (0..16).collect(),
        ..CtSlice::default()
    });
    let reference = dicom::open_bytes(&to_bytes(&obj))
        .unwrap()
        .decode_frame(0)
        .unwrap();
    for ts in [
        uids::IMPLICIT_VR_LITTLE_ENDIAN,
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
    ] {
        let mut bare = Vec::new();
        let syntax = TransferSyntaxRegistry.get(ts).unwrap();
        obj.write_dataset_with_ts(&mut bare, syntax).unwrap();
        let file = dicom::open_bytes(&bare).unwrap();
        assert!(!file.has_file_meta());
        assert_eq!(file.transfer_syntax(), ts);
        assert_eq!(file.decode_frame(0).unwrap().data, reference.data);
    }
}

#[test]
fn out_of_range_frames_are_errors() {
    let file = dicom::open_bytes(&sample()).unwrap();
    assert!(matches!(
        file.decode_frame(1),
        Err(ImagingError::Corrupt { .. })
    ));
}

/// Every prefix and thousands of byte flips of a valid file: errors are
/// fine, panics and hangs are not.
#[test]
fn cut_and_corrupted_files_never_panic() {
    let bytes = sample();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut inputs: Vec<Vec<u8>> = (0..bytes.len())
        .step_by(3)
        .map(|n| bytes[..n].to_vec())
        .collect();
    for _ in 0..20_000 {
        let mut mutated = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % mutated.len();
            mutated[at] = next() as u8;
        }
        inputs.push(mutated);
    }
    for (n, input) in inputs.iter().enumerate() {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            dicom::open_bytes(input)
                .and_then(|f| f.decode_frame(0))
                .map(|_| ())
        }));
        assert!(outcome.is_ok(), "input {n} panicked");
    }
}

/// The codecs parse attacker-controlled bitstreams: flip bytes in the
/// compressed pixel data of real RLE, JPEG, JPEG-LS and JPEG 2000 files.
#[test]
fn corrupted_compressed_pixel_data_never_panics() {
    let root = std::env::var_os("MEDVISION_FIXTURES")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".cache/medvision/fixtures"))
        });
    let Some(dir) = root
        .map(|r| r.join("pydicom-3.0.2/pydicom/data/test_files"))
        .filter(|d| d.is_dir())
    else {
        eprintln!("SKIPPED: pydicom test corpus not found; run scripts/fixtures.sh");
        return;
    };
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for name in [
        "MR_small_RLE.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
        "JPEGLSNearLossless_08.dcm",
        "MR_small_jp2klossless.dcm",
        "SC_rgb_rle_32bit.dcm",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let pixels_at = bytes
            .windows(4)
            .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
            .unwrap();
        for round in 0..150 {
            let mut mutated = bytes.clone();
            for _ in 0..1 + next() % 8 {
                let at = pixels_at + 24 + (next() as usize) % (bytes.len() - pixels_at - 24);
                mutated[at] = next() as u8;
            }
            if round % 10 == 0 {
                mutated
                    .truncate(pixels_at + 24 + (next() as usize) % (bytes.len() - pixels_at - 24));
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                dicom::open_bytes(&mutated)
                    .and_then(|f| f.decode_frame(0))
                    .map(|_| ())
            }));
            assert!(outcome.is_ok(), "{name} round {round} panicked");
        }
    }
}
