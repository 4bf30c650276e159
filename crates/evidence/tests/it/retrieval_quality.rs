//! Retrieval quality on the starter corpus: labelled queries written from
//! findings (fixtures/retrieval/queries.json), real embeddings, Qdrant Edge,
//! the same `Evidence::search` the server calls. PubMed fixture articles are
//! indexed too, as distractors.

use serde::Deserialize;

use evidence::store::EdgeStore;
use evidence::{Evidence, Query};

use crate::common::{corpus_guidelines, fixtures, load_embedder};

#[derive(Deserialize)]
struct Labelled {
    text: String,
    modality: Option<String>,
    body_part: Option<String>,
    relevant: Vec<String>,
}

#[derive(Deserialize)]
struct Set {
    queries: Vec<Labelled>,
}

#[test]
fn recall_at_5_on_the_starter_corpus_is_at_least_0_9() {
    let Some(embedder) = load_embedder("recall_at_5_on_the_starter_corpus_is_at_least_0_9") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ev = Evidence::with_parts(
        Box::new(EdgeStore::open(dir.path()).expect("store")),
        embedder,
    );
    ev.ingest_guidelines(&corpus_guidelines())
        .expect("guidelines");
    let pm = fixtures().join("pubmed");
    for f in ["efetch-chest.xml", "medline-citation.xml"] {
        ev.ingest_pubmed_xml(&pm.join(f))
            .expect("pubmed distractors");
    }

    let text = std::fs::read_to_string(fixtures().join("retrieval/queries.json")).expect("queries");
    let set: Set = serde_json::from_str(&text).expect("queries parse");
    assert!(set.queries.len() >= 20);
    let (mut recall, mut rr, mut first) = (0.0, 0.0, 0usize);
    for q in &set.queries {
        let hits = ev
            .search(&Query {
                text: q.text.clone(),
                modality: q.modality.clone(),
                body_part: q.body_part.clone(),
                top_k: 5,
                ..Default::default()
            })
            .expect("search");
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        let found = q
            .relevant
            .iter()
            .filter(|r| ids.contains(&r.as_str()))
            .count();
        recall += found as f64 / q.relevant.len() as f64;
        let rank = ids.iter().position(|id| q.relevant.iter().any(|r| r == id));
        rr += rank.map_or(0.0, |r| 1.0 / (r as f64 + 1.0));
        first += usize::from(rank == Some(0));
        eprintln!(
            "{:>5}  {:<70} -> {}",
            rank.map_or("miss".to_string(), |r| format!("#{}", r + 1)),
            q.text,
            ids.join(" ")
        );
    }
    let n = set.queries.len() as f64;
    let (recall, mrr) = (recall / n, rr / n);
    eprintln!(
        "recall@5 {recall:.3}  MRR {mrr:.3}  top-1 {first}/{} over {} queries",
        set.queries.len(),
        set.queries.len()
    );
    assert!(recall >= 0.9, "recall@5 {recall:.3} below 0.9");
    // The right guideline should usually come first, not merely be in the five.
    assert!(mrr >= 0.75, "MRR {mrr:.3} below 0.75");
}
