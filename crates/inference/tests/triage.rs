//! Thresholds, organisation overrides and the rule that triage only raises
//! priority.

#![allow(clippy::unwrap_used)]

use inference::triage::{
    assess, combine, effective_thresholds, Threshold, ThresholdOverride, Urgency,
};
use inference::InferenceError;

fn pack() -> Vec<Threshold> {
    vec![
        Threshold {
            label: "pneumothorax".into(),
            positive_at: 0.3,
            urgency_if_positive: Urgency::Stat,
        },
        Threshold {
            label: "effusion".into(),
            positive_at: 0.5,
            urgency_if_positive: Urgency::Priority,
        },
        Threshold {
            label: "nodule".into(),
            positive_at: 0.6,
            urgency_if_positive: Urgency::Urgent,
        },
    ]
}

fn probs(p: [f32; 3]) -> Vec<(String, f32)> {
    vec![
        ("pneumothorax".into(), p[0]),
        ("effusion".into(), p[1]),
        ("nodule".into(), p[2]),
    ]
}

fn invalid_message(r: Result<impl std::fmt::Debug, InferenceError>) -> String {
    match r {
        Err(InferenceError::Invalid(m)) => m,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn urgency_orders_prints_and_parses() {
    assert!(Urgency::Routine < Urgency::Priority);
    assert!(Urgency::Priority < Urgency::Urgent);
    assert!(Urgency::Urgent < Urgency::Stat);
    for u in Urgency::ALL {
        assert_eq!(u.to_string().parse::<Urgency>().unwrap(), u);
        assert_eq!(serde_json::to_string(&u).unwrap(), format!("\"{u}\""));
    }
    assert_eq!(" STAT ".parse::<Urgency>().unwrap(), Urgency::Stat);
    assert!(invalid_message("asap".parse::<Urgency>()).contains("`asap`"));
}

#[test]
fn findings_follow_the_pack_thresholds() {
    let a = assess(&probs([0.1, 0.7, 0.2]), &pack(), &[]).unwrap();
    let positive: Vec<_> = a.findings.iter().map(|f| f.positive).collect();
    assert_eq!(positive, vec![false, true, false]);
    assert_eq!(a.findings[1].urgency, Urgency::Priority);
    assert_eq!(a.findings[0].urgency, Urgency::Routine);
    assert_eq!(a.findings[2].threshold, 0.6);
    assert_eq!(a.urgency, Urgency::Priority);

    let a = assess(&probs([0.9, 0.7, 0.9]), &pack(), &[]).unwrap();
    assert_eq!(a.urgency, Urgency::Stat, "the highest positive wins");

    let a = assess(&probs([0.0, 0.1, 0.2]), &pack(), &[]).unwrap();
    assert_eq!(a.urgency, Urgency::Routine, "nothing positive");
}

#[test]
fn a_probability_exactly_at_the_threshold_is_positive() {
    let a = assess(&probs([0.3, 0.0, 0.0]), &pack(), &[]).unwrap();
    assert!(a.findings[0].positive);
    assert_eq!(a.urgency, Urgency::Stat);
}

#[test]
fn an_override_to_a_lower_threshold_makes_a_finding_positive() {
    let p = probs([0.0, 0.0, 0.45]);
    assert_eq!(assess(&p, &pack(), &[]).unwrap().urgency, Urgency::Routine);
    let site = [ThresholdOverride {
        label: "nodule".into(),
        positive_at: Some(0.4),
        urgency_if_positive: None,
    }];
    let a = assess(&p, &pack(), &site).unwrap();
    assert!(a.findings[2].positive);
    assert_eq!(a.findings[2].threshold, 0.4);
    assert_eq!(a.urgency, Urgency::Urgent, "the pack's urgency is kept");
}

#[test]
fn overrides_replace_only_the_fields_they_set() {
    let site = [
        ThresholdOverride {
            label: "effusion".into(),
            positive_at: None,
            urgency_if_positive: Some(Urgency::Urgent),
        },
        ThresholdOverride {
            label: "pneumothorax".into(),
            positive_at: Some(0.2),
            urgency_if_positive: Some(Urgency::Urgent),
        },
    ];
    let t = effective_thresholds(&pack(), &site).unwrap();
    assert_eq!(
        (t[0].positive_at, t[0].urgency_if_positive),
        (0.2, Urgency::Urgent)
    );
    assert_eq!(
        (t[1].positive_at, t[1].urgency_if_positive),
        (0.5, Urgency::Urgent)
    );
    assert_eq!(t[2], pack()[2]);

    // Overrides as an organisation's settings store them.
    let o: ThresholdOverride =
        toml::from_str("label = \"effusion\"\nurgency_if_positive = \"stat\"").unwrap();
    assert_eq!(o.positive_at, None);
    assert_eq!(o.urgency_if_positive, Some(Urgency::Stat));
}

#[test]
fn an_override_for_an_unknown_label_is_an_error_naming_it() {
    let site = [ThresholdOverride {
        label: "pneumothroax".into(),
        positive_at: Some(0.2),
        urgency_if_positive: None,
    }];
    let msg = invalid_message(assess(&probs([0.5; 3]), &pack(), &site));
    assert!(msg.contains("`pneumothroax`"), "{msg}");
}

#[test]
fn thresholds_outside_the_open_unit_interval_are_rejected() {
    for bad in [0.0, 1.0, -0.1, 1.5, f32::NAN] {
        let mut t = pack();
        t[1].positive_at = bad;
        let msg = invalid_message(assess(&probs([0.5; 3]), &t, &[]));
        assert!(msg.contains("`effusion`"), "{msg}");

        let site = [ThresholdOverride {
            label: "nodule".into(),
            positive_at: Some(bad),
            urgency_if_positive: None,
        }];
        let msg = invalid_message(assess(&probs([0.5; 3]), &pack(), &site));
        assert!(msg.contains("`nodule`"), "{msg}");
    }
}

#[test]
fn nan_or_out_of_range_probabilities_are_rejected() {
    for bad in [f32::NAN, -0.01, 1.01] {
        let msg = invalid_message(assess(&probs([0.1, bad, 0.1]), &pack(), &[]));
        assert!(msg.contains("`effusion`"), "{msg}");
    }
}

#[test]
fn labels_must_match_between_probabilities_and_thresholds() {
    let mut p = probs([0.1; 3]);
    p.push(("fracture".into(), 0.9));
    assert!(invalid_message(assess(&p, &pack(), &[])).contains("`fracture` has no threshold"));

    let p = probs([0.1; 3])[..2].to_vec();
    assert!(invalid_message(assess(&p, &pack(), &[])).contains("no probability for label `nodule`"));

    let mut t = pack();
    t.push(t[0].clone());
    assert!(invalid_message(assess(&probs([0.1; 3]), &t, &[])).contains("two thresholds"));
}

#[test]
fn human_stat_is_never_lowered_by_ai_routine() {
    assert_eq!(
        combine(Some(Urgency::Stat), Urgency::Routine),
        Urgency::Stat
    );
}

#[test]
fn ai_stat_raises_human_routine() {
    assert_eq!(
        combine(Some(Urgency::Routine), Urgency::Stat),
        Urgency::Stat
    );
    assert_eq!(combine(None, Urgency::Urgent), Urgency::Urgent);
    for h in Urgency::ALL {
        for ai in Urgency::ALL {
            let c = combine(Some(h), ai);
            assert!(c >= h && c >= ai && (c == h || c == ai));
        }
    }
}
