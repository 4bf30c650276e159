//! The draft report as stored and served (`GET /api/v1/cases/{id}/report`).

use serde::{Deserialize, Serialize};

use crate::llm::LlmError;
use crate::types::{Passage, SourceKind};
use crate::verify::Verification;

/// Every draft carries this label until a radiologist signs it.
pub const AI_DRAFT_LABEL: &str = "AI draft, requires review";

/// The standard report sections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sections {
    pub clinical_information: String,
    pub technique: String,
    pub findings: String,
    pub impression: String,
    pub recommendations: String,
}

impl Sections {
    /// `(name, text)` in report order.
    pub fn iter(&self) -> [(&'static str, &str); 5] {
        [
            ("Clinical information", &self.clinical_information),
            ("Technique", &self.technique),
            ("Findings", &self.findings),
            ("Impression", &self.impression),
            ("Recommendations", &self.recommendations),
        ]
    }

    pub fn iter_mut(&mut self) -> [&mut String; 5] {
        [
            &mut self.clinical_information,
            &mut self.technique,
            &mut self.findings,
            &mut self.impression,
            &mut self.recommendations,
        ]
    }
}

/// Who wrote the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Writer {
    Llm,
    Builtin,
}

/// Report status; drafting only makes drafts, the app signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    Draft,
    Signed,
}

/// Why the built-in writer produced the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Fallback {
    /// No LLM endpoint is configured.
    NotConfigured,
    /// The caller's circuit breaker is open.
    BreakerOpen,
    /// The endpoint failed; `error` is [`LlmError::code`].
    LlmError { error: String, transient: bool },
    /// The LLM's draft failed verification (see `verification.rejected_reason`).
    VerificationRejected,
}

/// A source the text cites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    pub id: String,
    pub source: SourceKind,
    pub title: String,
    pub year: Option<u16>,
    pub url: Option<String>,
}

impl From<&Passage> for Citation {
    fn from(p: &Passage) -> Self {
        Self {
            id: p.id.clone(),
            source: p.source,
            title: p.title.clone(),
            year: p.year,
            url: p.url.clone(),
        }
    }
}

/// A model that produced findings on the case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModelRef {
    pub model: String,
    pub model_version: String,
}

/// Plain-language explanation for the referring doctor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub text: String,
    pub writer: Writer,
    pub verification: Verification,
    pub citations: Vec<Citation>,
    /// LLM model id when `writer` is `llm`.
    pub model: Option<String>,
    pub prompt_version: Option<String>,
    pub fallback: Option<Fallback>,
}

/// A verified draft report.
///
/// `verification` describes the check of the LLM's draft when one was made
/// (what was removed, what was missing, why it was rejected); when no LLM was
/// asked it is the built-in writer's own (clean) check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub status: ReportStatus,
    /// Always [`AI_DRAFT_LABEL`].
    pub label: String,
    pub sections: Sections,
    /// Sources cited in `sections`, in order of first citation.
    pub citations: Vec<Citation>,
    pub writer: Writer,
    pub verification: Verification,
    /// LLM model id when `writer` is `llm`.
    pub model: Option<String>,
    /// Prompt template version when `writer` is `llm` (e.g. `report.v1`).
    pub prompt_version: Option<String>,
    /// Version of the built-in writer when `writer` is `builtin`.
    pub builtin_version: Option<String>,
    /// The models whose findings the report states.
    pub finding_models: Vec<ModelRef>,
    /// True when a demonstration model contributed.
    pub demo: bool,
    pub fallback: Option<Fallback>,
    pub explanation: Explanation,
    /// Endpoint failures during this draft, for the pipeline's circuit breaker.
    /// Not serialised: endpoint text never reaches a client.
    #[serde(skip)]
    pub llm_errors: Vec<LlmError>,
}
