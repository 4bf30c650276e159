//! The MEDLINE / efetch XML importer on fixture files in the real format.

use evidence::pubmed::{chunk_article, parse, parse_str};
use evidence::Error;

use crate::common::fixtures;

fn open(name: &str) -> std::io::BufReader<std::fs::File> {
    let p = fixtures().join("pubmed").join(name);
    std::io::BufReader::new(std::fs::File::open(&p).expect("fixture exists"))
}

#[test]
fn efetch_article_set_yields_articles_with_all_fields() {
    let set = parse(open("efetch-chest.xml"), "efetch-chest.xml").expect("parses");
    assert_eq!(set.articles.len(), 2);
    assert_eq!(set.skipped, 1, "the PubmedBookArticle");
    assert!(set.deleted.is_empty());

    let a = &set.articles[0];
    assert_eq!(a.pmid, "99000001");
    assert!(a
        .title
        .starts_with("Adherence to follow-up recommendations"));
    assert_eq!(a.journal, "Journal of Synthetic Thoracic Imaging");
    assert_eq!(a.year, Some(2019), "from MedlineDate \"2019 Feb-Mar\"");
    assert_eq!(a.doi.as_deref(), Some("10.99999/jsti.2019.0001"));
    assert_eq!(
        a.mesh,
        vec![
            "Humans",
            "Solitary Pulmonary Nodule",
            "Tomography, X-Ray Computed"
        ]
    );
    let cats: Vec<_> = a
        .abstract_sections
        .iter()
        .map(|s| s.category.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        cats,
        [
            "BACKGROUND",
            "OBJECTIVE",
            "METHODS",
            "RESULTS",
            "CONCLUSIONS"
        ]
    );
    assert_eq!(
        a.abstract_sections[2].label.as_deref(),
        Some("MATERIALS AND METHODS")
    );
    // Entities and character references resolved, inline markup kept as text.
    let methods = &a.abstract_sections[2].text;
    assert!(methods.contains("size < 1 cm"), "{methods}");
    assert!(
        methods.contains("(n = 412 in the 6\u{2013}8 mm group)"),
        "{methods}"
    );
    let results = &a.abstract_sections[3].text;
    assert!(results.contains("P < .001"), "{results}");
    assert!(results.contains("103 mm3"), "{results}");

    let b = &set.articles[1];
    assert_eq!(b.pmid, "99000002");
    assert_eq!(b.year, Some(2021));
    assert_eq!(b.abstract_sections.len(), 1);
    assert!(b.abstract_sections[0].label.is_none());
    // The DOI comes from PubmedData's own ArticleIdList, not a reference's.
    assert_eq!(b.doi.as_deref(), Some("10.99999/serr.2021.0002"));
}

#[test]
fn structured_abstracts_chunk_by_section_with_citation_payload() {
    let set = parse(open("efetch-chest.xml"), "efetch-chest.xml").expect("parses");
    let chunks = chunk_article(&set.articles[0]);
    let sections: Vec<_> = chunks
        .iter()
        .map(|c| c.section.clone().unwrap_or_default())
        .collect();
    // BACKGROUND and OBJECTIVE read as one Background passage.
    assert_eq!(
        sections,
        ["Background", "Methods", "Results", "Conclusions"]
    );
    assert!(chunks[0]
        .passage
        .contains("Incidental solid pulmonary nodules"));
    assert!(chunks[0].passage.contains("To measure how often"));
    let c = &chunks[2];
    assert_eq!(c.chunk_id, "PMID:99000001#results");
    assert_eq!(c.doc_id, "PMID:99000001");
    assert_eq!(c.year, Some(2019));
    assert_eq!(
        c.url.as_deref(),
        Some("https://pubmed.ncbi.nlm.nih.gov/99000001/")
    );
    assert_eq!(c.extra["journal"], "Journal of Synthetic Thoracic Imaging");
    assert_eq!(c.extra["pmid"], "99000001");
    assert_eq!(c.extra["mesh"][1], "Solitary Pulmonary Nodule");
    assert_eq!(c.modalities, vec!["ct"]);
    assert_eq!(c.body_parts, vec!["chest"]);

    let unstructured = chunk_article(&set.articles[1]);
    assert_eq!(unstructured.len(), 1);
    assert_eq!(unstructured[0].section.as_deref(), Some("Abstract"));
    assert_eq!(unstructured[0].modalities, vec!["us", "cr", "dx"]);
}

#[test]
fn bare_medline_citation_documents_are_accepted() {
    let set = parse(open("medline-citation.xml"), "medline-citation.xml").expect("parses");
    assert_eq!(set.articles.len(), 1);
    let a = &set.articles[0];
    assert_eq!(a.pmid, "99000004");
    assert_eq!(a.year, Some(2020));
    let chunks = chunk_article(a);
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks[0].body_parts, vec!["head"]);
    assert_eq!(chunks[0].modalities, vec!["ct"]);
}

#[test]
fn update_files_carry_revisions_and_deletions() {
    let set = parse(open("medline-update.xml"), "medline-update.xml").expect("parses");
    assert_eq!(set.articles.len(), 1);
    assert_eq!(set.articles[0].pmid, "99000001");
    assert_eq!(set.deleted, vec!["99000002"]);
}

#[test]
fn other_xml_and_broken_xml_are_refused_by_name() {
    let err = parse(open("not-pubmed.xml"), "not-pubmed.xml").expect_err("refused");
    match &err {
        Error::Xml { origin, message } => {
            assert_eq!(origin, "not-pubmed.xml");
            assert!(message.contains("eSearchResult"), "{message}");
        }
        other => panic!("unexpected {other}"),
    }
    let err = parse(open("truncated.xml"), "truncated.xml").expect_err("refused");
    assert!(matches!(err, Error::Xml { .. }), "{err}");
    assert!(matches!(parse_str("", "empty"), Err(Error::Xml { .. })));
    assert!(matches!(
        parse_str(
            "<PubmedArticleSet><PubmedArticle>&bogus;</PubmedArticle></PubmedArticleSet>",
            "x"
        ),
        Err(Error::Xml { .. })
    ));
}
