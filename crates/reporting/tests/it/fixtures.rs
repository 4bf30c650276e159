//! Shared case data.

use reporting::{CaseContext, Finding, LlmConfig, ModelUse, Passage, Sex, SourceKind};
use secrecy::SecretString;

pub fn chest_case() -> CaseContext {
    CaseContext {
        age: Some(67),
        sex: Some(Sex::Female),
        history: Some("Dyspnoea for two weeks.".into()),
        modality: "DX".into(),
        body_part: "chest".into(),
        models: vec![ModelUse {
            model: "chexnet-demo".into(),
            model_version: "0.3.1".into(),
            intended_use:
                "Demonstration model trained on synthetic phantoms, not for clinical use.".into(),
        }],
    }
}

pub fn finding(label: &str, p: f32, t: f32) -> Finding {
    Finding {
        label: label.into(),
        probability: p,
        threshold: t,
        positive: p >= t,
        urgency: if p >= t {
            "urgent".into()
        } else {
            "routine".into()
        },
        model: "chexnet-demo".into(),
        model_version: "0.3.1".into(),
        study_id: Some("1.2.3".into()),
    }
}

/// Effusion and Cardiomegaly above threshold; Pneumothorax and Nodule below.
pub fn chest_findings() -> Vec<Finding> {
    vec![
        finding("Effusion", 0.82, 0.5),
        finding("Cardiomegaly", 0.71, 0.45),
        finding("Pneumothorax", 0.12, 0.5),
        finding("Nodule", 0.08, 0.4),
    ]
}

pub fn passages() -> Vec<Passage> {
    vec![
        Passage {
            id: "GL:pleural-effusion-2023".into(),
            source: SourceKind::Guideline,
            title: "Pleural effusion: imaging work-up".into(),
            year: Some(2023),
            url: Some("https://example.org/gl/effusion".into()),
            text: "A new unilateral pleural effusion warrants ultrasound and diagnostic thoracentesis when the cause is unclear. Small bilateral effusions with heart failure may be observed.".into(),
        },
        Passage {
            id: "PMID:12345678".into(),
            source: SourceKind::Literature,
            title: "Cardiothoracic ratio and cardiomegaly on chest radiographs".into(),
            year: Some(2019),
            url: Some("https://pubmed.ncbi.nlm.nih.gov/12345678/".into()),
            text: "Cardiomegaly defined by a cardiothoracic ratio above 0.5 on PA films correlates with echocardiographic dilatation.".into(),
        },
        Passage {
            id: "GL:fleischner-2017-solid".into(),
            source: SourceKind::Guideline,
            title: "Fleischner Society 2017: incidental solid nodules".into(),
            year: Some(2017),
            url: None,
            text: "Solid nodules under 6 mm in low-risk patients need no routine follow-up.".into(),
        },
    ]
}

pub fn config(base_url: &str) -> LlmConfig {
    LlmConfig {
        base_url: base_url.into(),
        model: "medvision-test-model".into(),
        api_key: Some(SecretString::from("sk-test-123".to_string())),
        timeout_secs: 5.0,
        connect_timeout_secs: 2.0,
        max_tokens: 777,
        ..LlmConfig::default()
    }
}
