//! Damaged inputs never panic: seeds (built here, plus real corpus files
//! when scripts/fixtures.sh has run) are truncated, bit-flipped and given
//! absurd 32-bit values at random places, then ingested. Every outcome must
//! be an accepted file or a refusal, with nothing stray in the output
//! folder. A deterministic, stable-toolchain complement to the cargo-fuzz
//! target in crates/imaging/fuzz.

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

mod files_common;

use std::collections::BTreeSet;
use std::io::Write;

use files_common::*;
use imaging::ingest::ingest;
use imaging::Source;

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut d = seed.to_vec();
    match rng.below(4) {
        0 => d.truncate(rng.below(d.len())),
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let i = rng.below(d.len().saturating_sub(4));
            let v = [0xFFFF_FFF0u32, 0xFFFF_FFFF, 0x7FFF_FFFF, 0x8000_0000, 0][rng.below(5)];
            if d.len() >= 4 {
                d[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        _ => {
            let i = rng.below(d.len());
            let j = rng.below(d.len());
            let (a, b) = (i.min(j), i.max(j));
            d.drain(a..b);
        }
    }
    d
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut s = vec![
        ("synthetic.dcm".to_string(), dicom("1.2.3", "1.2.3.1")),
        ("tiny.nii".to_string(), tiny_nifti()),
    ];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tiny_nifti()).unwrap();
    s.push(("tiny.nii.gz".into(), gz.finish().unwrap()));
    for rel in [
        format!("{PYDICOM}/CT_small.dcm"),
        format!("{PYDICOM}/MR_small_RLE.dcm"),
        format!("{PYDICOM}/JPEG2000.dcm"),
        format!("{PYDICOM}/rtplan.dcm"),
        "nibabel-5.4.2/nibabel/tests/data/example_nifti2.nii.gz".to_string(),
    ] {
        if let Some(p) = fixture(&rel) {
            s.push((rel, std::fs::read(p).unwrap()));
        }
    }
    s
}

#[test]
fn mutated_files_are_accepted_or_refused_never_panic() {
    let cfg = config();
    let work = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut refused = 0;
    for (name, seed) in seeds() {
        for i in 0..60 {
            let data = mutate(&seed, &mut rng);
            let path = work.path().join(format!("m{i}"));
            std::fs::write(&path, &data).unwrap();
            let out = tempfile::tempdir().unwrap();
            let src = Source {
                name: format!("{name}#{i}"),
                path,
            };
            let result = ingest(&[src], &cfg, out.path());
            let report = match result {
                Ok(r) => r,
                Err(_) => {
                    refused += 1;
                    continue;
                }
            };
            refused += report.rejected.len();
            let kept: BTreeSet<_> = report.accepted.iter().map(|a| a.path.clone()).collect();
            let present: BTreeSet<_> = files_in(out.path()).into_iter().collect();
            assert_eq!(kept, present, "{name} mutation {i}");
        }
    }
    assert!(refused > 0, "mutations should break some files");
}
