//! The built-in writer: passes its own verification on random finding sets,
//! states probabilities and model versions, and is byte-for-byte deterministic.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reporting::{
    builtin_explanation, builtin_report, display_term, draft, verify_report, verify_text,
    CaseContext, Drafter, Finding, ModelUse, Passage, Sex, SourceKind, Writer, DEMO_NOTICE,
};

use crate::fixtures::{chest_case, chest_findings, passages};

const CHEST: &[&str] = &[
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
];
const ICH: &[&str] = &[
    "any",
    "epidural",
    "intraparenchymal",
    "intraventricular",
    "subarachnoid",
    "subdural",
];
const BRATS: &[&str] = &["whole tumour", "tumour core", "enhancing tumour"];

fn random_case(rng: &mut StdRng) -> (CaseContext, Vec<Finding>, Vec<Passage>) {
    let (labels, modality, part, model) = match rng.gen_range(0..3) {
        0 => (CHEST, "DX", "chest", "chexnet-demo"),
        1 => (ICH, "CT", "head", "ich-effnet-b0"),
        _ => (BRATS, "MR", "brain", "segresnet-brats"),
    };
    let version = format!(
        "{}.{}.{}",
        rng.gen_range(0..3),
        rng.gen_range(0..10),
        rng.gen_range(0..10)
    );
    let mut chosen: Vec<&str> = labels.to_vec();
    chosen.shuffle(rng);
    chosen.truncate(rng.gen_range(0..=labels.len()));
    let findings: Vec<Finding> = chosen
        .iter()
        .map(|l| {
            let p: f32 = rng.gen();
            let t: f32 = rng.gen_range(0.05..0.95);
            Finding {
                label: (*l).to_string(),
                probability: p,
                threshold: t,
                positive: p >= t,
                urgency: ["critical", "urgent", "routine"][rng.gen_range(0..3)].to_string(),
                model: model.into(),
                model_version: version.clone(),
                study_id: None,
            }
        })
        .collect();
    // Passages that talk about random labels, some with junk citations in them.
    let n = rng.gen_range(0..6);
    let passages = (0..n)
        .map(|i| {
            let l = labels[rng.gen_range(0..labels.len())];
            let guideline = rng.gen_bool(0.5);
            Passage {
                id: if guideline {
                    format!("GL:topic-{i}")
                } else {
                    format!("PMID:{}", 10_000_000 + i)
                },
                source: if guideline {
                    SourceKind::Guideline
                } else {
                    SourceKind::Literature
                },
                title: format!("On {}", display_term(l)),
                year: Some(2000 + i as u16),
                url: None,
                text: format!(
                    "No {} was seen in most controls [3] (PMID 999). Follow-up of {} depends on size. More.",
                    display_term(l),
                    display_term(l)
                ),
            }
        })
        .collect();
    let demo = rng.gen_bool(0.5);
    let ctx = CaseContext {
        age: rng.gen_bool(0.7).then(|| rng.gen_range(1..100)),
        sex: [None, Some(Sex::Female), Some(Sex::Male), Some(Sex::Other)][rng.gen_range(0..4)],
        history: rng
            .gen_bool(0.5)
            .then(|| "Rule out pneumothorax [PMID:1]; fall.".to_string()),
        modality: modality.into(),
        body_part: part.into(),
        models: vec![ModelUse {
            model: model.into(),
            model_version: version,
            intended_use: if demo {
                "Demonstration model trained on synthetic phantoms, not for clinical use.".into()
            } else {
                "Triage support for adult studies.".into()
            },
        }],
    };
    (ctx, findings, passages)
}

