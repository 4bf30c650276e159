//! PubMed / MEDLINE XML: the documents E-utilities' efetch returns
//! (`PubmedArticleSet` of `PubmedArticle`), the annual baseline and update
//! files (the same, plus `DeleteCitation`), and bare `MedlineCitation`
//! documents. Streams with quick-xml, so a 200 MB baseline file is never held
//! as a tree.

use std::io::BufRead;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::error::{Error, Result};

/// One labelled part of an abstract (`AbstractText`).
#[derive(Debug, Clone, PartialEq)]
pub struct AbstractSection {
    /// `Label` as printed (e.g. "MATERIALS AND METHODS").
    pub label: Option<String>,
    /// `NlmCategory`: BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS, UNASSIGNED.
    pub category: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Article {
    pub pmid: String,
    pub title: String,
    pub journal: String,
    pub year: Option<i32>,
    pub abstract_sections: Vec<AbstractSection>,
    /// MeSH descriptor names, in document order.
    pub mesh: Vec<String>,
    pub doi: Option<String>,
}

impl Article {
    pub fn url(&self) -> String {
        format!("https://pubmed.ncbi.nlm.nih.gov/{}/", self.pmid)
    }
}

/// What one XML document held.
#[derive(Debug, Default)]
pub struct ParsedSet {
    pub articles: Vec<Article>,
    /// PMIDs the file withdraws (`DeleteCitation`, in MEDLINE update files).
    pub deleted: Vec<String>,
    /// Records that are not journal articles with a PMID (e.g. `PubmedBookArticle`).
    pub skipped: usize,
}

/// Parses one document. `origin` names it in errors (a path, "efetch").
/// A document whose root is neither `PubmedArticleSet` nor `MedlineCitation`
/// is refused, as is malformed XML.
pub fn parse<R: BufRead>(input: R, origin: &str) -> Result<ParsedSet> {
    let mut reader = Reader::from_reader(input);
    reader.config_mut().trim_text(false);
    let mut p = Parser::default();
    let mut buf = Vec::new();
    let err = |reader: &Reader<R>, m: String| Error::Xml {
        origin: origin.to_string(),
        message: format!("{m} (byte {})", reader.buffer_position()),
    };
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| err(&reader, e.to_string()))?;
        match ev {
            Event::Start(e) => {
                p.start(&e).map_err(|m| err(&reader, m))?;
            }
            Event::Empty(e) => {
                p.start(&e).map_err(|m| err(&reader, m))?;
                p.end();
            }
            Event::End(_) => p.end(),
            Event::Text(t) => {
                let s = t.decode().map_err(|e| err(&reader, e.to_string()))?;
                p.text(&s);
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| err(&reader, e.to_string()))?;
                p.text(&s);
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = r.decode().map_err(|e| err(&reader, e.to_string()))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .map(str::to_string)
                            .ok_or_else(|| err(&reader, format!("unknown entity &{name};")))?
                    }
                    Err(e) => return Err(err(&reader, e.to_string())),
                };
                p.text(&resolved);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !p.saw_root {
        return Err(Error::Xml {
            origin: origin.to_string(),
            message: "not PubMed XML: expected a PubmedArticleSet or MedlineCitation root".into(),
        });
    }
    if !p.stack.is_empty() {
        return Err(Error::Xml {
            origin: origin.to_string(),
            message: "document ends inside an element".into(),
        });
    }
    Ok(p.out)
}

pub fn parse_str(xml: &str, origin: &str) -> Result<ParsedSet> {
    parse(xml.as_bytes(), origin)
}

#[derive(Default)]
struct Parser {
    stack: Vec<String>,
    saw_root: bool,
    out: ParsedSet,
    cur: Option<Article>,
    /// Text being gathered and the element that will take it when it closes.
    capture: Option<(usize, Capture, String)>,
    section_attrs: (Option<String>, Option<String>),
    article_id_is_doi: bool,
    in_delete: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Capture {
    Pmid,
    Title,
    Journal,
    Year,
    MedlineDate,
    Abstract,
    Mesh,
    Doi,
    DeletedPmid,
}

impl Parser {
    fn path_ends(&self, tail: &[&str]) -> bool {
        self.stack.len() >= tail.len()
            && self.stack[self.stack.len() - tail.len()..]
                .iter()
                .zip(tail)
                .all(|(a, b)| a == b)
    }

