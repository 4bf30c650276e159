//! LLM drafting with citation checks, the built-in template writer and PDF
//! rendering ([`pdf::render_report_pdf`]).
//!
//! Drafting needs no database and no web server: the server maps its rows into
//! [`CaseContext`], [`Finding`] and [`Passage`], builds one [`Drafter`] from
//! its [`LlmConfig`] (or none), and calls [`draft`] per case. The [`Report`]
//! it gets back is always usable: an LLM draft that passed verification, or
//! the deterministic built-in writer's.
//!
//! ```no_run
//! # async fn demo() -> Result<(), reporting::LlmError> {
//! use reporting::{draft, CaseContext, Drafter, LlmConfig};
//! let drafter = Drafter::from_config(Some(LlmConfig {
//!     base_url: "http://localhost:11434/v1".into(),
//!     model: "llama3.1".into(),
//!     ..LlmConfig::default()
//! }))?;
//! let ctx = CaseContext { modality: "DX".into(), body_part: "chest".into(), ..Default::default() };
//! let report = draft(&ctx, &[], &[], &drafter).await;
//! assert_eq!(report.label, "AI draft, requires review");
//! # Ok(()) }
//! ```

mod builtin;
mod draft;
mod llm;
pub mod pdf;
mod prompt;
mod report;
mod terms;
mod types;
mod verify;

pub use builtin::{builtin_explanation, builtin_report, BUILTIN_VERSION, DEMO_NOTICE};
pub use draft::{draft, draft_with, DraftOptions, DraftPart, Drafter, TokenSink};
pub use llm::{
    png_data_url, ChatPrompt, Completion, ErrorClass, LlmClient, LlmConfig, LlmError,
    MaxTokensField, TokenStream,
};
pub use prompt::{
    explain_prompt, parse_explanation, parse_report, report_prompt, EXPLAIN_PROMPT_VERSION,
    PROMPT_VERSION, REPORT_PROMPT_VERSION,
};
pub use report::{
    Citation, Explanation, Fallback, ModelRef, Report, ReportStatus, Sections, Writer,
    AI_DRAFT_LABEL,
};
pub use terms::{display_term, terms_for};
pub use types::{CaseContext, Finding, KeyImages, ModelUse, Passage, PngImage, Sex, SourceKind};
pub use verify::{verify_report, verify_text, Verification};
