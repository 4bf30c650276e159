//! Calibration on simulated validation sets whose true probabilities are
//! known: an over-confident model (logits = 4·z) and an under-confident one
//! (logits = z/3), where p = sigmoid(z) generated the labels.

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

use inference::calibration::{
    apply_calibrations, expected_calibration_error, fit, reliability, validate_calibrations,
    CalibrationReport, FitFlag, Isotonic, LabelCalibration, Method, MethodKind, TemperatureScaling,
    MIN_SAMPLES,
};
use inference::InferenceError;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `n` samples with z ~ N(0, 2²), label ~ Bernoulli(sigmoid(z)), and the
/// model's logit `scale·z`: scale > 1 is over-confident, < 1 under-confident.
fn simulate(seed: u64, n: usize, scale: f64) -> (Vec<f32>, Vec<bool>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut logits = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        // Box-Muller: rand 0.8 has no normal distribution without rand_distr.
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen();
        let z = 2.0 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        labels.push(rng.gen::<f64>() < sigmoid(z));
        logits.push((scale * z) as f32);
    }
    (logits, labels)
}

fn ece_of(method: &Method, logits: &[f32], labels: &[bool]) -> f64 {
    let probs: Vec<f32> = logits.iter().map(|&z| method.apply(z)).collect();
    expected_calibration_error(&probs, labels, 15).unwrap()
}

