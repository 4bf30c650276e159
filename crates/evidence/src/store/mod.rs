//! The vector store: one trait, two engines. [`EdgeStore`] keeps Qdrant Edge
//! shards in process (the default); [`ServerStore`] talks to a Qdrant server.
//! Both index the same points (a dense and a sparse vector plus the chunk as
//! payload) and run the same hybrid query: a dense and a sparse prefetch
//! fused by Qdrant's reciprocal rank fusion, under the same payload filter.

mod edge;
mod payload;
mod server;

pub use edge::EdgeStore;
pub use server::ServerStore;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sparse::SparseVector;

/// Named vectors in every collection.
pub(crate) const DENSE: &str = "dense";
pub(crate) const SPARSE: &str = "bm25";

/// The three corpora. Literature and guidelines are shared by every
/// organisation; signed reports belong to one organisation each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    Literature,
    Guidelines,
    Reports,
}

impl Collection {
    pub const ALL: [Collection; 3] = [
        Collection::Literature,
        Collection::Guidelines,
        Collection::Reports,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Collection::Literature => "literature",
            Collection::Guidelines => "guidelines",
            Collection::Reports => "reports",
        }
    }

    pub fn source(self) -> SourceType {
        match self {
            Collection::Literature => SourceType::Pubmed,
            Collection::Guidelines => SourceType::Guideline,
            Collection::Reports => SourceType::Report,
        }
    }
}

/// Where a passage comes from; also the `source` of a search hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    Pubmed,
    Guideline,
    Report,
}

impl SourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Pubmed => "pubmed",
            SourceType::Guideline => "guideline",
            SourceType::Report => "report",
        }
    }

    pub fn collection(self) -> Collection {
        match self {
            SourceType::Pubmed => Collection::Literature,
            SourceType::Guideline => Collection::Guidelines,
            SourceType::Report => Collection::Reports,
        }
    }
}

impl std::str::FromStr for SourceType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "pubmed" | "literature" => Ok(SourceType::Pubmed),
            "guideline" | "guidelines" => Ok(SourceType::Guideline),
            "report" | "reports" => Ok(SourceType::Report),
            other => Err(Error::InvalidInput(format!(
                "unknown source type {other:?} (pubmed, guideline, report)"
            ))),
        }
    }
}

/// An organisation (tenant) id. Non-empty, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgId(String);