    fn start(&mut self, e: &BytesStart<'_>) -> std::result::Result<(), String> {
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        if self.stack.is_empty() {
            match name.as_str() {
                "PubmedArticleSet" | "MedlineCitationSet" | "MedlineCitation" => {
                    self.saw_root = true
                }
                other => return Err(format!("not PubMed XML: root element is <{other}>")),
            }
        }
        let attr = |key: &str| -> Option<String> {
            e.try_get_attribute(key)
                .ok()
                .flatten()
                .and_then(|a| {
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .ok()
                        .map(|v| v.trim().to_string())
                })
                .filter(|v| !v.is_empty())
        };
        self.stack.push(name.clone());
        let depth = self.stack.len();
        match name.as_str() {
            "MedlineCitation" => self.cur = Some(Article::default()),
            "PubmedBookArticle" => self.out.skipped += 1,
            "DeleteCitation" => self.in_delete = true,
            _ => {}
        }
        if self.capture.is_some() {
            return Ok(()); // inline markup (<i>, <sup>…) inside captured text
        }
        let what = if self.in_delete && name == "PMID" {
            Some(Capture::DeletedPmid)
        } else if self.cur.is_none() {
            None
        } else if self.path_ends(&["MedlineCitation", "PMID"]) {
            Some(Capture::Pmid)
        } else if self.path_ends(&["Article", "ArticleTitle"]) {
            Some(Capture::Title)
        } else if self.path_ends(&["Article", "Journal", "Title"]) {
            Some(Capture::Journal)
        } else if self.path_ends(&["JournalIssue", "PubDate", "Year"]) {
            Some(Capture::Year)
        } else if self.path_ends(&["JournalIssue", "PubDate", "MedlineDate"]) {
            Some(Capture::MedlineDate)
        } else if self.path_ends(&["Article", "Abstract", "AbstractText"]) {
            self.section_attrs = (attr("Label"), attr("NlmCategory"));
            Some(Capture::Abstract)
        } else if self.path_ends(&["MeshHeading", "DescriptorName"]) {
            Some(Capture::Mesh)
        } else if self.path_ends(&["Article", "ELocationID"]) {
            (attr("EIdType").as_deref() == Some("doi")).then_some(Capture::Doi)
        } else {
            None
        };
        if name == "ArticleId" {
            self.article_id_is_doi = attr("IdType").as_deref() == Some("doi");
        }
        if let Some(w) = what {
            self.capture = Some((depth, w, String::new()));
        }
        Ok(())
    }

    fn text(&mut self, s: &str) {
        if let Some((_, _, buf)) = &mut self.capture {
            buf.push_str(s);
        } else if self.article_id_is_doi
            && self.path_ends(&["PubmedData", "ArticleIdList", "ArticleId"])
        {
            // PubmedData follows MedlineCitation: fill the DOI of the article
            // just finished if its citation had none.
            if let Some(a) = self.out.articles.last_mut() {
                if a.doi.is_none() && !s.trim().is_empty() {
                    a.doi = Some(s.trim().to_string());
                }
            }
        }
    }

    fn end(&mut self) {
        let depth = self.stack.len();
        if let Some((d, what, text)) = self.capture.take() {
            if d == depth {
                self.store(what, squash(&text));
            } else {
                self.capture = Some((d, what, text));
            }
        }
        let name = self.stack.pop().unwrap_or_default();
        match name.as_str() {
            "MedlineCitation" => {
                if let Some(a) = self.cur.take() {
                    if a.pmid.is_empty() {
                        self.out.skipped += 1;
                    } else {
                        self.out.articles.push(a);
                    }
                }
            }
            "DeleteCitation" => self.in_delete = false,
            "ArticleId" => self.article_id_is_doi = false,
            _ => {}
        }
    }

    fn store(&mut self, what: Capture, text: String) {
        if what == Capture::DeletedPmid {
            if is_pmid(&text) {
                self.out.deleted.push(text);
            }
            return;
        }
        let Some(a) = self.cur.as_mut() else { return };
        match what {
            Capture::Pmid if is_pmid(&text) => a.pmid = text,
            Capture::Title => a.title = text,
            Capture::Journal => a.journal = text,
            Capture::Year => a.year = text.parse().ok().or(a.year),
            Capture::MedlineDate => a.year = a.year.or_else(|| first_year(&text)),
            Capture::Abstract if !text.is_empty() => {
                let (label, category) = std::mem::take(&mut self.section_attrs);
                a.abstract_sections.push(AbstractSection {
                    label,
                    category,
                    text,
                });
            }
            Capture::Mesh if !text.is_empty() => a.mesh.push(text),
            Capture::Doi if !text.is_empty() => a.doi = Some(text),
            _ => {}
        }
    }
}

fn is_pmid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit())
}

/// MEDLINE dates like "1998 Dec-1999 Jan" or "2019 Spring".
fn first_year(s: &str) -> Option<i32> {
    s.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 4)
        .and_then(|w| w.parse().ok())
}

/// Collapses runs of whitespace (PubMed text is line-wrapped and indented).
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
