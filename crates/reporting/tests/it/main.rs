//! One integration-test binary for `reporting`.

mod builtin_writer;
mod drafting;
mod fixtures;
mod llm_wire;
mod stand_in;
mod verification;