fn invalid_message(r: Result<impl std::fmt::Debug, InferenceError>) -> String {
    match r {
        Err(InferenceError::Invalid(m)) => m,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

fn assert_monotone(method: &Method) {
    let mut prev = -1.0f32;
    for i in -4000..=4000 {
        let p = method.apply(i as f32 / 100.0);
        assert!((0.0..=1.0).contains(&p), "{p} outside [0, 1]");
        assert!(
            p >= prev,
            "not monotone at logit {}: {p} < {prev}",
            i as f32 / 100.0
        );
        prev = p;
    }
}

#[test]
fn ece_matches_a_hand_computed_example() {
    // Two bins. [0, 0.5): p 0.1, 0.2, labels F, T -> confidence 0.15,
    // accuracy 0.5, gap 0.35, weight 2/4. [0.5, 1]: p 0.7, 0.9, labels T, T ->
    // confidence 0.8, accuracy 1, gap 0.2, weight 2/4.
    // ECE = 0.5·0.35 + 0.5·0.2 = 0.275.
    let ece =
        expected_calibration_error(&[0.1, 0.2, 0.7, 0.9], &[false, true, true, true], 2).unwrap();
    assert!((ece - 0.275).abs() < 1e-6, "{ece}");

    let bins = reliability(&[0.1, 0.2, 0.7, 0.9], &[false, true, true, true], 2).unwrap();
    assert_eq!(bins.len(), 2);
    assert!((bins[0].mean_confidence - 0.15).abs() < 1e-6);
    assert_eq!((bins[0].accuracy, bins[0].count), (0.5, 2));
    assert!((bins[1].mean_confidence - 0.8).abs() < 1e-6);
    assert_eq!((bins[1].accuracy, bins[1].count), (1.0, 2));
}

#[test]
fn ece_puts_probability_one_in_the_last_bin_and_skips_empty_bins() {
    // 0.0 with a negative and 1.0 with a positive: perfectly calibrated.
    let ece = expected_calibration_error(&[0.0, 1.0], &[false, true], 10).unwrap();
    assert_eq!(ece, 0.0);
    let bins = reliability(&[0.0, 1.0], &[false, true], 10).unwrap();
    assert_eq!(bins.len(), 2, "empty bins are left out");
    assert_eq!((bins[0].lower, bins[1].upper), (0.0, 1.0));
    assert!((bins[1].lower - 0.9).abs() < 1e-12);
}

#[test]
fn ece_rejects_unusable_input_without_panicking() {
    assert!(invalid_message(expected_calibration_error(&[], &[], 10)).contains("no calibration"));
    assert!(
        invalid_message(expected_calibration_error(&[0.5], &[true, false], 10)).contains("pair up")
    );
    assert!(invalid_message(expected_calibration_error(&[0.5], &[true], 0)).contains("bin"));
    assert!(
        invalid_message(expected_calibration_error(&[f32::NAN], &[true], 10)).contains("[0, 1]")
    );
    assert!(invalid_message(expected_calibration_error(&[1.5], &[true], 10)).contains("[0, 1]"));
}

#[test]
fn temperature_scaling_recovers_an_over_confident_models_temperature() {
    let (logits, labels) = simulate(1, 20_000, 4.0);
    let (method, report) = fit(MethodKind::Temperature, &logits, &labels).unwrap();
    let Method::Temperature { t } = method else {
        panic!("{method:?}")
    };
    assert!((t - 4.0).abs() < 0.4, "T = {t}, expected about 4");
    assert!(report.flags.is_empty(), "{:?}", report.flags);
    assert_eq!(report.n, 20_000);
    assert!(
        report.ece_before > 0.1,
        "the simulated model should be badly calibrated: {}",
        report.ece_before
    );
    assert!(report.ece_after < report.ece_before / 2.0, "{report:?}");
    assert!(report.ece_after < 0.05, "{report:?}");

    // On a held-out set from the same model, too.
    let (test_logits, test_labels) = simulate(2, 20_000, 4.0);
    let before = ece_of(&Method::None, &test_logits, &test_labels);
    let after = ece_of(&method, &test_logits, &test_labels);
    assert!(
        after < before / 2.0 && after < 0.05,
        "held out: {before} -> {after}"
    );
}

#[test]
fn temperature_scaling_fixes_an_under_confident_model() {
    let (logits, labels) = simulate(3, 20_000, 1.0 / 3.0);
    let (method, report) = fit(MethodKind::Temperature, &logits, &labels).unwrap();
    let Method::Temperature { t } = method else {
        panic!("{method:?}")
    };
    assert!(
        (t - 1.0 / 3.0).abs() < 0.1 / 3.0,
        "T = {t}, expected about 1/3"
    );
    assert!(report.ece_after < report.ece_before / 2.0, "{report:?}");
    assert!(report.ece_after < 0.05, "{report:?}");

    let (test_logits, test_labels) = simulate(4, 20_000, 1.0 / 3.0);
    let before = ece_of(&Method::None, &test_logits, &test_labels);
    let after = ece_of(&method, &test_logits, &test_labels);
    assert!(
        after < before / 2.0 && after < 0.05,
        "held out: {before} -> {after}"
    );
}

#[test]
fn isotonic_lowers_ece_and_is_monotone() {
    for (seed, scale) in [(5, 4.0), (6, 1.0 / 3.0)] {
        let (logits, labels) = simulate(seed, 20_000, scale);
        let (method, report) = fit(MethodKind::Isotonic, &logits, &labels).unwrap();
        method.validate().unwrap();
        assert!(
            report.ece_after < report.ece_before / 2.0 && report.ece_after < 0.05,
            "scale {scale}: {report:?}"
        );
        assert_monotone(&method);

        // In-sample isotonic ECE is optimistic; the held-out one must still
        // be a clear improvement.
        let (test_logits, test_labels) = simulate(seed + 100, 20_000, scale);
        let before = ece_of(&Method::None, &test_logits, &test_labels);
        let after = ece_of(&method, &test_logits, &test_labels);
        assert!(
            after < before / 2.0 && after < 0.05,
            "scale {scale}, held out: {before} -> {after}"
        );
    }
}

#[test]
fn pool_adjacent_violators_on_a_hand_example() {
    // x 0.1 0.2 0.3 0.4 with labels 0 1 0 1: (0.2, 1) and (0.3, 0) violate
    // and pool to 0.5 at centre 0.25.
    let iso = Isotonic::fit(&[0.3, 0.1, 0.4, 0.2], &[false, false, true, true]).unwrap();
    assert_eq!(iso.xs.len(), 3);
    for (got, want) in iso.xs.iter().zip([0.1, 0.25, 0.4]) {
        assert!((got - want).abs() < 1e-12, "{:?}", iso.xs);
    }
    assert_eq!(iso.ys, vec![0.0, 0.5, 1.0]);
    // Linear between centres, flat beyond them.
    assert!((iso.apply(0.175) - 0.25).abs() < 1e-12);
    assert_eq!(iso.apply(0.0), 0.0);
    assert_eq!(iso.apply(1.0), 1.0);
}

#[test]
fn isotonic_pools_ties_whatever_their_order() {
    // Three samples at 0.2 (one positive), one at 0.6 (positive).
    let a = Isotonic::fit(&[0.2, 0.2, 0.2, 0.6], &[true, false, false, true]).unwrap();
    let b = Isotonic::fit(&[0.6, 0.2, 0.2, 0.2], &[true, false, false, true]).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.xs, vec![0.2, 0.6]);
    assert!((a.ys[0] - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(a.ys[1], 1.0);

    // A tie whose mean violates the next point pools with it.
    let c = Isotonic::fit(&[0.2, 0.2, 0.5], &[true, true, false]).unwrap();
    assert_eq!(c.ys.len(), 1);
    assert!((c.ys[0] - 2.0 / 3.0).abs() < 1e-12);
    assert!((c.xs[0] - 0.3).abs() < 1e-12);

    // Heavily tied, quantised model outputs through `fit` stay monotone.
    let (logits, labels) = simulate(7, 2_000, 2.0);
    let quantised: Vec<f32> = logits.iter().map(|z| z.round()).collect();
    let (method, _) = fit(MethodKind::Isotonic, &quantised, &labels).unwrap();
    method.validate().unwrap();
    assert_monotone(&method);
}

#[test]
fn fit_refuses_degenerate_input_with_clear_errors() {
    let labels: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
    let logits: Vec<f32> = (0..40).map(|i| i as f32 / 10.0 - 2.0).collect();
    for kind in [
        MethodKind::None,
        MethodKind::Temperature,
        MethodKind::Isotonic,
    ] {
        assert!(invalid_message(fit(kind, &[], &[])).contains("no calibration samples"));
        assert!(invalid_message(fit(kind, &logits, &labels[..39])).contains("40 values but 39"));

        let mut bad = logits.clone();
        bad[7] = f32::NAN;
        assert!(invalid_message(fit(kind, &bad, &labels)).contains("logit 7 is NaN"));
        bad[7] = f32::INFINITY;
        assert!(invalid_message(fit(kind, &bad, &labels)).contains("logit 7 is inf"));

        let n = MIN_SAMPLES - 1;
        assert!(
            invalid_message(fit(kind, &logits[..n], &labels[..n])).contains("needs at least 20")
        );

        assert!(
            invalid_message(fit(kind, &logits, &[true; 40])).contains("all 40 labels are positive")
        );
        assert!(invalid_message(fit(kind, &logits, &[false; 40]))
            .contains("all 40 labels are negative"));
    }
}

#[test]
fn constant_logits_keep_temperature_one_and_say_so() {
    let labels: Vec<bool> = (0..40).map(|i| i % 3 == 0).collect();
    let (method, report) = fit(MethodKind::Temperature, &[0.7; 40], &labels).unwrap();
    assert_eq!(method, Method::Temperature { t: 1.0 });
    assert_eq!(report.flags, vec![FitFlag::ConstantLogits]);
}

#[test]
fn degenerate_data_drives_temperature_to_a_flagged_bound_not_a_panic() {
    // Perfectly separated: the loss keeps falling as T shrinks.
    let logits: Vec<f32> = (0..40)
        .map(|i| if i < 20 { -1.0 - i as f32 } else { i as f32 })
        .collect();
    let labels: Vec<bool> = (0..40).map(|i| i >= 20).collect();
    let (method, report) = fit(MethodKind::Temperature, &logits, &labels).unwrap();
    assert_eq!(method, Method::Temperature { t: 0.05 });
    assert_eq!(report.flags, vec![FitFlag::TemperatureAtBound]);

    // The low-level fitter takes one class without panicking, too.
    let (ts, flag) = TemperatureScaling::fit(&logits, &[true; 40]).unwrap();
    assert!(ts.temperature.is_finite() && ts.temperature > 0.0);
    assert_eq!(flag, Some(FitFlag::TemperatureAtBound));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Pack {
    calibration: Vec<LabelCalibration>,
}

#[test]
fn methods_round_trip_through_toml() {
    let pack = Pack {
        calibration: vec![
            LabelCalibration {
                label: "no_finding".into(),
                method: Method::None,
                report: None,
            },
            LabelCalibration {
                label: "effusion".into(),
                method: Method::Temperature { t: 1.8125 },
                report: Some(CalibrationReport {
                    n: 500,
                    positives: 61,
                    bins: 15,
                    ece_before: 0.125,
                    ece_after: 0.0213,
                    flags: vec![FitFlag::TemperatureAtBound],
                }),
            },
            LabelCalibration {
                label: "pneumothorax".into(),
                method: Method::Isotonic {
                    xs: vec![0.01, 0.25, 0.8],
                    ys: vec![0.0, 0.3, 0.95],
                },
                report: None,
            },
        ],
    };
    let text = toml::to_string(&pack).unwrap();
    let back: Pack = toml::from_str(&text).unwrap();
    assert_eq!(back, pack, "{text}");
    validate_calibrations(&back.calibration).unwrap();

    // What a hand-written model.toml looks like (the module docs' example).
    let hand: Pack = toml::from_str(
        r#"
        [[calibration]]
        label = "effusion"
        method = { kind = "temperature", t = 1.8 }
        "#,
    )
    .unwrap();
    assert_eq!(hand.calibration[0].method, Method::Temperature { t: 1.8 });
}

#[test]
fn malformed_stored_maps_fail_validation_but_never_panic_when_applied() {
    let bad = [
        Method::Temperature { t: 0.0 },
        Method::Temperature { t: -2.0 },
        Method::Isotonic {
            xs: vec![],
            ys: vec![],
        },
        Method::Isotonic {
            xs: vec![0.1, 0.2],
            ys: vec![0.5],
        },
        Method::Isotonic {
            xs: vec![0.2, 0.1],
            ys: vec![0.1, 0.5],
        },
        Method::Isotonic {
            xs: vec![0.1, 0.2],
            ys: vec![0.5, 0.1],
        },
        Method::Isotonic {
            xs: vec![0.1, 1.2],
            ys: vec![0.1, 0.5],
        },
    ];
    for m in &bad {
        assert!(m.validate().is_err(), "{m:?}");
        for z in [-50.0, -1.0, 0.0, 0.3, 1.0, 50.0, f32::NAN] {
            let _ = m.apply(z);
        }
    }
    let dup = vec![
        LabelCalibration {
            label: "a".into(),
            method: Method::None,
            report: None,
        },
        LabelCalibration {
            label: "a".into(),
            method: Method::None,
            report: None,
        },
    ];
    assert!(invalid_message(validate_calibrations(&dup)).contains("`a` is calibrated twice"));
}

#[test]
fn pack_calibrations_apply_per_label_and_name_a_missing_one() {
    let cals = vec![
        LabelCalibration {
            label: "a".into(),
            method: Method::None,
            report: None,
        },
        LabelCalibration {
            label: "b".into(),
            method: Method::Temperature { t: 2.0 },
            report: None,
        },
    ];
    let out = apply_calibrations(&cals, &[("b".into(), 2.0), ("a".into(), 0.0)]).unwrap();
    assert_eq!(out[0].0, "b");
    assert!((out[0].1 - sigmoid(1.0) as f32).abs() < 1e-6);
    assert_eq!(out[1], ("a".to_string(), 0.5));
    assert!(
        invalid_message(apply_calibrations(&cals, &[("c".into(), 0.0)]))
            .contains("`c` has no calibration")
    );
}
