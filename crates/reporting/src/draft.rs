//! `draft`: LLM if configured and allowed → verify → built-in writer on any failure.

use crate::builtin::{builtin_explanation, builtin_report, BUILTIN_VERSION};
use crate::llm::{ChatPrompt, Completion, LlmClient, LlmConfig, LlmError};
use crate::prompt::{
    explain_prompt, parse_explanation, parse_report, report_prompt, EXPLAIN_PROMPT_VERSION,
    REPORT_PROMPT_VERSION,
};
use crate::report::{
    Citation, Explanation, Fallback, ModelRef, Report, ReportStatus, Sections, Writer,
    AI_DRAFT_LABEL,
};
use crate::types::{CaseContext, Finding, KeyImages, Passage};
use crate::verify::{cited_ids, verify_report, verify_text, Verification};

/// Rejection reason of an answer cut off by the token limit.
const TRUNCATED: &str = "the answer was cut off at the token limit (max_tokens)";

/// Holds the LLM endpoint, if any. Build once, share across jobs.
#[derive(Debug, Clone, Default)]
pub struct Drafter {
    llm: Option<LlmClient>,
}

impl Drafter {
    /// No endpoint: the built-in writer only.
    pub fn builtin() -> Self {
        Self { llm: None }
    }

    pub fn with_llm(client: LlmClient) -> Self {
        Self { llm: Some(client) }
    }

    /// From configuration: `None`, or a config without a model, means built-in only.
    pub fn from_config(config: Option<LlmConfig>) -> Result<Self, LlmError> {
        match config {
            Some(c) if !c.model.trim().is_empty() => Ok(Self::with_llm(LlmClient::new(c)?)),
            _ => Ok(Self::builtin()),
        }
    }

    pub fn llm(&self) -> Option<&LlmClient> {
        self.llm.as_ref()
    }
}

/// Which text a streamed token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftPart {
    Report,
    Explanation,
}

/// Receives `(part, delta)` as the LLM streams.
pub type TokenSink<'a> = &'a (dyn Fn(DraftPart, &str) + Send + Sync);

/// Per-case options of [`draft_with`].
#[derive(Default, Clone, Copy)]
pub struct DraftOptions<'a> {
    /// The pipeline's circuit breaker is open: do not call the endpoint.
    pub breaker_open: bool,
    /// Key image and Grad-CAM overlay, sent when the model supports images.
    pub images: Option<&'a KeyImages>,
    /// Receives tokens as the LLM streams them (the request then uses SSE).
    pub on_token: Option<TokenSink<'a>>,
}

