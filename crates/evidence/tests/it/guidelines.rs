//! The guideline files: the committed starter corpus parses, and bad files
//! are refused by name.

use evidence::guidelines::{load_dir, parse, starter, starter_fingerprint};
use evidence::Error;

use crate::common::corpus_guidelines;

#[test]
fn the_starter_corpus_parses_into_several_passages_per_guideline() {
    let all = load_dir(&corpus_guidelines()).expect("corpus parses");
    let ids: Vec<_> = all.iter().map(|g| g.meta.id.as_str()).collect();
    for want in [
        "fleischner-2017",
        "ich-ct-triage",
        "acr-head-trauma",
        "bts-pneumothorax",
        "bts-pleural-effusion",
        "cardiomegaly-cxr",
        "who-cns5-2021",
        "rano-response",
        "acr-chest-radiography",
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    for g in &all {
        let chunks = g.chunks();
        assert!(
            chunks.len() >= 3,
            "{} has {} passages",
            g.meta.id,
            chunks.len()
        );
        assert!(!g.meta.sources.is_empty(), "{} names no source", g.meta.id);
        for c in &chunks {
            assert_eq!(c.doc_id, format!("GL:{}", g.meta.id));
            assert!(c.chunk_id.starts_with(&c.doc_id));
            assert!(
                c.passage.split_whitespace().count() <= 180,
                "{}",
                c.chunk_id
            );
            assert_eq!(c.year, Some(g.meta.year));
        }
        let mut ids: Vec<_> = chunks.iter().map(|c| c.chunk_id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), chunks.len(), "{}: chunk ids unique", g.meta.id);
    }
}

/// The copy compiled into the binary is the folder, file for file: a
/// guideline added to `corpus/guidelines` but not to the bundle fails here.
#[test]
fn the_bundled_starter_corpus_is_the_folder() {
    let folder = load_dir(&corpus_guidelines()).expect("corpus parses");
    let bundled = starter().expect("bundle parses");
    let key = |g: &evidence::guidelines::Guideline| (g.meta.id.clone(), g.sections.clone());
    assert_eq!(
        bundled.iter().map(key).collect::<Vec<_>>(),
        folder.iter().map(key).collect::<Vec<_>>()
    );
    let fp = starter_fingerprint();
    assert_eq!(fp.len(), 64);
    assert_eq!(fp, starter_fingerprint());
}

#[test]
fn malformed_guideline_files_are_refused_with_the_reason() {
    let p = std::path::Path::new("x.md");
    let ok = "+++\nid = \"a-b\"\ntitle = \"T\"\nissuer = \"I\"\nyear = 2020\nurl = \"https://example.org\"\n+++\n## S\ntext\n";
    let g = parse(ok, p).expect("valid");
    assert_eq!(g.sections, vec![("S".to_string(), "text".to_string())]);
    for (bad, why) in [
        ("## S\ntext\n", "no front matter"),
        ("+++\nid = \"a\"\n## S\n", "not closed"),
        (&ok.replace("a-b", "A B"), "id must be"),
        (&ok.replace("2020", "20"), "year"),
        (&ok.replace("https://example.org", "ftp://x"), "url"),
        (
            &ok.replace("## S\ntext\n", "intro\n## S\ntext\n"),
            "before the first",
        ),
        (&ok.replace("## S\ntext\n", "## S\n\n"), "no ## sections"),
        (
            &ok.replace("year = 2020", "year = 2020\ncolour = \"red\""),
            "unknown field",
        ),
    ] {
        match parse(bad, p) {
            Err(Error::Guideline { message, .. }) => {
                assert!(message.contains(why), "{why:?} not in {message:?}")
            }
            other => panic!("{why}: unexpected {other:?}"),
        }
    }
}

#[test]
fn duplicate_ids_and_empty_folders_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(load_dir(dir.path()), Err(Error::Guideline { .. })));
    let text =
        std::fs::read_to_string(corpus_guidelines().join("fleischner-2017.md")).expect("read");
    std::fs::write(dir.path().join("a.md"), &text).expect("write");
    std::fs::write(dir.path().join("b.md"), &text).expect("write");
    match load_dir(dir.path()) {
        Err(Error::Guideline { message, .. }) => assert!(message.contains("also used by")),
        other => panic!("unexpected {other:?}"),
    }
}
