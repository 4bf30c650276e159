//! Windowing, presets, MONOCHROME1, palette, resampling and PNG rendering.
//! Expected window outputs are worked from the PS3.3 C.11.2.1.2 formulas by
//! hand in the comments; palette colours come from pydicom.

mod dicom_synth;

use std::path::PathBuf;

use dicom_synth::{ct_slice, to_bytes, CtSlice};
use imaging::dicom::{self, VoiLut, VoiLutFunction};
use imaging::pixel::{
    apply_voi_lut, apply_window, fit_size, resample, to_display, Channels, CtPreset, Plane, Window,
};
use imaging::render::{plane_to_png, render_dicom_png};
use sha2::{Digest, Sha256};

fn corpus_file(name: &str) -> Option<PathBuf> {
    let root = std::env::var_os("MEDVISION_FIXTURES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/medvision/fixtures"))
        })?;
    let path = root
        .join("pydicom-3.0.2/pydicom/data/test_files")
        .join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("SKIPPED: {name} not found; run scripts/fixtures.sh");
        None
    }
}

#[test]
fn presets_parse_print_and_carry_the_department_values() {
    let expected = [
        ("brain", 40.0, 80.0),
        ("subdural", 80.0, 200.0),
        ("bone", 600.0, 2800.0),
        ("lung", -600.0, 1500.0),
        ("abdomen", 40.0, 400.0),
    ];
    for (name, center, width) in expected {
        let preset: CtPreset = name.to_uppercase().parse().unwrap();
        assert_eq!(preset.to_string(), name);
        assert_eq!((preset.center(), preset.width()), (center, width));
    }
    let err = "liver".parse::<CtPreset>().unwrap_err();
    assert!(err.to_string().contains("brain"), "{err}");
}

#[test]
fn linear_window_follows_ps3_3_c_11_2_1_2() {
    // Brain 40/80: x ≤ c − 0.5 − (w−1)/2 = 0 → 0; x > c − 0.5 + (w−1)/2 = 79
    // → 255; x = 40 → ((40 − 39.5)/79 + 0.5) × 255 = 129.11 → 129.
    let out = apply_window(
        &[-1000.0, 0.0, 0.5, 40.0, 79.0, 79.5, 3000.0],
        40.0,
        80.0,
        VoiLutFunction::Linear,
    );
    assert_eq!(out[0], 0);
    assert_eq!(out[1], 0);
    // 0.5 is above 0: ((0.5 − 39.5)/79 + 0.5) × 255 = 1.61 → 2.
    assert_eq!(out[2], 2);
    assert_eq!(out[3], 129);
    // 79 is not above 79: ((79 − 39.5)/79 + 0.5) × 255 = 255.
    assert_eq!(out[4], 255);
    assert_eq!(out[5], 255);
    assert_eq!(out[6], 255);
}

#[test]
fn linear_exact_and_sigmoid_windows() {
    // LINEAR_EXACT 40/80: 0 → 0, 80 → 255, 40 → 127.5 → 128, 60 → 191.25 → 191.
    let exact = apply_window(
        &[0.0, 40.0, 60.0, 80.0],
        40.0,
        80.0,
        VoiLutFunction::LinearExact,
    );
    assert_eq!(exact, vec![0, 128, 191, 255]);
    // SIGMOID: 255 / (1 + e^(−4(x−c)/w)); at c → 127.5 → 128; at c + w/2 →
    // 255/(1 + e^−2) = 224.6 → 225; at c − w/2 → 255/(1 + e^2) = 30.4 → 30.
    let sigmoid = apply_window(&[40.0, 80.0, 0.0], 40.0, 80.0, VoiLutFunction::Sigmoid);
    assert_eq!(sigmoid, vec![128, 225, 30]);
}

fn slice(photometric: &str, window: Option<(f64, f64)>) -> dicom::DicomFile {
    // HU −1000, 0, 40, 1000 (stored + −1024 intercept).
    let stored: Vec<i16> = [24i16, 1024, 1064, 2024].repeat(4);
    let obj = ct_slice(&CtSlice {
        stored,
        photometric,
        window,
        ..CtSlice::default()
    });
    dicom::open_bytes(&to_bytes(&obj)).expect("the synthetic slice opens")
}

#[test]
fn modality_lut_gives_hounsfield_units_and_presets_window_them() {
    let frame = slice("MONOCHROME2", None).decode_frame(0).unwrap();
    assert_eq!(
        &imaging::pixel::modality_values(&frame)[..4],
        &[-1000.0, 0.0, 40.0, 1000.0]
    );
    let brain = to_display(&frame, Window::Preset(CtPreset::Brain)).unwrap();
    assert_eq!(brain.channels, Channels::Grey);
    assert_eq!(&brain.data[..4], &[0, 0, 129, 255]);
    let lung = to_display(&frame, Window::Preset(CtPreset::Lung)).unwrap();
    // Lung −600/1500: −1000 → ((−1000+600.5)/1499+0.5)×255 = 59.54 → 60.
    assert_eq!(lung.data[0], 60);
    let minmax = to_display(&frame, Window::MinMax).unwrap();
    assert_eq!((minmax.data[0], minmax.data[3]), (0, 255));
}