fn citations_of(texts: &[&str], passages: &[Passage]) -> Vec<Citation> {
    let mut ids: Vec<String> = Vec::new();
    for t in texts {
        for id in cited_ids(t) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids.iter()
        .filter_map(|id| passages.iter().find(|p| &p.id == id))
        .map(Citation::from)
        .collect()
}

async fn ask(
    client: &LlmClient,
    mut prompt: ChatPrompt,
    opts: &DraftOptions<'_>,
    part: DraftPart,
) -> Result<Completion, LlmError> {
    if let Some(images) = opts.images {
        if client.config().supports_images {
            prompt.images.push(images.key_image.clone());
            prompt.images.extend(images.overlay.iter().cloned());
        }
    }
    match opts.on_token {
        Some(cb) => {
            let f = move |t: &str| cb(part, t);
            client.chat_streaming(&prompt, &f).await
        }
        None => client.chat(&prompt).await,
    }
}

/// Why the endpoint is not asked, if it is not.
fn skip_reason(drafter: &Drafter, opts: &DraftOptions<'_>) -> Option<Fallback> {
    if drafter.llm.is_none() {
        Some(Fallback::NotConfigured)
    } else if opts.breaker_open {
        Some(Fallback::BreakerOpen)
    } else {
        None
    }
}

fn error_fallback(e: &LlmError) -> Fallback {
    Fallback::LlmError {
        error: e.code().to_string(),
        transient: e.is_transient(),
    }
}

/// Drafts the report and the explanation with default options.
pub async fn draft(
    ctx: &CaseContext,
    findings: &[Finding],
    passages: &[Passage],
    drafter: &Drafter,
) -> Report {
    draft_with(ctx, findings, passages, drafter, DraftOptions::default()).await
}

/// Drafts the report and the explanation: the LLM when configured and the
/// breaker is closed, verified; the built-in writer otherwise or on failure.
/// Never fails: the built-in writer always answers.
pub async fn draft_with(
    ctx: &CaseContext,
    findings: &[Finding],
    passages: &[Passage],
    drafter: &Drafter,
    opts: DraftOptions<'_>,
) -> Report {
    let mut llm_errors = Vec::new();

    // Report.
    let mut fallback = skip_reason(drafter, &opts);
    let mut llm_draft: Option<(Sections, Verification, String)> = None;
    let mut rejected: Option<Verification> = None;
    if let (None, Some(client)) = (&fallback, &drafter.llm) {
        let prompt = report_prompt(ctx, findings, passages);
        match ask(client, prompt, &opts, DraftPart::Report).await {
            Err(e) => {
                tracing::warn!(error = %e, class = ?e.class(), "LLM report draft failed");
                fallback = Some(error_fallback(&e));
                llm_errors.push(e);
            }
            Ok(c) if c.finish_reason.as_deref() == Some("length") => {
                fallback = Some(Fallback::VerificationRejected);
                rejected = Some(Verification::rejected(TRUNCATED));
            }
            Ok(c) => match parse_report(&c.text) {
                None => {
                    fallback = Some(Fallback::VerificationRejected);
                    rejected = Some(Verification::rejected(
                        "the answer has no parseable Findings and Impression",
                    ));
                }
                Some(mut sections) => {
                    let v = verify_report(&mut sections, findings, passages);
                    if v.passed() {
                        llm_draft = Some((sections, v, c.model));
                    } else {
                        tracing::info!(reason = ?v.rejected_reason, "LLM draft rejected");
                        fallback = Some(Fallback::VerificationRejected);
                        rejected = Some(v);
                    }
                }
            },
        }
    }
    let transient_failure = llm_errors.iter().any(LlmError::is_transient);

    let (sections, writer, verification, model, prompt_version, builtin_version) = match llm_draft {
        Some((s, v, m)) => (
            s,
            Writer::Llm,
            v,
            Some(m),
            Some(REPORT_PROMPT_VERSION.to_string()),
            None,
        ),
        None => {
            let mut s = builtin_report(ctx, findings, passages);
            let own = verify_report(&mut s, findings, passages);
            debug_assert!(own.passed() && own.removed_citations.is_empty());
            (
                s,
                Writer::Builtin,
                rejected.unwrap_or(own),
                None,
                None,
                Some(BUILTIN_VERSION.to_string()),
            )
        }
    };

    // Explanation: not asked again after a transient failure (the endpoint is down).
    let mut efallback = skip_reason(drafter, &opts);
    if efallback.is_none() && transient_failure {
        efallback = llm_errors.first().map(error_fallback);
    }
    let mut explanation: Option<Explanation> = None;
    let mut erejected: Option<Verification> = None;
    if let (None, Some(client)) = (&efallback, &drafter.llm) {
        let prompt = explain_prompt(ctx, findings, passages);
        match ask(client, prompt, &opts, DraftPart::Explanation).await {
            Err(e) => {
                tracing::warn!(error = %e, class = ?e.class(), "LLM explanation failed");
                efallback = Some(error_fallback(&e));
                llm_errors.push(e);
            }
            Ok(c) if c.finish_reason.as_deref() == Some("length") => {
                efallback = Some(Fallback::VerificationRejected);
                erejected = Some(Verification::rejected(TRUNCATED));
            }
            Ok(c) => match parse_explanation(&c.text) {
                None => {
                    efallback = Some(Fallback::VerificationRejected);
                    erejected = Some(Verification::rejected("empty explanation"));
                }
                Some(mut text) => {
                    let v = verify_text(&mut text, findings, passages);
                    if v.passed() {
                        explanation = Some(Explanation {
                            citations: citations_of(&[&text], passages),
                            text,
                            writer: Writer::Llm,
                            verification: v,
                            model: Some(c.model),
                            prompt_version: Some(EXPLAIN_PROMPT_VERSION.to_string()),
                            fallback: None,
                        });
                    } else {
                        efallback = Some(Fallback::VerificationRejected);
                        erejected = Some(v);
                    }
                }
            },
        }
    }
    let explanation = explanation.unwrap_or_else(|| {
        let mut text = builtin_explanation(ctx, findings, passages);
        let own = verify_text(&mut text, findings, passages);
        Explanation {
            citations: citations_of(&[&text], passages),
            text,
            writer: Writer::Builtin,
            verification: erejected.unwrap_or(own),
            model: None,
            prompt_version: None,
            fallback: efallback,
        }
    });

    let mut finding_models: Vec<ModelRef> = findings
        .iter()
        .map(|f| ModelRef {
            model: f.model.clone(),
            model_version: f.model_version.clone(),
        })
        .collect();
    finding_models.sort();
    finding_models.dedup();

    let texts: Vec<&str> = sections.iter().iter().map(|(_, t)| *t).collect();
    Report {
        status: ReportStatus::Draft,
        label: AI_DRAFT_LABEL.to_string(),
        citations: citations_of(&texts, passages),
        sections,
        writer,
        verification,
        model,
        prompt_version,
        builtin_version,
        finding_models,
        demo: ctx.uses_demo_model(),
        fallback: if writer == Writer::Llm {
            None
        } else {
            fallback
        },
        explanation,
        llm_errors,
    }
}
