//! The guideline corpus: Markdown files with TOML front matter between `+++`
//! lines, split into one passage per `##` section.
//!
//! ```text
//! +++
//! id = "fleischner-2017"
//! title = "Incidental pulmonary nodules on CT: follow-up"
//! issuer = "Fleischner Society"
//! year = 2017
//! url = "https://doi.org/10.1148/radiol.2017161659"
//! modalities = ["ct"]
//! body_parts = ["chest"]
//! +++
//! ## Solid nodules
//! ...
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map};

use crate::error::{Error, Result};
use crate::pubmed::chunk::split_words;
use crate::store::{Chunk, SourceType};

const MAX_WORDS: usize = 180;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FrontMatter {
    pub id: String,
    pub title: String,
    pub issuer: String,
    pub year: i32,
    pub url: String,
    #[serde(default)]
    pub modalities: Vec<String>,
    #[serde(default)]
    pub body_parts: Vec<String>,
    /// Named source documents the summary draws on, for the reader.
    #[serde(default)]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Guideline {
    pub meta: FrontMatter,
    pub path: PathBuf,
    /// (heading, text) per `##` section.
    pub sections: Vec<(String, String)>,
}

impl Guideline {
    pub fn citation_id(&self) -> String {
        format!("GL:{}", self.meta.id)
    }

    pub fn chunks(&self) -> Vec<Chunk> {
        let mut extra = Map::new();
        extra.insert("issuer".into(), json!(self.meta.issuer));
        extra.insert("sources".into(), json!(self.meta.sources));
        let mut out = Vec::new();
        for (heading, text) in &self.sections {
            for (n, piece) in split_words(text, MAX_WORDS).into_iter().enumerate() {
                let slug = slug(heading);
                out.push(Chunk {
                    chunk_id: if n == 0 {
                        format!("{}#{slug}", self.citation_id())
                    } else {
                        format!("{}#{slug}-{}", self.citation_id(), n + 1)
                    },
                    doc_id: self.citation_id(),
                    source: SourceType::Guideline,
                    title: self.meta.title.clone(),
                    year: Some(self.meta.year),
                    url: Some(self.meta.url.clone()),
                    section: Some(heading.clone()),
                    passage: piece,
                    modalities: self.meta.modalities.clone(),
                    body_parts: self.meta.body_parts.clone(),
                    org: None,
                    extra: extra.clone(),
                });
            }
        }
        out
    }
}

pub fn parse(text: &str, path: &Path) -> Result<Guideline> {
    let bad = |m: &str| Error::Guideline {
        path: path.to_path_buf(),
        message: m.to_string(),
    };
    let rest = text
        .strip_prefix("+++\n")
        .or_else(|| text.strip_prefix("+++\r\n"))
        .ok_or_else(|| bad("no front matter: the file must start with a +++ line"))?;
    let end = rest
        .find("\n+++")
        .ok_or_else(|| bad("front matter is not closed by a +++ line"))?;
    let mut meta: FrontMatter =
        toml::from_str(&rest[..end]).map_err(|e| bad(&format!("front matter: {e}")))?;
    let body = rest[end + 4..].trim_start_matches(['\r', '\n']);
    if meta.id.is_empty()
        || !meta
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("id must be lower-case letters, digits and '-'"));
    }
    if !(1900..=2100).contains(&meta.year) {
        return Err(bad("year out of range"));
    }
    if !meta.url.starts_with("https://") && !meta.url.starts_with("http://") {
        return Err(bad("url must be an http(s) address"));
    }
    for v in meta.modalities.iter_mut().chain(meta.body_parts.iter_mut()) {
        *v = v.trim().to_ascii_lowercase();
    }
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            sections.push((h.trim().to_string(), String::new()));
        } else if line.starts_with("# ") {
            continue; // the document title repeats the front matter
        } else if let Some((_, text)) = sections.last_mut() {
            text.push_str(line.trim());
            text.push('\n');
        } else if !line.trim().is_empty() {
            return Err(bad("text before the first ## section"));
        }
    }
    for (_, t) in sections.iter_mut() {
        *t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    sections.retain(|(_, t)| !t.is_empty());
    if sections.is_empty() {
        return Err(bad("no ## sections with text"));
    }
    Ok(Guideline {
        meta,
        path: path.to_path_buf(),
        sections,
    })
}

/// The starter corpus of `corpus/guidelines`, compiled into the binary so
/// a fresh install can cite guidelines without knowing where the repository
/// is. A test keeps this list equal to the folder.
const STARTER: &[(&str, &str)] = &[
    (
        "acr-chest-radiography.md",
        include_str!("../../../corpus/guidelines/acr-chest-radiography.md"),
    ),
    (
        "acr-head-trauma.md",
        include_str!("../../../corpus/guidelines/acr-head-trauma.md"),
    ),
    (
        "bts-pleural-effusion.md",
        include_str!("../../../corpus/guidelines/bts-pleural-effusion.md"),
    ),
    (
        "bts-pneumothorax.md",
        include_str!("../../../corpus/guidelines/bts-pneumothorax.md"),
    ),
    (
        "cardiomegaly-cxr.md",
        include_str!("../../../corpus/guidelines/cardiomegaly-cxr.md"),
    ),
    (
        "fleischner-2017.md",
        include_str!("../../../corpus/guidelines/fleischner-2017.md"),
    ),
    (
        "ich-ct-triage.md",
        include_str!("../../../corpus/guidelines/ich-ct-triage.md"),
    ),
    (
        "rano-response.md",
        include_str!("../../../corpus/guidelines/rano-response.md"),
    ),
    (
        "who-cns5-2021.md",
        include_str!("../../../corpus/guidelines/who-cns5-2021.md"),
    ),
];

/// The bundled starter guidelines, parsed.
pub fn starter() -> Result<Vec<Guideline>> {
    STARTER
        .iter()
        .map(|(name, text)| parse(text, &Path::new("corpus/guidelines").join(name)))
        .collect()
}

/// A fingerprint of the bundled corpus: the server re-ingests when it changes.
pub fn starter_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, text) in STARTER {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every `*.md` file of `dir` (not recursive), sorted by name; fails on the
/// first bad file or on two files with one id.
pub fn load_dir(dir: &Path) -> Result<Vec<Guideline>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths = Vec::new();
    for e in entries {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.extension().is_some_and(|x| x == "md") && p.is_file() {
            paths.push(p);
        }
    }
    paths.sort();
    let mut out: Vec<Guideline> = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        let g = parse(&text, &p)?;
        if let Some(other) = out.iter().find(|o| o.meta.id == g.meta.id) {
            return Err(Error::Guideline {
                path: p.clone(),
                message: format!(
                    "id {:?} is also used by {}",
                    g.meta.id,
                    other.path.display()
                ),
            });
        }
        out.push(g);
    }
    if out.is_empty() {
        return Err(Error::Guideline {
            path: dir.to_path_buf(),
            message: "no .md guideline files".into(),
        });
    }
    Ok(out)
}

fn slug(s: &str) -> String {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}
