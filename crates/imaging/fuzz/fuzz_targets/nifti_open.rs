#![no_main]
//! Any bytes as a `.nii`: open, compute both affines, stream every slice.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("v.nii");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(vol) = imaging::nifti::open(&path) {
        let _ = vol.affine_ras();
        let _ = vol.affine_lps();
        // Bounded work per input: the header may declare a huge volume.
        if vol.data_bytes() <= 64 << 20 {
            let _ = vol.for_each_slice(|_, _, _| Ok(()));
        }
    }
});
