//! `Evidence` end to end on Qdrant Edge with the real embedding model.

use evidence::store::EdgeStore;
use evidence::{Error, Evidence, OrgId, Query, SignedReport, SourceType};

use crate::common::{corpus_guidelines, fixtures, load_embedder};

fn open(test: &str) -> Option<(tempfile::TempDir, Evidence)> {
    let embedder = load_embedder(test)?;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EdgeStore::open(dir.path()).expect("store");
    Some((dir, Evidence::with_parts(Box::new(store), embedder)))
}

fn query(text: &str) -> Query {
    Query {
        text: text.into(),
        top_k: 5,
        ..Default::default()
    }
}

#[test]
fn pubmed_xml_ingest_counts_replaces_revisions_and_applies_deletions() {
    let Some((_d, ev)) = open("pubmed_xml_ingest_counts_replaces_revisions_and_applies_deletions")
    else {
        return;
    };
    let pm = fixtures().join("pubmed");
    let c = ev
        .ingest_pubmed_xml(&pm.join("efetch-chest.xml"))
        .expect("ingest");
    assert_eq!((c.documents, c.chunks, c.skipped, c.deleted), (2, 5, 1, 0));
    let c = ev
        .ingest_pubmed_xml(&pm.join("medline-citation.xml"))
        .expect("ingest");
    assert_eq!((c.documents, c.chunks), (1, 4));
    let lit = evidence::store::Collection::Literature;
    assert_eq!(ev.store().count(lit, None).expect("count"), 9);

    let hits = ev
        .search(&Query {
            source_types: vec![SourceType::Pubmed],
            ..query("does ultrasound find pneumothorax missed on supine radiographs")
        })
        .expect("search");
    assert_eq!(hits[0].id, "PMID:99000002");
    assert_eq!(hits[0].source, SourceType::Pubmed);
    assert_eq!(hits[0].year, Some(2021));
    assert!(
        hits[0].why_matched.contains("pneumothorax"),
        "{}",
        hits[0].why_matched
    );

    // The update file revises 99000001 (four sections become one abstract)
    // and deletes 99000002.
    let c = ev
        .ingest_pubmed_xml(&pm.join("medline-update.xml"))
        .expect("ingest");
    assert_eq!((c.documents, c.chunks, c.deleted), (1, 1, 1));
    assert_eq!(ev.store().count(lit, None).expect("count"), 1 + 4);
    let hits = ev
        .search(&Query {
            source_types: vec![SourceType::Pubmed],
            ..query("pneumothorax ultrasound")
        })
        .expect("search");
    assert!(hits.iter().all(|h| h.id != "PMID:99000002"));

    // A file that is not PubMed XML changes nothing.
    let err = ev
        .ingest_pubmed_xml(&pm.join("not-pubmed.xml"))
        .expect_err("refused");
    assert!(matches!(err, Error::Xml { .. }));
    assert_eq!(ev.store().count(lit, None).expect("count"), 5);
}

#[test]
fn signed_reports_are_found_only_by_their_organisation() {
    let Some((_d, ev)) = open("signed_reports_are_found_only_by_their_organisation") else {
        return;
    };
    let a = OrgId::parse("org-a").expect("org");
    let b = OrgId::parse("org-b").expect("org");
    let report = SignedReport {
        org: a.clone(),
        report_id: "7".into(),
        title: "CT chest".into(),
        year: Some(2026),
        modality: Some("CT".into()),
        body_part: Some("chest".into()),
        sections: vec![
            (
                "Findings".into(),
                "Solid 7 mm nodule in the right upper lobe.".into(),
            ),
            (
                "Impression".into(),
                "Follow-up CT in 6 to 12 months.".into(),
            ),
        ],
        url: None,
    };
    let c = ev.index_signed_report(&report).expect("index");
    assert_eq!((c.documents, c.chunks), (1, 2));
    let q = |org: &OrgId| Query {
        org: Some(org.clone()),
        source_types: vec![SourceType::Report],
        ..query("right upper lobe nodule follow-up")
    };
    let hits = ev.search(&q(&a)).expect("search");
    assert_eq!(hits.len(), 1, "one hit per report");
    assert_eq!(hits[0].id, "RPT:7");
    assert!(ev.search(&q(&b)).expect("search").is_empty());
    let no_org = ev.search(&Query {
        source_types: vec![SourceType::Report],
        ..query("nodule")
    });
    assert!(matches!(no_org, Err(Error::TenantRequired)));
    ev.remove_signed_report(&b, "7").expect("no-op for b");
    assert_eq!(ev.search(&q(&a)).expect("search").len(), 1);
    ev.remove_signed_report(&a, "7").expect("remove");
    assert!(ev.search(&q(&a)).expect("search").is_empty());
}

#[test]
fn search_refuses_bad_queries() {
    let Some((_d, ev)) = open("search_refuses_bad_queries") else {
        return;
    };
    ev.ingest_guidelines(&corpus_guidelines()).expect("ingest");
    for bad in [
        Query {
            top_k: 0,
            ..query("nodule")
        },
        Query {
            top_k: 101,
            ..query("nodule")
        },
        query("   "),
        Query {
            year_range: Some((2024, 2001)),
            ..query("nodule")
        },
    ] {
        let r = ev.search(&bad);
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad:?}: {r:?}");
    }
    // Filters narrow: a year range that excludes every guideline finds none.
    let hits = ev
        .search(&Query {
            year_range: Some((1990, 2000)),
            ..query("pneumothorax")
        })
        .expect("search");
    assert!(hits.is_empty(), "{hits:?}");
    let hits = ev
        .search(&Query {
            modality: Some("mr".into()),
            body_part: Some("head".into()),
            top_k: 10,
            ..query("pneumothorax on chest radiograph")
        })
        .expect("search");
    assert!(
        hits.iter().all(|h| !h.id.contains("pneumothorax")),
        "{hits:?}"
    );
}