#[test]
fn window_from_file_is_used_and_monochrome1_is_inverted() {
    let mono2 = slice("MONOCHROME2", Some((40.0, 80.0)))
        .decode_frame(0)
        .unwrap();
    let mono1 = slice("MONOCHROME1", Some((40.0, 80.0)))
        .decode_frame(0)
        .unwrap();
    let a = to_display(&mono2, Window::FromFile).unwrap();
    let b = to_display(&mono1, Window::FromFile).unwrap();
    assert_eq!(&a.data[..4], &[0, 0, 129, 255]);
    assert!(a.data.iter().zip(&b.data).all(|(x, y)| *x == 255 - *y));
}

#[test]
fn fit_size_keeps_the_aspect_ratio_and_physical_pixel_shape() {
    assert_eq!(fit_size(512, 256, None, 128, 128), (128, 64));
    assert_eq!(fit_size(300, 600, None, 1000, 100), (50, 100));
    // Never enlarged.
    assert_eq!(fit_size(64, 32, None, 512, 512), (64, 32));
    // Rows 2 mm apart, columns 1 mm: a 100 × 100 matrix is 100 × 200 mm.
    assert_eq!(fit_size(100, 100, Some([2.0, 1.0]), 400, 400), (100, 200));
    assert_eq!(fit_size(100, 100, Some([2.0, 1.0]), 50, 50), (25, 50));
}

#[test]
fn resample_averages_areas_when_shrinking() {
    // A 4 × 2 plane of 0/200 columns shrunk to 2 × 1: each output averages a
    // 2 × 2 block of one 0 column and one 200 column → 100.
    let plane = Plane {
        width: 4,
        height: 2,
        channels: Channels::Grey,
        data: vec![0, 200, 0, 200, 0, 200, 0, 200],
    };
    let small = resample(&plane, 2, 1);
    assert_eq!(small.data, vec![100, 100]);
    // A constant RGB plane stays constant at any size.
    let rgb = Plane {
        width: 3,
        height: 3,
        channels: Channels::Rgb,
        data: [10u8, 20, 30].repeat(9),
    };
    let big = resample(&rgb, 7, 5);
    assert_eq!((big.width, big.height), (7, 5));
    assert!(big.data.chunks(3).all(|p| p == [10, 20, 30]));
}

#[test]
fn palette_colour_matches_pydicom_apply_color_lut() {
    let Some(path) = corpus_file("examples_palette.dcm") else {
        return;
    };
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/pydicom_expected.json")).unwrap();
    let want = expected["files"]["examples_palette.dcm"]["palette_rgb8_sha256"]
        .as_str()
        .unwrap();
    let frame = dicom::open(&path).unwrap().decode_frame(0).unwrap();
    let plane = to_display(&frame, Window::FromFile).unwrap();
    assert_eq!(plane.channels, Channels::Rgb);
    assert_eq!(hex::encode(Sha256::digest(&plane.data)), want);
}

#[test]
fn rendered_png_decodes_to_the_fitted_size() {
    let Some(path) = corpus_file("CT_small.dcm") else {
        return;
    };
    let rendered = render_dicom_png(&path, 0, Window::Preset(CtPreset::Abdomen), 48).unwrap();
    assert_eq!((rendered.width, rendered.height), (48, 48));
    let decoder = png::Decoder::new(std::io::Cursor::new(rendered.png));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!(
        (info.width, info.height, info.color_type),
        (48, 48, png::ColorType::Grayscale)
    );
    // Colour stays colour.
    let Some(rgb) = corpus_file("SC_rgb_small_odd.dcm") else {
        return;
    };
    let rendered = render_dicom_png(&rgb, 0, Window::FromFile, 512).unwrap();
    let reader = png::Decoder::new(std::io::Cursor::new(rendered.png))
        .read_info()
        .unwrap();
    assert_eq!(reader.info().color_type, png::ColorType::Rgb);
    assert!(plane_to_png(&Plane {
        width: 2,
        height: 2,
        channels: Channels::Grey,
        data: vec![0; 3]
    })
    .is_err());
}

#[test]
fn voi_lut_table_clamps_below_and_above_and_scales_to_8_bits() {
    // A 12-bit table of 4 entries starting at input 100.
    let lut = VoiLut {
        min_pixel_value: 100,
        bits_stored: 12,
        data: vec![0, 1365, 2730, 4095],
        explanation: None,
    };
    let out = apply_voi_lut(&[-5.0, 100.0, 101.0, 102.0, 103.0, 5000.0], &lut);
    // 1365/4095 × 255 = 85, 2730/4095 × 255 = 170.
    assert_eq!(out, vec![0, 0, 85, 170, 255, 255]);
}
