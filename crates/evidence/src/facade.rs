//! [`Evidence`]: what the server calls. Ingests PubMed XML, guidelines and
//! signed reports into the vector store, and answers hybrid searches with
//! hits ready to cite. Every call blocks (embedding is CPU work and Qdrant
//! Edge is synchronous): async callers use `spawn_blocking`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::sparse::{terms, Bm25};
use crate::store::{
    Chunk, Collection, EdgeStore, Filter, Mode, OrgId, Point, ServerStore, SourceType, StoreHit,
    StoreQuery, VectorStore,
};
use crate::{guidelines, pubmed};

/// Chunks embedded and stored per round (bounded memory on large files).
const INGEST_BATCH: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct EvidenceConfig {
    /// gRPC address of a Qdrant server; `None`: Qdrant Edge under the data dir.
    pub qdrant_url: Option<String>,
    pub qdrant_api_key: Option<String>,
    /// Prefix of the server's collection names (e.g. `medvision_`).
    pub collection_prefix: String,
    /// Folder of the embedding model; `None`: [`crate::embed::default_model_dir`].
    pub model_dir: Option<PathBuf>,
}

impl EvidenceConfig {
    /// `MEDVISION_QDRANT_URL`, `MEDVISION_QDRANT_API_KEY`,
    /// `MEDVISION_QDRANT_PREFIX` (default `medvision_`), `MEDVISION_EMBEDDER_DIR`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self {
            qdrant_url: var("MEDVISION_QDRANT_URL"),
            qdrant_api_key: var("MEDVISION_QDRANT_API_KEY"),
            collection_prefix: var("MEDVISION_QDRANT_PREFIX")
                .unwrap_or_else(|| "medvision_".into()),
            model_dir: var("MEDVISION_EMBEDDER_DIR").map(PathBuf::from),
        }
    }
}

/// What an ingest call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestCounts {
    pub documents: usize,
    pub chunks: usize,
    /// Documents removed (MEDLINE `DeleteCitation`).
    pub deleted: usize,
    /// Records not indexed (book chapters, records without text).
    pub skipped: usize,
}

impl std::ops::AddAssign for IngestCounts {
    fn add_assign(&mut self, o: Self) {
        self.documents += o.documents;
        self.chunks += o.chunks;
        self.deleted += o.deleted;
        self.skipped += o.skipped;
    }
}

/// A signed report of one organisation, to be found again by its colleagues.
#[derive(Debug, Clone)]
pub struct SignedReport {
    pub org: OrgId,
    pub report_id: String,
    pub title: String,
    pub year: Option<i32>,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    /// (section name, text), e.g. ("Findings", "...").
    pub sections: Vec<(String, String)>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub text: String,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    /// Empty: literature and guidelines, plus reports when `org` is set.
    pub source_types: Vec<SourceType>,
    pub year_range: Option<(i32, i32)>,
    pub org: Option<OrgId>,
    pub top_k: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    /// Citation id: `PMID:…`, `GL:…` or `RPT:…`.
    pub id: String,
    pub chunk_id: String,
    pub source: SourceType,
    pub title: String,
    pub year: Option<i32>,
    /// Reciprocal-rank-fusion score (higher is better; comparable within one search).
    pub score: f32,
    pub passage: String,
    pub section: Option<String>,
    pub url: Option<String>,
    pub why_matched: String,
}

pub struct Evidence {
    store: Box<dyn VectorStore>,
    embedder: Embedder,
    bm25: Bm25,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evidence")
            .field("store", &self.store.backend())
            .finish()
    }
}

impl Evidence {
    /// Opens the store (Qdrant Edge under `dir/qdrant`, or the server of
    /// `cfg.qdrant_url`) and loads the embedding model.
    pub fn open(dir: &Path, cfg: &EvidenceConfig) -> Result<Self> {
        let model_dir = cfg
            .model_dir
            .clone()
            .unwrap_or_else(crate::embed::default_model_dir);
        let embedder = Embedder::load(&model_dir)?;
        let store: Box<dyn VectorStore> = match &cfg.qdrant_url {
            Some(url) => Box::new(ServerStore::connect(
                url,
                cfg.qdrant_api_key.as_deref(),
                &cfg.collection_prefix,
            )?),
            None => Box::new(EdgeStore::open(&dir.join("qdrant"))?),
        };
        Ok(Self::with_parts(store, embedder))
    }

    pub fn with_parts(store: Box<dyn VectorStore>, embedder: Embedder) -> Self {
        Self {
            store,
            embedder,
            bm25: Bm25::default(),
        }
    }

    pub fn store(&self) -> &dyn VectorStore {
        self.store.as_ref()
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// One PubMed / MEDLINE XML file: its articles replace earlier versions
    /// of the same PMIDs, its `DeleteCitation`s remove theirs.
    pub fn ingest_pubmed_xml(&self, path: &Path) -> Result<IngestCounts> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let set = pubmed::parse(std::io::BufReader::new(file), &path.display().to_string())?;
        self.ingest_parsed(set)
    }