#[test]
fn builtin_output_passes_verification_on_random_finding_sets() {
    let mut rng = StdRng::seed_from_u64(0x6d65_6476);
    let mut positives_seen = 0;
    for i in 0..600 {
        let (ctx, findings, passages) = random_case(&mut rng);
        let original = builtin_report(&ctx, &findings, &passages);
        let mut s = original.clone();
        let v = verify_report(&mut s, &findings, &passages);
        assert!(v.passed(), "case {i}: {v:?}\n{findings:#?}\n{s:#?}");
        assert!(v.removed_citations.is_empty(), "case {i}: {v:?}");
        assert_eq!(s, original, "verification changed the built-in text");

        let mut e = builtin_explanation(&ctx, &findings, &passages);
        let ve = verify_text(&mut e, &findings, &passages);
        assert!(ve.passed(), "case {i} explanation: {ve:?}\n{e}");
        assert!(ve.removed_citations.is_empty());

        for f in findings.iter().filter(|f| f.positive) {
            positives_seen += 1;
            let line = format!(
                "suggested by the model (p = {:.2}, threshold {:.2}; {} {};",
                f.probability, f.threshold, f.model, f.model_version
            );
            assert!(s.findings.contains(&line), "{line}\n{}", s.findings);
        }
        for f in findings.iter().filter(|f| !f.positive) {
            let line = format!(
                "not suggested by the model (p = {:.2}, threshold {:.2}).",
                f.probability, f.threshold
            );
            assert!(s.findings.contains(&line), "{line}");
        }
        assert_eq!(ctx.uses_demo_model(), s.technique.contains(DEMO_NOTICE));
        assert!(s.impression.contains("AI draft, requires review."));
    }
    assert!(positives_seen > 500, "{positives_seen}");
}

#[test]
fn builtin_output_is_deterministic_bytes() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..50 {
        let (ctx, mut findings, passages) = random_case(&mut rng);
        let a = serde_json::to_vec(&builtin_report(&ctx, &findings, &passages)).expect("json");
        let b = serde_json::to_vec(&builtin_report(&ctx, &findings, &passages)).expect("json");
        assert_eq!(a, b);
        // Input order of findings does not change the text.
        findings.reverse();
        let c = serde_json::to_vec(&builtin_report(&ctx, &findings, &passages)).expect("json");
        assert_eq!(a, c);
    }
}

#[tokio::test]
async fn builtin_report_reads_like_a_careful_draft() {
    let r = draft(
        &chest_case(),
        &chest_findings(),
        &passages(),
        &Drafter::builtin(),
    )
    .await;
    assert_eq!(r.writer, Writer::Builtin);
    let s = &r.sections;
    assert_eq!(
        s.clinical_information,
        "67-year-old female. History: Dyspnoea for two weeks."
    );
    assert!(s.technique.starts_with("DX of the chest."));
    assert!(s.technique.contains("chexnet-demo 0.3.1"));
    assert!(s.technique.contains(DEMO_NOTICE));
    assert_eq!(
        s.findings,
        "Pleural effusion: suggested by the model (p = 0.82, threshold 0.50; chexnet-demo 0.3.1; urgency urgent).\n\
         Cardiomegaly: suggested by the model (p = 0.71, threshold 0.45; chexnet-demo 0.3.1; urgency urgent).\n\
         Pulmonary nodule: not suggested by the model (p = 0.08, threshold 0.40).\n\
         Pneumothorax: not suggested by the model (p = 0.12, threshold 0.50)."
    );
    assert!(s.impression.starts_with(
        "AI-suggested for radiologist review: pleural effusion (p = 0.82), cardiomegaly (p = 0.71)."
    ));
    assert!(s
        .impression
        .contains("Sources on pleural effusion: [GL:pleural-effusion-2023]."));
    assert!(s
        .impression
        .contains("Sources on cardiomegaly: [PMID:12345678]."));
    // Top guideline on a positive finding, quoted with its citation; the nodule
    // guideline is not, since the model did not suggest a nodule.
    assert!(s.recommendations.starts_with(
        "Pleural effusion: imaging work-up (2023): A new unilateral pleural effusion warrants ultrasound and diagnostic thoracentesis when the cause is unclear. [GL:pleural-effusion-2023]"
    ));
    assert!(!s.recommendations.contains("fleischner"));
    let ids: Vec<&str> = r.citations.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["GL:pleural-effusion-2023", "PMID:12345678"]);
    assert!(r
        .explanation
        .text
        .contains("The software suggested pleural effusion (estimated probability 82%"));
    assert!(r.explanation.text.contains("did not flag pneumothorax"));
}
