//! One integration-test binary for the evidence crate.

mod common;
mod embed_parity;
mod eutils;
mod facade;
mod guidelines;
mod pubmed_xml;
mod retrieval_quality;
mod store_suite;
