//! One behaviour suite, run against every vector-store engine: Qdrant Edge
//! always, a Qdrant server when MEDVISION_QDRANT_URL reaches one.

use evidence::sparse::Bm25;
use evidence::store::{
    Chunk, Collection, EdgeStore, Filter, Mode, OrgId, Point, ServerStore, SourceType, StoreQuery,
    VectorStore,
};
use evidence::Error;

const DIM: usize = 384;

/// A unit vector mostly along `axis`, tilted towards `other` by `tilt`.
fn vector(axis: usize, other: usize, tilt: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[axis] = 1.0;
    v[other] += tilt;
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn chunk(source: SourceType, doc: &str, section: &str, passage: &str) -> Chunk {
    Chunk {
        chunk_id: format!("{doc}#{section}"),
        doc_id: doc.to_string(),
        source,
        title: format!("Title of {doc}"),
        year: Some(2020),
        url: None,
        section: Some(section.into()),
        passage: passage.into(),
        modalities: vec![],
        body_parts: vec![],
        org: None,
        extra: Default::default(),
    }
}

fn point(c: Chunk, dense: Vec<f32>) -> Point {
    let sparse = Bm25::default().encode_document(&c.passage);
    Point {
        chunk: c,
        dense,
        sparse,
    }
}

fn search(
    s: &dyn VectorStore,
    c: Collection,
    dense: &[f32],
    text: &str,
    filter: &Filter,
    mode: Mode,
) -> Result<Vec<String>, Error> {
    let sparse = Bm25::default().encode_query(text);
    Ok(s.search(
        c,
        &StoreQuery {
            dense,
            sparse: &sparse,
            filter,
            limit: 10,
            mode,
            exact: true,
        },
    )?
    .into_iter()
    .map(|h| h.chunk.chunk_id)
    .collect())
}

fn org(s: &str) -> OrgId {
    OrgId::parse(s).expect("valid org")
}

/// The behaviour every engine must show.
pub fn behaviour_suite(s: &dyn VectorStore) {
    upsert_replaces_and_delete_removes_whole_documents(s);
    filters_by_modality_body_part_source_and_year(s);
    reports_are_isolated_per_organisation(s);
    hybrid_fusion_ranks_agreement_above_either_retriever(s);
    bad_points_are_refused_and_change_nothing(s);
}

fn upsert_replaces_and_delete_removes_whole_documents(s: &dyn VectorStore) {
    let c = Collection::Literature;
    let a1 = point(
        chunk(SourceType::Pubmed, "PMID:1", "background", "first text"),
        vector(0, 1, 0.0),
    );
    let a2 = point(
        chunk(SourceType::Pubmed, "PMID:1", "results", "second text"),
        vector(1, 0, 0.0),
    );
    let b = point(
        chunk(SourceType::Pubmed, "PMID:2", "results", "other paper"),
        vector(2, 0, 0.0),
    );
    s.upsert(c, &[a1.clone(), a2, b]).expect("upsert");
    assert_eq!(s.count(c, None).expect("count"), 3);

    let mut revised = a1.clone();
    revised.chunk.passage = "revised text".into();
    s.upsert(c, &[revised]).expect("upsert again");
    assert_eq!(
        s.count(c, None).expect("count"),
        3,
        "same chunk id replaces"
    );
    let hits = s
        .search(
            c,
            &StoreQuery {
                dense: &a1.dense,
                sparse: &Bm25::default().encode_query("revised"),
                filter: &Filter::default(),
                limit: 1,
                mode: Mode::Dense,
                exact: true,
            },
        )
        .expect("search");
    assert_eq!(hits[0].chunk.passage, "revised text");
    let sim = hits[0].dense_similarity.expect("dense vector returned");
    assert!((sim - 1.0).abs() < 1e-4, "similarity to itself {sim}");

    s.delete_documents(c, None, &["PMID:1".into()])
        .expect("delete");
    assert_eq!(s.count(c, None).expect("count"), 1);
    let left = search(
        s,
        c,
        &vector(0, 1, 0.0),
        "text",
        &Filter::default(),
        Mode::Dense,
    )
    .expect("search");
    assert_eq!(left, vec!["PMID:2#results"]);
    s.delete_documents(c, None, &["PMID:2".into()])
        .expect("delete");
    assert_eq!(s.count(c, None).expect("count"), 0);
}

fn filters_by_modality_body_part_source_and_year(s: &dyn VectorStore) {
    let c = Collection::Guidelines;
    let mut ct = chunk(
        SourceType::Guideline,
        "GL:ct-chest",
        "a",
        "nodule follow up",
    );
    ct.modalities = vec!["ct".into()];
    ct.body_parts = vec!["chest".into()];
    ct.year = Some(2017);
    let mut mr = chunk(SourceType::Guideline, "GL:mr-head", "a", "glioma response");
    mr.modalities = vec!["mr".into()];
    mr.body_parts = vec!["head".into()];
    mr.year = Some(2023);
    let mut general = chunk(SourceType::Guideline, "GL:general", "a", "report wording");
    general.year = None;
    s.upsert(
        c,
        &[
            point(ct, vector(10, 11, 0.1)),
            point(mr, vector(10, 12, 0.2)),
            point(general, vector(10, 13, 0.3)),
        ],
    )
    .expect("upsert");
    let q = vector(10, 11, 0.0);
    let run = |f: Filter| {
        let mut ids = search(s, c, &q, "", &f, Mode::Dense).expect("search");
        ids.sort();
        ids
    };
    assert_eq!(run(Filter::default()).len(), 3);
    // Untagged guidance applies to every modality and body part.
    assert_eq!(
        run(Filter {
            modality: Some("CT".into()),
            ..Default::default()
        }),
        vec!["GL:ct-chest#a", "GL:general#a"]
    );
    assert_eq!(
        run(Filter {
            body_part: Some("head".into()),
            ..Default::default()
        }),
        vec!["GL:general#a", "GL:mr-head#a"]
    );
    assert_eq!(
        run(Filter {
            year_range: Some((2020, 2025)),
            ..Default::default()
        }),
        vec!["GL:mr-head#a"]
    );
    assert!(run(Filter {
        source_types: vec![SourceType::Pubmed],
        ..Default::default()
    })
    .is_empty());
    assert_eq!(
        run(Filter {
            source_types: vec![SourceType::Guideline],
            modality: Some("mr".into()),
            body_part: Some("head".into()),
            ..Default::default()
        }),
        vec!["GL:general#a", "GL:mr-head#a"]
    );
    let bad = s.search(
        c,
        &StoreQuery {
            dense: &q,
            sparse: &Default::default(),
            filter: &Filter {
                year_range: Some((2025, 2020)),
                ..Default::default()
            },
            limit: 5,
            mode: Mode::Dense,
            exact: true,
        },
    );
    assert!(matches!(bad, Err(Error::InvalidInput(_))), "{bad:?}");
    s.delete_documents(
        c,
        None,
        &[
            "GL:ct-chest".into(),
            "GL:mr-head".into(),
            "GL:general".into(),
        ],
    )
    .expect("clean up");
}

fn reports_are_isolated_per_organisation(s: &dyn VectorStore) {
    let c = Collection::Reports;
    let (a, b) = (org("hospital-a"), org("hospital-b"));
    // The same report id and text in two organisations: two separate points.
    let report = |o: &OrgId, text: &str| {
        let mut ch = chunk(SourceType::Report, "RPT:42", "impression", text);
        ch.org = Some(o.clone());
        point(ch, vector(20, 21, 0.0))
    };
    s.upsert(c, &[report(&a, "pneumothorax left apex, hospital a")])
        .expect("upsert a");
    s.upsert(c, &[report(&b, "pneumothorax left apex, hospital b")])
        .expect("upsert b");
    assert_eq!(s.count(c, Some(&a)).expect("count"), 1);
    assert_eq!(s.count(c, Some(&b)).expect("count"), 1);

    let as_org = |o: &OrgId| {
        let f = Filter {
            org: Some(o.clone()),
            ..Default::default()
        };
        s.search(
            c,
            &StoreQuery {
                dense: &vector(20, 21, 0.0),
                sparse: &Bm25::default().encode_query("pneumothorax hospital"),
                filter: &f,
                limit: 10,
                mode: Mode::Hybrid,
                exact: true,
            },
        )
        .expect("search")
    };
    let hits = as_org(&a);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chunk.org.as_ref(), Some(&a));
    assert!(hits[0].chunk.passage.ends_with("hospital a"));

    // No organisation: no access to any report, whatever the query.
    let anon = s.search(
        c,
        &StoreQuery {
            dense: &vector(20, 21, 0.0),
            sparse: &Default::default(),
            filter: &Filter::default(),
            limit: 10,
            mode: Mode::Dense,
            exact: true,
        },
    );
    assert!(matches!(anon, Err(Error::TenantRequired)), "{anon:?}");
    assert!(matches!(s.count(c, None), Err(Error::TenantRequired)));
    assert!(matches!(
        s.delete_documents(c, None, &["RPT:42".into()]),
        Err(Error::TenantRequired)
    ));

    // Deleting in one organisation leaves the other's report alone.
    s.delete_documents(c, Some(&a), &["RPT:42".into()])
        .expect("delete");
    assert_eq!(s.count(c, Some(&a)).expect("count"), 0);
    assert_eq!(as_org(&b).len(), 1);
    s.delete_documents(c, Some(&b), &["RPT:42".into()])
        .expect("delete");
}

