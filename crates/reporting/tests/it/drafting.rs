//! `draft` end to end against the stand-in endpoint.

use std::sync::Mutex;
use std::time::Duration;

use reporting::{
    draft, draft_with, DraftOptions, DraftPart, Drafter, Fallback, KeyImages, LlmClient, PngImage,
    Report, Writer, AI_DRAFT_LABEL, REPORT_PROMPT_VERSION,
};
use serde_json::json;

use crate::fixtures::{chest_case, chest_findings, config, passages};
use crate::stand_in::{Reply, StandIn};

fn good_draft() -> String {
    json!({
        "clinical_information": "67-year-old woman with dyspnoea.",
        "technique": "PA chest radiograph; demonstration model, not for clinical use.",
        "findings": "Pleural effusion suggested by the model (p = 0.82) [GL:pleural-effusion-2023]. Enlarged cardiac silhouette suggested (p = 0.71) [PMID:12345678]. No pneumothorax was suggested [PMID:31415926].",
        "impression": "Pleural effusion and cardiomegaly suggested by the model, for review.",
        "recommendations": "Consider ultrasound of the pleural space [GL:pleural-effusion-2023]."
    })
    .to_string()
}

const GOOD_EXPLANATION: &str = "The software suggested fluid around the lung (pleural effusion, 82%) and an enlarged heart (cardiomegaly, 71%) [PMID:12345678]. It did not flag a pneumothorax, which does not rule it out. The radiologist's signed report is the result that counts.";

async fn drafter(replies: Vec<Reply>) -> (StandIn, Drafter) {
    let server = StandIn::start(replies).await;
    let d = Drafter::with_llm(LlmClient::new(config(&server.base_url)).expect("client"));
    (server, d)
}

async fn run(replies: Vec<Reply>) -> (StandIn, Report) {
    let (server, d) = drafter(replies).await;
    let r = draft(&chest_case(), &chest_findings(), &passages(), &d).await;
    (server, r)
}

#[tokio::test]
async fn verified_llm_draft_is_used_and_an_invented_pmid_removed() {
    let (server, r) = run(vec![
        Reply::Text(format!("```json\n{}\n```", good_draft())),
        Reply::Text(GOOD_EXPLANATION.into()),
    ])
    .await;
    assert_eq!(r.writer, Writer::Llm, "{:?}", r.verification);
    assert_eq!(r.verification.removed_citations, vec!["[PMID:31415926]"]);
    assert!(!r.sections.findings.contains("31415926"));
    assert_eq!(r.model.as_deref(), Some("standin-model-2025"));
    assert_eq!(r.prompt_version.as_deref(), Some(REPORT_PROMPT_VERSION));
    assert_eq!(r.label, AI_DRAFT_LABEL);
    assert!(r.fallback.is_none());
    let ids: Vec<&str> = r.citations.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["GL:pleural-effusion-2023", "PMID:12345678"]);
    assert_eq!(r.explanation.writer, Writer::Llm);
    assert_eq!(r.explanation.prompt_version.as_deref(), Some("explain.v1"));
    assert_eq!(server.requests().len(), 2);
    assert!(server.requests()[1].body["messages"][0]["content"]
        .as_str()
        .expect("system")
        .contains("plain language"));
}

#[tokio::test]
async fn draft_omitting_a_positive_finding_falls_back_to_the_builtin_writer() {
    let bad = good_draft()
        .replace("Enlarged cardiac silhouette", "Heart size")
        .replace("and cardiomegaly ", "");
    let (_server, r) = run(vec![Reply::Text(bad), Reply::Text(GOOD_EXPLANATION.into())]).await;
    assert_eq!(r.writer, Writer::Builtin);
    assert_eq!(r.fallback, Some(Fallback::VerificationRejected));
    assert_eq!(r.verification.missing_findings, vec!["Cardiomegaly"]);
    assert!(r.verification.rejected_reason.is_some());
    assert!(r
        .sections
        .findings
        .contains("Cardiomegaly: suggested by the model (p = 0.71"));
    assert!(r.model.is_none());
    assert_eq!(r.builtin_version.as_deref(), Some("builtin.v1"));
    // The explanation was fine and stays the LLM's.
    assert_eq!(r.explanation.writer, Writer::Llm);
}

#[tokio::test]
async fn draft_asserting_a_negative_finding_falls_back() {
    let bad = good_draft().replace("No pneumothorax was suggested", "Small left pneumothorax");
    let explanation_bad = "Pleural effusion (82%) and cardiomegaly (71%); there is also a nodule.";
    let (_server, r) = run(vec![Reply::Text(bad), Reply::Text(explanation_bad.into())]).await;
    assert_eq!(r.writer, Writer::Builtin);
    assert_eq!(r.verification.asserted_negatives, vec!["Pneumothorax"]);
    assert_eq!(r.explanation.writer, Writer::Builtin);
    assert_eq!(
        r.explanation.verification.asserted_negatives,
        vec!["Nodule"]
    );
    assert_eq!(r.explanation.fallback, Some(Fallback::VerificationRejected));
}

#[tokio::test]
async fn answer_cut_off_at_the_token_limit_falls_back() {
    let (_s, r) = run(vec![
        Reply::Truncated(good_draft()),
        Reply::Text(GOOD_EXPLANATION.into()),
    ])
    .await;
    assert_eq!(r.writer, Writer::Builtin);
    assert!(r
        .verification
        .rejected_reason
        .as_deref()
        .is_some_and(|x| x.contains("max_tokens")));
    assert_eq!(r.explanation.writer, Writer::Llm);
}