    /// Every `*.xml` file of `dir`, in name order. Files are parsed one at a
    /// time: a bad file stops the run with its name, earlier ones stay in.
    pub fn ingest_pubmed_dir(&self, dir: &Path) -> Result<IngestCounts> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml") && p.is_file())
            .collect();
        paths.sort();
        let mut total = IngestCounts::default();
        for p in paths {
            total += self.ingest_pubmed_xml(&p)?;
        }
        Ok(total)
    }

    /// PubMed XML already in memory (e.g. an efetch answer).
    pub fn ingest_pubmed_str(&self, xml: &str, origin: &str) -> Result<IngestCounts> {
        self.ingest_parsed(pubmed::parse_str(xml, origin)?)
    }

    fn ingest_parsed(&self, set: pubmed::ParsedSet) -> Result<IngestCounts> {
        let mut counts = IngestCounts {
            skipped: set.skipped,
            ..Default::default()
        };
        let mut chunks = Vec::new();
        for a in &set.articles {
            let c = pubmed::chunk_article(a);
            if c.is_empty() {
                counts.skipped += 1;
            } else {
                counts.documents += 1;
                chunks.extend(c);
            }
        }
        counts.chunks = self.replace_documents(Collection::Literature, None, chunks)?;
        let deleted: Vec<String> = set.deleted.iter().map(|p| format!("PMID:{p}")).collect();
        self.store
            .delete_documents(Collection::Literature, None, &deleted)?;
        counts.deleted = deleted.len();
        Ok(counts)
    }

    /// Every guideline file of `dir`. All files are checked before anything
    /// is stored, so one bad file leaves the index as it was.
    pub fn ingest_guidelines(&self, dir: &Path) -> Result<IngestCounts> {
        self.ingest_guideline_set(&guidelines::load_dir(dir)?)
    }

    /// Guidelines already parsed (e.g. [`guidelines::starter`]).
    pub fn ingest_guideline_set(&self, all: &[guidelines::Guideline]) -> Result<IngestCounts> {
        let chunks: Vec<Chunk> = all.iter().flat_map(|g| g.chunks()).collect();
        let n = self.replace_documents(Collection::Guidelines, None, chunks)?;
        self.store.optimize()?;
        Ok(IngestCounts {
            documents: all.len(),
            chunks: n,
            ..Default::default()
        })
    }

    /// Indexes (or re-indexes) one signed report for its organisation only.
    pub fn index_signed_report(&self, r: &SignedReport) -> Result<IngestCounts> {
        if r.report_id.trim().is_empty() {
            return Err(Error::InvalidInput("report id is empty".into()));
        }
        let doc_id = format!("RPT:{}", r.report_id.trim());
        let lower = |v: &Option<String>| {
            v.iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        };
        let chunks: Vec<Chunk> = r
            .sections
            .iter()
            .filter(|(_, t)| !t.trim().is_empty())
            .map(|(name, text)| Chunk {
                chunk_id: format!("{doc_id}#{}", name.trim().to_lowercase().replace(' ', "-")),
                doc_id: doc_id.clone(),
                source: SourceType::Report,
                title: r.title.clone(),
                year: r.year,
                url: r.url.clone(),
                section: Some(name.clone()),
                passage: text.split_whitespace().collect::<Vec<_>>().join(" "),
                modalities: lower(&r.modality),
                body_parts: lower(&r.body_part),
                org: Some(r.org.clone()),
                extra: Default::default(),
            })
            .collect();
        if chunks.is_empty() {
            return Err(Error::InvalidInput(format!("report {doc_id} has no text")));
        }
        let n = self.replace_documents(Collection::Reports, Some(&r.org), chunks)?;
        Ok(IngestCounts {
            documents: 1,
            chunks: n,
            ..Default::default()
        })
    }

    pub fn remove_signed_report(&self, org: &OrgId, report_id: &str) -> Result<()> {
        self.store.delete_documents(
            Collection::Reports,
            Some(org),
            &[format!("RPT:{}", report_id.trim())],
        )
    }

    /// Embeds and stores `chunks`, first deleting whatever the same
    /// documents had, so a re-ingested document that lost a section loses
    /// its passage too. Embedding happens before any deletion: a failure
    /// there changes nothing.
    fn replace_documents(
        &self,
        collection: Collection,
        org: Option<&OrgId>,
        chunks: Vec<Chunk>,
    ) -> Result<usize> {
        let mut n = 0;
        // Batches never split a document, so its delete-then-upsert is whole.
        for batch in batches_by_document(chunks, INGEST_BATCH) {
            let points = self.points(batch)?;
            let mut docs: Vec<String> = points.iter().map(|p| p.chunk.doc_id.clone()).collect();
            docs.dedup();
            self.store.delete_documents(collection, org, &docs)?;
            self.store.upsert(collection, &points)?;
            n += points.len();
        }
        Ok(n)
    }

    fn points(&self, chunks: Vec<Chunk>) -> Result<Vec<Point>> {
        let texts: Vec<String> = chunks.iter().map(index_text).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let dense = self.embedder.embed(&refs)?;
        Ok(chunks
            .into_iter()
            .zip(dense)
            .zip(&texts)
            .map(|((chunk, dense), text)| Point {
                sparse: self.bm25.encode_document(text),
                chunk,
                dense,
            })
            .collect())
    }

    /// Hybrid search over the corpora the query allows; at most one passage
    /// per document (the best), best first.
    pub fn search(&self, q: &Query) -> Result<Vec<Hit>> {
        let text = q.text.trim();
        if text.is_empty() || text.chars().count() > 2000 {
            return Err(Error::InvalidInput(
                "query text must be 1 to 2000 characters".into(),
            ));
        }
        if q.top_k == 0 || q.top_k > 100 {
            return Err(Error::InvalidInput("top_k must be 1 to 100".into()));
        }
        let collections = collections_for(q)?;
        let dense = self.embedder.embed_one(text)?;
        let sparse = self.bm25.encode_query(text);
        let filter = Filter {
            modality: q.modality.clone().filter(|s| !s.trim().is_empty()),
            body_part: q.body_part.clone().filter(|s| !s.trim().is_empty()),
            source_types: Vec::new(),
            year_range: q.year_range,
            org: q.org.clone(),
        };
        let mut hits: Vec<StoreHit> = Vec::new();
        for c in collections {
            hits.extend(self.store.search(
                c,
                &StoreQuery {
                    dense: &dense,
                    sparse: &sparse,
                    filter: &filter,
                    // Room for several passages of one document.
                    limit: q.top_k * 3,
                    mode: Mode::Hybrid,
                    exact: false,
                },
            )?);
        }
        hits.sort_by(|a, b| {
            b.score.total_cmp(&a.score).then(
                b.dense_similarity
                    .unwrap_or(0.0)
                    .total_cmp(&a.dense_similarity.unwrap_or(0.0)),
            )
        });
        let query_terms: HashSet<String> = terms(text).into_iter().collect();
        let mut seen = HashSet::new();
        Ok(hits
            .into_iter()
            .filter(|h| seen.insert((h.chunk.source, h.chunk.doc_id.clone())))
            .take(q.top_k)
            .map(|h| to_hit(h, &query_terms, &filter))
            .collect())
    }
}

