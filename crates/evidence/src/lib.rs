//! Evidence retrieval for MedVision: sentence embeddings (all-MiniLM-L6-v2 in
//! candle), a vector store (Qdrant Edge in process, or a Qdrant server), the
//! PubMed E-utilities client and MEDLINE XML importer, and the guideline
//! corpus. [`Evidence`] is the facade the server calls:
//!
//! ```no_run
//! # fn main() -> evidence::Result<()> {
//! use evidence::{Evidence, EvidenceConfig, Query};
//! let ev = Evidence::open("data".as_ref(), &EvidenceConfig::from_env())?;
//! ev.ingest_guidelines("corpus/guidelines".as_ref())?;
//! let hits = ev.search(&Query {
//!     text: "8 mm solid nodule incidental CT follow-up".into(),
//!     modality: Some("ct".into()),
//!     top_k: 5,
//!     ..Default::default()
//! })?;
//! for h in hits {
//!     println!("[{}] {} ({:?}) {}", h.id, h.title, h.year, h.why_matched);
//! }
//! # Ok(()) }
//! ```
//!
//! Server-only: candle and Qdrant never reach the wasm build.

pub mod embed;
pub mod error;
mod facade;
pub mod guidelines;
pub mod pubmed;
pub mod sparse;
pub mod store;

pub use error::{Error, Result};
pub use facade::{Evidence, EvidenceConfig, Hit, IngestCounts, Query, SignedReport};
pub use store::{OrgId, SourceType};