impl OrgId {
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.is_empty() || t.len() > 128 {
            return Err(Error::InvalidInput(
                "organisation id must be 1 to 128 characters".into(),
            ));
        }
        Ok(Self(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrgId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<OrgId> for String {
    fn from(o: OrgId) -> String {
        o.0
    }
}

/// One indexed passage and everything a citation needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Unique per collection (and organisation), e.g. `PMID:31234567#results`.
    pub chunk_id: String,
    /// The citation id of the whole document: `PMID:…`, `GL:…`, `RPT:…`.
    pub doc_id: String,
    pub source: SourceType,
    pub title: String,
    pub year: Option<i32>,
    pub url: Option<String>,
    pub section: Option<String>,
    pub passage: String,
    /// Lower-case modality codes (`ct`, `mr`, `cr`, …); empty: any modality.
    pub modalities: Vec<String>,
    /// Lower-case body parts (`head`, `chest`, …); empty: any body part.
    pub body_parts: Vec<String>,
    /// Owner of a signed report; `None` for shared corpora.
    pub org: Option<OrgId>,
    /// Journal, issuing body, MeSH terms…; kept as-is in the payload.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A chunk with its vectors, ready to store.
#[derive(Debug, Clone)]
pub struct Point {
    pub chunk: Chunk,
    pub dense: Vec<f32>,
    pub sparse: SparseVector,
}

/// Payload filter. `None` / empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Keeps chunks tagged with this modality and chunks with no modality tag
    /// (general guidance applies to every modality).
    pub modality: Option<String>,
    /// Same rule as `modality`.
    pub body_part: Option<String>,
    pub source_types: Vec<SourceType>,
    /// Inclusive; chunks without a year are dropped when set.
    pub year_range: Option<(i32, i32)>,
    /// Required for the reports collection; ignored by shared corpora.
    pub org: Option<OrgId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Dense and sparse prefetches fused by reciprocal rank.
    Hybrid,
    Dense,
    Sparse,
}

#[derive(Debug, Clone)]
pub struct StoreQuery<'a> {
    pub dense: &'a [f32],
    pub sparse: &'a SparseVector,
    pub filter: &'a Filter,
    pub limit: usize,
    pub mode: Mode,
    /// Exhaustive dense search instead of HNSW (for recall measurements).
    pub exact: bool,
}

#[derive(Debug, Clone)]
pub struct StoreHit {
    pub chunk: Chunk,
    /// Fused (RRF) score in hybrid mode, else the similarity of the mode.
    pub score: f32,
    /// Cosine similarity of the chunk to the query's dense vector.
    pub dense_similarity: Option<f32>,
}

/// What every vector-store engine offers. Calls block: engines that are
/// asynchronous inside (the Qdrant server client) run their own runtime.
pub trait VectorStore: Send + Sync {
    fn backend(&self) -> &'static str;
    /// Inserts or replaces points by `chunk_id` (and organisation).
    fn upsert(&self, collection: Collection, points: &[Point]) -> Result<()>;
    /// Deletes every chunk of the given documents; `org` is required for
    /// reports and confines the deletion to that organisation.
    fn delete_documents(
        &self,
        collection: Collection,
        org: Option<&OrgId>,
        doc_ids: &[String],
    ) -> Result<()>;
    fn search(&self, collection: Collection, query: &StoreQuery<'_>) -> Result<Vec<StoreHit>>;
    /// Points in the collection (of `org` for reports).
    fn count(&self, collection: Collection, org: Option<&OrgId>) -> Result<usize>;
    /// Builds indexes after bulk loads; a no-op where the engine does it itself.
    fn optimize(&self) -> Result<()>;
}

/// Refuses what no engine may do: reports without an organisation, points in
/// the wrong collection, vectors of the wrong width.
pub(crate) fn validate_points(collection: Collection, points: &[Point]) -> Result<()> {
    for p in points {
        if p.chunk.source != collection.source() {
            return Err(Error::InvalidInput(format!(
                "chunk {} is a {} chunk, not for the {} collection",
                p.chunk.chunk_id,
                p.chunk.source.as_str(),
                collection.name()
            )));
        }
        if collection == Collection::Reports && p.chunk.org.is_none() {
            return Err(Error::TenantRequired);
        }
        if p.dense.len() != crate::embed::DIM || p.dense.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "chunk {}: dense vector must be {} finite numbers",
                p.chunk.chunk_id,
                crate::embed::DIM
            )));
        }
        if p.chunk.chunk_id.trim().is_empty() || p.chunk.passage.trim().is_empty() {
            return Err(Error::InvalidInput(
                "chunk id and passage must not be empty".into(),
            ));
        }
    }
    Ok(())
}

pub(crate) fn validate_query(collection: Collection, q: &StoreQuery<'_>) -> Result<()> {
    if collection == Collection::Reports && q.filter.org.is_none() {
        return Err(Error::TenantRequired);
    }
    if q.limit == 0 || q.limit > 1000 {
        return Err(Error::InvalidInput("limit must be 1 to 1000".into()));
    }
    if q.dense.len() != crate::embed::DIM {
        return Err(Error::InvalidInput(format!(
            "query vector must have {} dimensions",
            crate::embed::DIM
        )));
    }
    if let Some((a, b)) = q.filter.year_range {
        if a > b {
            return Err(Error::InvalidInput(format!("year range {a}..{b} is empty")));
        }
    }
    Ok(())
}

/// Point id: a stable 64-bit hash of organisation and chunk id, so the same
/// chunk re-ingested replaces itself and two organisations' report chunks
/// never collide.
pub(crate) fn point_id(chunk: &Chunk) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(
        chunk
            .org
            .as_ref()
            .map(OrgId::as_str)
            .unwrap_or("")
            .as_bytes(),
    );
    h.update([0u8]);
    h.update(chunk.chunk_id.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// How many candidates each prefetch brings to the fusion.
pub(crate) fn prefetch_limit(limit: usize) -> usize {
    (limit * 4).max(40)
}