fn hybrid_fusion_ranks_agreement_above_either_retriever(s: &dyn VectorStore) {
    let c = Collection::Literature;
    let q = vector(30, 31, 0.0);
    // dense ranks: semantic 1st, agree 2nd, keyword 8th
    // sparse ranks: keyword 1st (both terms), agree 2nd (one), semantic absent
    // RRF (k = 60): agree 2/62 > keyword 1/61 + 1/68 > semantic 1/61
    let mut pts = vec![
        point(
            chunk(
                SourceType::Pubmed,
                "PMID:10",
                "a",
                "unrelated wording entirely",
            ),
            vector(30, 31, 0.05),
        ),
        point(
            chunk(
                SourceType::Pubmed,
                "PMID:11",
                "a",
                "fleischner subsolid nodule guidance",
            ),
            vector(32, 30, 0.1),
        ),
        point(
            chunk(SourceType::Pubmed, "PMID:12", "a", "subsolid lesion seen"),
            vector(30, 33, 0.4),
        ),
        point(
            chunk(SourceType::Pubmed, "PMID:13", "a", "cardiac silhouette"),
            vector(34, 30, 0.05),
        ),
    ];
    // Dense-only fillers between PMID:12 and PMID:11, so that the keyword
    // winner ranks low (8th) in the dense list and fusion has to choose.
    for i in 0..5 {
        pts.push(point(
            chunk(
                SourceType::Pubmed,
                &format!("PMID:{}", 100 + i),
                "a",
                "filler words only",
            ),
            vector(30, 35 + i, 0.6 + 0.1 * i as f32),
        ));
    }
    s.upsert(c, &pts).expect("upsert");
    let text = "fleischner subsolid";
    let f = Filter::default();
    let dense = search(s, c, &q, text, &f, Mode::Dense).expect("dense");
    let sparse = search(s, c, &q, text, &f, Mode::Sparse).expect("sparse");
    let hybrid = search(s, c, &q, text, &f, Mode::Hybrid).expect("hybrid");
    assert_eq!(dense[..2], ["PMID:10#a", "PMID:12#a"], "dense {dense:?}");
    assert_eq!(sparse[..2], ["PMID:11#a", "PMID:12#a"], "sparse {sparse:?}");
    assert!(!sparse.contains(&"PMID:10#a".to_string()), "no shared term");
    // Second in both lists beats first in one: reciprocal rank fusion.
    assert_eq!(hybrid[0], "PMID:12#a", "hybrid {hybrid:?}");
    assert!(hybrid[..3].contains(&"PMID:10#a".to_string()));
    assert!(hybrid[..3].contains(&"PMID:11#a".to_string()));
    s.delete_documents(
        c,
        None,
        &[
            "PMID:10", "PMID:11", "PMID:12", "PMID:13", "PMID:100", "PMID:101", "PMID:102",
            "PMID:103", "PMID:104",
        ]
        .map(String::from),
    )
    .expect("clean up");
}