#[tokio::test]
async fn unparseable_answer_falls_back() {
    let (_s, r) = run(vec![
        Reply::Text("I'm sorry, I can't help with that.".into()),
        Reply::Text(GOOD_EXPLANATION.into()),
    ])
    .await;
    assert_eq!(r.writer, Writer::Builtin);
    assert!(r.verification.rejected_reason.is_some());
}

#[tokio::test]
async fn transient_endpoint_failure_falls_back_and_is_reported_for_the_breaker() {
    let (server, r) = run(vec![Reply::Error(503, "server_error", "overloaded")]).await;
    assert_eq!(r.writer, Writer::Builtin);
    assert_eq!(
        r.fallback,
        Some(Fallback::LlmError {
            error: "server_error".into(),
            transient: true
        })
    );
    assert_eq!(r.llm_errors.len(), 1);
    assert!(r.llm_errors[0].is_transient());
    // The explanation does not hammer an endpoint that just failed.
    assert_eq!(server.requests().len(), 1);
    assert_eq!(r.explanation.writer, Writer::Builtin);
    assert!(r.verification.passed());
}

#[tokio::test]
async fn timeout_falls_back() {
    let server = StandIn::start(vec![Reply::Delay(
        Duration::from_secs(3),
        Box::new(Reply::Text(good_draft())),
    )])
    .await;
    let mut cfg = config(&server.base_url);
    cfg.timeout_secs = 0.3;
    let d = Drafter::with_llm(LlmClient::new(cfg).expect("client"));
    let r = draft(&chest_case(), &chest_findings(), &passages(), &d).await;
    assert_eq!(r.writer, Writer::Builtin);
    assert_eq!(
        r.fallback,
        Some(Fallback::LlmError {
            error: "timeout".into(),
            transient: true
        })
    );
}

#[tokio::test]
async fn open_breaker_means_no_request() {
    let (server, d) = drafter(vec![Reply::Text(good_draft())]).await;
    let r = draft_with(
        &chest_case(),
        &chest_findings(),
        &passages(),
        &d,
        DraftOptions {
            breaker_open: true,
            ..DraftOptions::default()
        },
    )
    .await;
    assert_eq!(r.writer, Writer::Builtin);
    assert_eq!(r.fallback, Some(Fallback::BreakerOpen));
    assert_eq!(r.explanation.fallback, Some(Fallback::BreakerOpen));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn streaming_draft_with_images_reports_tokens_per_part() {
    let mut deltas = Vec::new();
    let text = good_draft();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let n = rest.char_indices().nth(17).map_or(rest.len(), |(i, _)| i);
        deltas.push(rest[..n].to_string());
        rest = &rest[n..];
    }
    let server = StandIn::start(vec![
        Reply::Sse(deltas.clone()),
        Reply::Sse(vec![GOOD_EXPLANATION.into()]),
    ])
    .await;
    let mut cfg = config(&server.base_url);
    cfg.supports_images = true;
    let d = Drafter::with_llm(LlmClient::new(cfg).expect("client"));
    let images = KeyImages {
        key_image: PngImage {
            caption: "key image".into(),
            png: vec![1, 2, 3],
        },
        overlay: Some(PngImage {
            caption: "Grad-CAM overlay".into(),
            png: vec![4, 5, 6],
        }),
    };
    let seen = Mutex::new(Vec::<(DraftPart, String)>::new());
    let cb = |part: DraftPart, t: &str| seen.lock().expect("lock").push((part, t.to_string()));
    let r = draft_with(
        &chest_case(),
        &chest_findings(),
        &passages(),
        &d,
        DraftOptions {
            images: Some(&images),
            on_token: Some(&cb),
            ..DraftOptions::default()
        },
    )
    .await;
    assert_eq!(r.writer, Writer::Llm, "{:?}", r.verification);
    let seen = seen.into_inner().expect("lock");
    let report_tokens: Vec<String> = seen
        .iter()
        .filter(|(p, _)| *p == DraftPart::Report)
        .map(|(_, t)| t.clone())
        .collect();
    assert_eq!(report_tokens, deltas);
    assert!(seen.iter().any(|(p, _)| *p == DraftPart::Explanation));
    let reqs = server.requests();
    assert_eq!(reqs[0].body["stream"], true);
    let parts = reqs[0].body["messages"][1]["content"]
        .as_array()
        .expect("parts");
    assert_eq!(parts.iter().filter(|p| p["type"] == "image_url").count(), 2);
}

#[tokio::test]
async fn not_configured_uses_the_builtin_writer_and_the_contract_shape() {
    let d = Drafter::from_config(None).expect("drafter");
    let r = draft(&chest_case(), &chest_findings(), &passages(), &d).await;
    assert_eq!(r.writer, Writer::Builtin);
    assert_eq!(r.fallback, Some(Fallback::NotConfigured));
    let v = serde_json::to_value(&r).expect("json");
    assert_eq!(v["status"], "draft");
    assert_eq!(v["writer"], "builtin");
    assert_eq!(v["label"], "AI draft, requires review");
    for k in [
        "clinical_information",
        "technique",
        "findings",
        "impression",
        "recommendations",
    ] {
        assert!(v["sections"][k].is_string(), "{k}");
    }
    assert!(v["citations"].is_array());
    for k in [
        "removed_citations",
        "missing_findings",
        "asserted_negatives",
    ] {
        assert!(v["verification"][k].is_array(), "{k}");
    }
    assert!(v["verification"]["rejected_reason"].is_null());
    assert_eq!(v["fallback"]["reason"], "not_configured");
    assert!(v.get("llm_errors").is_none());
    assert_eq!(v["demo"], true);
    assert_eq!(v["explanation"]["writer"], "builtin");
    let back: Report = serde_json::from_value(v).expect("round trip");
    assert_eq!(back.sections, r.sections);
}
