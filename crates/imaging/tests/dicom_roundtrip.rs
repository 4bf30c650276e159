//! Files decoded on the fast path (pixel data read from the file buffer)
//! give back a complete dicom-rs object that writes and re-reads to the
//! same pixels.

use std::path::PathBuf;

use imaging::dicom;

#[test]
fn full_object_keeps_the_pixel_data() {
    let root = std::env::var_os("MEDVISION_FIXTURES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/medvision/fixtures"))
        });
    let Some(dir) = root
        .map(|r| r.join("pydicom-3.0.2/pydicom/data/test_files"))
        .filter(|d| d.is_dir())
    else {
        eprintln!("SKIPPED: pydicom test corpus not found; run scripts/fixtures.sh");
        return;
    };
    for name in [
        "CT_small.dcm",
        "MR_small_implicit.dcm",
        "MR_small_RLE.dcm",
        "SC_rgb_rle_2frame.dcm",
    ] {
        let file = dicom::open(&dir.join(name)).unwrap();
        let frames: Vec<_> = (0..file.frames())
            .map(|f| file.decode_frame(f).unwrap().data)
            .collect();
        let full = file.into_full_object().unwrap();
        assert!(
            full.get(dicom_dictionary_std::tags::PIXEL_DATA).is_some(),
            "{name}"
        );
        let mut bytes = Vec::new();
        full.write_all(&mut bytes).unwrap();
        let again = dicom::open_bytes(&bytes).unwrap();
        for (f, want) in frames.iter().enumerate() {
            assert_eq!(
                &again.decode_frame(f as u32).unwrap().data,
                want,
                "{name} frame {f}"
            );
        }
    }
}
