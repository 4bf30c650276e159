//! Integration tests of the reporting crate (one binary, modules per feature).

mod fixtures;
mod pdf;
