//! One integration-test binary for `reporting`, modules per feature.

mod builtin_writer;
mod drafting;
mod fixtures;
mod llm_wire;
mod pdf;
mod pdf_fixtures;
mod stand_in;
mod verification;