fn collections_for(q: &Query) -> Result<Vec<Collection>> {
    if q.source_types.is_empty() {
        let mut c = vec![Collection::Guidelines, Collection::Literature];
        if q.org.is_some() {
            c.push(Collection::Reports);
        }
        return Ok(c);
    }
    let mut c: Vec<Collection> = Vec::new();
    for s in &q.source_types {
        if *s == SourceType::Report && q.org.is_none() {
            return Err(Error::TenantRequired);
        }
        if !c.contains(&s.collection()) {
            c.push(s.collection());
        }
    }
    Ok(c)
}

/// What is embedded and BM25-indexed: the title gives every passage its
/// context (a Results paragraph rarely names the disease).
fn index_text(c: &Chunk) -> String {
    match &c.section {
        Some(s) => format!("{}. {}: {}", c.title, s, c.passage),
        None => format!("{}. {}", c.title, c.passage),
    }
}

fn batches_by_document(chunks: Vec<Chunk>, size: usize) -> Vec<Vec<Chunk>> {
    let mut out: Vec<Vec<Chunk>> = Vec::new();
    let mut cur: Vec<Chunk> = Vec::new();
    for c in chunks {
        let new_doc = cur.last().is_some_and(|l| l.doc_id != c.doc_id);
        if new_doc && cur.len() >= size {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn to_hit(h: StoreHit, query_terms: &HashSet<String>, f: &Filter) -> Hit {
    let c = h.chunk;
    let mut shared: Vec<String> = terms(&index_text(&c))
        .into_iter()
        .filter(|t| query_terms.contains(t))
        .collect();
    shared.sort();
    shared.dedup();
    let mut why = Vec::new();
    if !shared.is_empty() {
        why.push(format!("keywords: {}", shared.join(", ")));
    }
    if let Some(s) = h.dense_similarity {
        why.push(format!("semantic similarity {s:.2}"));
    }
    if let Some(m) = &f.modality {
        let m = m.to_ascii_lowercase();
        why.push(if c.modalities.contains(&m) {
            format!("modality {m}")
        } else {
            "applies to any modality".into()
        });
    }
    if let Some(b) = &f.body_part {
        let b = b.to_ascii_lowercase();
        why.push(if c.body_parts.contains(&b) {
            format!("body part {b}")
        } else {
            "applies to any body part".into()
        });
    }
    Hit {
        id: c.doc_id,
        chunk_id: c.chunk_id,
        source: c.source,
        title: c.title,
        year: c.year,
        score: h.score,
        passage: c.passage,
        section: c.section,
        url: c.url,
        why_matched: why.join("; "),
    }
}
