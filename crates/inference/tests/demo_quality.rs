//! The demo packs on their held-out phantoms: the whole engine (layers,
//! training, Grad-CAM, calibration) has to work for these to pass.
//! Packs are trained once by `train_demo` (the same code as
//! `medvision models train-demo`) at `DemoBudget::full()` into a cache and
//! reused while the trainer and budget are unchanged.
//!
//! Ignored by default: the full budget is about 80 minutes of training on a
//! 2-core CPU, more than CI has. Run with
//! `cargo test -p inference --release --test demo_quality -- --ignored`.
//! The default (10-minute) demo budget reaches the thresholds for the large
//! findings only; engine_learns.rs checks those on every run.

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use inference::demo::{train_demo, DemoBudget, CXR_PACK, ICH_PACK, SEG_PACK};
use inference::pack::{ModelPack, DEMO_INTENDED_USE};

fn packs() -> &'static Vec<ModelPack> {
    static PACKS: OnceLock<Vec<ModelPack>> = OnceLock::new();
    PACKS.get_or_init(|| {
        let dir = std::env::var_os("MEDVISION_DEMO_PACKS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(std::env::temp_dir);
                home.join(".cache/medvision/demo-packs")
            });
        train_demo(&dir, &DemoBudget::full(), 2026, &mut |l| eprintln!("{l}")).unwrap()
    })
}

fn metric(pack: &str, key: &str) -> f64 {
    let p = packs().iter().find(|p| p.manifest.name == pack).unwrap();
    *p.manifest
        .metrics
        .get(key)
        .unwrap_or_else(|| panic!("{pack} has no metric {key}: {:?}", p.manifest.metrics))
}

#[test]
#[ignore = "trains the demo packs at the full budget (about 80 minutes on 2 cores)"]
fn every_demo_pack_says_it_is_a_demonstration() {
    for p in packs() {
        assert_eq!(p.manifest.intended_use, DEMO_INTENDED_USE);
        p.verify().unwrap();
    }
}

#[test]
#[ignore = "trains the demo packs at the full budget (about 80 minutes on 2 cores)"]
fn chest_classifier_finds_every_planted_finding() {
    for label in inference::phantom::CXR_LABELS {
        let a = metric(CXR_PACK, &format!("auroc.{label}"));
        assert!(a >= 0.95, "{label}: AUROC {a}");
    }
    let pg = metric(CXR_PACK, "pointing_game");
    assert!(pg >= 0.8, "pointing game {pg}");
}

#[test]
#[ignore = "trains the demo packs at the full budget (about 80 minutes on 2 cores)"]
fn haemorrhage_classifier_finds_every_subtype() {
    for label in inference::phantom::ICH_LABELS {
        let a = metric(ICH_PACK, &format!("auroc.{label}"));
        assert!(a >= 0.95, "{label}: AUROC {a}");
    }
    let pg = metric(ICH_PACK, "pointing_game");
    assert!(pg >= 0.8, "pointing game {pg}");
}

#[test]
#[ignore = "trains the demo packs at the full budget (about 80 minutes on 2 cores)"]
fn calibration_does_not_make_the_classifiers_worse() {
    for (pack, labels) in [
        (CXR_PACK, &inference::phantom::CXR_LABELS[..]),
        (ICH_PACK, &inference::phantom::ICH_LABELS[..]),
    ] {
        let raw: f64 = labels
            .iter()
            .map(|l| metric(pack, &format!("ece_raw.{l}")))
            .sum();
        let cal: f64 = labels
            .iter()
            .map(|l| metric(pack, &format!("ece_calibrated.{l}")))
            .sum();
        assert!(
            cal <= raw + 0.02 * labels.len() as f64,
            "{pack}: ECE {raw} -> {cal}"
        );
    }
}

#[test]
#[ignore = "trains the demo packs at the full budget (about 80 minutes on 2 cores)"]
fn segmenter_outlines_the_whole_tumour() {
    let d = metric(SEG_PACK, "dice.whole_tumour");
    assert!(d >= 0.8, "whole tumour Dice {d}");
}
