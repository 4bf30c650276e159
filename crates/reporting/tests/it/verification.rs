//! Verification of drafts: citations, positive findings, asserted negatives.

use reporting::{verify_report, verify_text, Sections};

use crate::fixtures::{chest_findings, passages};

fn sections(findings: &str, impression: &str) -> Sections {
    Sections {
        clinical_information: "Dyspnoea.".into(),
        technique: "PA chest radiograph.".into(),
        findings: findings.into(),
        impression: impression.into(),
        recommendations: "Ultrasound if unexplained [GL:pleural-effusion-2023] [PMID:99999999]."
            .into(),
    }
}

#[test]
fn unknown_pmid_is_removed_and_counted_but_the_draft_stands() {
    let mut s = sections(
        "Pleural effusion suggested by the model, p = 0.82 [GL:pleural-effusion-2023]. Enlarged cardiac silhouette, p = 0.71 [PMID:12345678][PMID:87654321]. No pneumothorax.",
        "Pleural effusion and cardiomegaly suggested [PMID:11111111].",
    );
    let v = verify_report(&mut s, &chest_findings(), &passages());
    assert!(v.passed(), "{v:?}");
    assert_eq!(
        v.removed_citations,
        vec!["[PMID:87654321]", "[PMID:11111111]", "[PMID:99999999]"]
    );
    assert!(s.findings.contains("[PMID:12345678]"));
    assert!(!s.findings.contains("87654321"));
    assert_eq!(s.impression, "Pleural effusion and cardiomegaly suggested.");
    assert_eq!(
        s.recommendations,
        "Ultrasound if unexplained [GL:pleural-effusion-2023]."
    );
}

#[test]
fn malformed_citations_are_removed() {
    let mut s = sections(
        "Pleural effusion [1]. Cardiomegaly [GL: fleischner 2017] [doi:10.1000/xyz] (PMID 12345678).",
        "Effusion and cardiomegaly [PMID:12345678].",
    );
    let v = verify_report(&mut s, &chest_findings(), &passages());
    assert!(v.passed());
    assert_eq!(
        v.removed_citations,
        vec![
            "[1]",
            "[GL: fleischner 2017]",
            "[doi:10.1000/xyz]",
            "PMID 12345678",
            "[PMID:99999999]" // from Recommendations
        ]
    );
    assert_eq!(s.findings, "Pleural effusion. Cardiomegaly.");
}

#[test]
fn omitting_a_positive_finding_rejects_the_draft() {
    let mut s = sections(
        "Pleural effusion suggested by the model. No pneumothorax.",
        "Pleural effusion.",
    );
    let v = verify_report(&mut s, &chest_findings(), &passages());
    assert!(!v.passed());
    assert_eq!(v.missing_findings, vec!["Cardiomegaly"]);
    assert!(v
        .rejected_reason
        .as_deref()
        .is_some_and(|r| r.contains("Cardiomegaly")));
}

#[test]
fn a_negated_positive_counts_as_missing() {
    let mut s = sections(
        "No pleural effusion. Cardiomegaly.",
        "Cardiomegaly without effusion.",
    );
    let v = verify_report(&mut s, &chest_findings(), &passages());
    assert_eq!(v.missing_findings, vec!["Effusion"]);
}

#[test]
fn a_positive_stated_only_outside_findings_and_impression_is_missing() {
    let mut s = sections("Cardiomegaly.", "Cardiomegaly.");
    s.recommendations = "Pleural effusion: ultrasound.".into();
    let v = verify_report(&mut s, &chest_findings(), &passages());
    assert_eq!(v.missing_findings, vec!["Effusion"]);
}

#[test]
fn asserting_a_below_threshold_finding_rejects_the_draft() {
    let mut s = sections(
        "Pleural effusion and cardiomegaly. There is a small right apical pneumothorax.",
        "Effusion, cardiomegaly.",
    );
    let v = verify_report(&mut s, &chest_findings(), &passages());
    assert!(!v.passed());
    assert_eq!(v.asserted_negatives, vec!["Pneumothorax"]);
    assert!(v.missing_findings.is_empty());
}

#[test]
fn negated_and_hedged_mentions_of_negatives() {
    let ok = [
        "No pneumothorax.",
        "Pneumothorax is not seen.",
        "No evidence of pneumothorax or pulmonary nodule.",
        "Pneumothorax: not suggested by the model (p = 0.12, threshold 0.50).",
        "The model did not flag a nodule.",
    ];
    for neg in ok {
        let mut s = sections(
            &format!("Pleural effusion. Cardiomegaly. {neg}"),
            "Effusion; cardiomegaly.",
        );
        let v = verify_report(&mut s, &chest_findings(), &passages());
        assert!(v.passed(), "{neg}: {v:?}");
    }
    let bad = [
        "A pneumothorax is present.",
        "Possible pulmonary nodule in the right upper lobe.",
        "No consolidation, but a small pneumothorax.",
        "Pneumothorax cannot be excluded.",
        "No change in the left pneumothorax.",
    ];
    for asserted in bad {
        let mut s = sections(
            &format!("Pleural effusion. Cardiomegaly. {asserted}"),
            "Effusion; cardiomegaly.",
        );
        let v = verify_report(&mut s, &chest_findings(), &passages());
        assert!(!v.passed(), "{asserted} must be rejected");
        assert_eq!(v.asserted_negatives.len(), 1, "{asserted}");
    }
}

#[test]
fn model_names_are_not_mentions() {
    let mut f = chest_findings();
    for x in &mut f {
        x.model = "pneumothorax-nodule-net".into();
    }
    let mut s = sections(
        "Pleural effusion and cardiomegaly (pneumothorax-nodule-net 0.3.1).",
        "Effusion; cardiomegaly.",
    );
    assert!(verify_report(&mut s, &f, &passages()).passed());
}

#[test]
fn missing_sections_reject() {
    let mut s = sections("", "Effusion; cardiomegaly.");
    let v = verify_report(&mut s, &chest_findings(), &passages());
    assert!(!v.passed());
}

#[test]
fn explanation_is_verified_over_the_whole_text() {
    let mut t = "The software suggested fluid around the lung (pleural effusion, 82%) and an enlarged heart [PMID:12345678] [PMID:5]. It did not flag a pneumothorax.".to_string();
    let v = verify_text(&mut t, &chest_findings(), &passages());
    assert!(v.passed(), "{v:?}");
    assert_eq!(v.removed_citations, vec!["[PMID:5]"]);
    let mut t = "Pleural effusion and an enlarged heart. There may be a nodule.".to_string();
    let v = verify_text(&mut t, &chest_findings(), &passages());
    assert_eq!(v.asserted_negatives, vec!["Nodule"]);
}
