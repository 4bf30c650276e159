//! Turns a parsed article into passages: one per abstract section
//! (Background, Methods, Results, Conclusions), long unstructured abstracts
//! split at sentence ends, with modality and body part read off the MeSH
//! terms so that literature answers the same filters as guidelines.

use serde_json::{json, Map};

use super::xml::Article;
use crate::store::{Chunk, SourceType};

/// Longest passage, in words, before an unlabelled abstract is split.
const MAX_WORDS: usize = 220;

pub fn chunk_article(a: &Article) -> Vec<Chunk> {
    let doc_id = format!("PMID:{}", a.pmid);
    let mut extra = Map::new();
    extra.insert("journal".into(), json!(a.journal));
    extra.insert("mesh".into(), json!(a.mesh));
    extra.insert("pmid".into(), json!(a.pmid));
    if let Some(doi) = &a.doi {
        extra.insert("doi".into(), json!(doi));
    }
    let (modalities, body_parts) = tags_from_mesh(&a.mesh);
    let make = |section: &str, passage: String, n: usize| Chunk {
        chunk_id: if n == 0 {
            format!("{doc_id}#{}", slug(section))
        } else {
            format!("{doc_id}#{}-{}", slug(section), n + 1)
        },
        doc_id: doc_id.clone(),
        source: SourceType::Pubmed,
        title: a.title.clone(),
        year: a.year,
        url: Some(a.url()),
        section: Some(section.to_string()),
        passage,
        modalities: modalities.clone(),
        body_parts: body_parts.clone(),
        org: None,
        extra: extra.clone(),
    };
    let mut sections: Vec<(String, String)> = Vec::new();
    for s in &a.abstract_sections {
        let name = section_name(s.category.as_deref(), s.label.as_deref());
        match sections.last_mut() {
            // BACKGROUND then OBJECTIVE both read as Background: one passage.
            Some((last, text)) if *last == name => {
                text.push(' ');
                text.push_str(&s.text);
            }
            _ => sections.push((name, s.text.clone())),
        }
    }
    if sections.is_empty() {
        // No abstract: the title alone still tells what the paper is about.
        if a.title.trim().is_empty() {
            return Vec::new();
        }
        return vec![make("Title", a.title.clone(), 0)];
    }
    let mut out = Vec::new();
    for (name, text) in sections {
        for (n, piece) in split_words(&text, MAX_WORDS).into_iter().enumerate() {
            out.push(make(&name, piece, n));
        }
    }
    out
}

fn section_name(category: Option<&str>, label: Option<&str>) -> String {
    match category.map(str::to_ascii_uppercase).as_deref() {
        Some("BACKGROUND") | Some("OBJECTIVE") => "Background".into(),
        Some("METHODS") => "Methods".into(),
        Some("RESULTS") => "Results".into(),
        Some("CONCLUSIONS") => "Conclusions".into(),
        _ => match label {
            Some(l) if !l.trim().is_empty() => title_case(l),
            _ => "Abstract".into(),
        },
    }
}

fn title_case(s: &str) -> String {
    let lower = s.trim().to_lowercase();
    let mut c = lower.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn slug(s: &str) -> String {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Splits at sentence ends into pieces of at most `max` words (a single
/// longer sentence stays whole rather than being cut mid-thought).
pub(crate) fn split_words(text: &str, max: usize) -> Vec<String> {
    if text.split_whitespace().count() <= max {
        return vec![text.trim().to_string()];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut words = 0;
    for sentence in sentences(text) {
        let n = sentence.split_whitespace().count();
        if words > 0 && words + n > max {
            out.push(std::mem::take(&mut cur));
            words = 0;
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(sentence.trim());
        words += n;
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = text.as_bytes();
    for i in 0..b.len() {
        let end = matches!(b[i], b'.' | b'?' | b'!')
            && b.get(i + 1).is_some_and(|c| c.is_ascii_whitespace())
            && b.get(i + 2).is_some_and(|c| c.is_ascii_uppercase());
        if end {
            out.push(&text[start..=i]);
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Modality codes and body parts implied by MeSH descriptors. Only
/// unambiguous descriptors count; an article without any stays untagged and
/// so matches every modality / body-part filter.
pub fn tags_from_mesh(mesh: &[String]) -> (Vec<String>, Vec<String>) {
    let mut modalities = Vec::new();
    let mut parts = Vec::new();
    let add = |v: &mut Vec<String>, s: &str| {
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
        }
    };
    for m in mesh {
        let l = m.to_lowercase();
        if l.contains("computed tomography") || l.starts_with("tomography, x-ray computed") {
            add(&mut modalities, "ct");
        }
        if l.starts_with("magnetic resonance") {
            add(&mut modalities, "mr");
        }
        if l.starts_with("radiography") {
            add(&mut modalities, "cr");
            add(&mut modalities, "dx");
        }
        if l.starts_with("ultrasonography") {
            add(&mut modalities, "us");
        }
        if l.starts_with("positron-emission tomography") {
            add(&mut modalities, "pt");
        }
        const CHEST: [&str; 9] = [
            "lung",
            "pulmonary",
            "thora",
            "pleura",
            "pneumothorax",
            "cardiomegaly",
            "heart",
            "mediastin",
            "chest",
        ];
        const HEAD: [&str; 10] = [
            "brain",
            "cerebr",
            "intracranial",
            "cranio",
            "glio",
            "head",
            "subarachnoid",
            "subdural",
            "epidural",
            "skull",
        ];
        if CHEST.iter().any(|k| l.contains(k)) {
            add(&mut parts, "chest");
        }
        if HEAD.iter().any(|k| l.contains(k)) {
            add(&mut parts, "head");
        }
    }
    (modalities, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_splits_at_sentence_ends_within_the_limit() {
        let s = "One two three four. Five six seven eight. Nine ten eleven twelve.";
        let parts = split_words(s, 8);
        assert_eq!(
            parts,
            vec![
                "One two three four. Five six seven eight.",
                "Nine ten eleven twelve."
            ]
        );
        assert_eq!(split_words("short text", 8), vec!["short text"]);
    }

    #[test]
    fn mesh_terms_give_modality_and_body_part() {
        let (m, p) = tags_from_mesh(&[
            "Tomography, X-Ray Computed".into(),
            "Solitary Pulmonary Nodule".into(),
            "Humans".into(),
        ]);
        assert_eq!(m, vec!["ct"]);
        assert_eq!(p, vec!["chest"]);
        let (m, p) = tags_from_mesh(&["Humans".into()]);
        assert!(m.is_empty() && p.is_empty());
    }
}