fn bad_points_are_refused_and_change_nothing(s: &dyn VectorStore) {
    let c = Collection::Literature;
    let good = point(
        chunk(SourceType::Pubmed, "PMID:20", "a", "fine"),
        vector(40, 41, 0.0),
    );
    let short = point(
        chunk(SourceType::Pubmed, "PMID:21", "a", "short vector"),
        vec![0.5; 10],
    );
    let err = s.upsert(c, &[good.clone(), short]).expect_err("refused");
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    let wrong = point(
        chunk(SourceType::Guideline, "GL:x", "a", "guideline text"),
        vector(42, 41, 0.0),
    );
    assert!(matches!(s.upsert(c, &[wrong]), Err(Error::InvalidInput(_))));
    let orphan = point(
        chunk(SourceType::Report, "RPT:1", "a", "no organisation"),
        vector(43, 41, 0.0),
    );
    assert!(matches!(
        s.upsert(Collection::Reports, &[orphan]),
        Err(Error::TenantRequired)
    ));
    assert_eq!(s.count(c, None).expect("count"), 0, "nothing stored");
}

#[test]
fn qdrant_edge_passes_the_store_behaviour_suite_and_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = EdgeStore::open(dir.path()).expect("open");
        behaviour_suite(&store);
        let keep = point(
            chunk(SourceType::Pubmed, "PMID:99", "a", "kept across reopen"),
            vector(50, 51, 0.0),
        );
        store
            .upsert(Collection::Literature, &[keep])
            .expect("upsert");
    }
    let reopened = EdgeStore::open(dir.path()).expect("reopen");
    assert_eq!(
        reopened.count(Collection::Literature, None).expect("count"),
        1
    );
    let hits = search(
        &reopened,
        Collection::Literature,
        &vector(50, 51, 0.0),
        "kept",
        &Filter::default(),
        Mode::Hybrid,
    )
    .expect("search");
    assert_eq!(hits, vec!["PMID:99#a"]);
}

#[test]
fn qdrant_server_passes_the_store_behaviour_suite() {
    let Some(url) = std::env::var("MEDVISION_QDRANT_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        crate::common::skip_notice(
            "\n*** SKIPPED qdrant_server_passes_the_store_behaviour_suite: \
             MEDVISION_QDRANT_URL is not set (point it at a Qdrant server's gRPC port). ***\n",
        );
        return;
    };
    // A fresh set of collections per run, so runs never see each other's points.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let prefix = format!("mvtest_{}_{nanos}_", std::process::id());
    let store = match ServerStore::connect(
        &url,
        std::env::var("MEDVISION_QDRANT_API_KEY").ok().as_deref(),
        &prefix,
    ) {
        Ok(s) => s,
        Err(e) => {
            crate::common::skip_notice(format!(
                "\n*** SKIPPED qdrant_server_passes_the_store_behaviour_suite: \
                 no Qdrant server reachable at {url}: {e} ***\n"
            ));
            return;
        }
    };
    behaviour_suite(&store);
}
