//! LLM drafting with citation checks, the built-in template writer and PDF rendering.
//! Server-only; its implementation lands with the reporting issue.

pub mod pdf;
