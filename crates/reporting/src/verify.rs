//! Verification of every draft before it is stored.
//!
//! 1. Citations must read `[PMID:digits]` or `[GL:id]` and name a passage that
//!    retrieval returned for this case; any other citation-like bracket (or a
//!    bare "PMID 123") is removed and counted.
//! 2. Every positive finding must be mentioned, not negated, in Findings or
//!    Impression.
//! 3. No finding scored below threshold may be asserted as present in Findings
//!    or Impression (a negated mention, "no pneumothorax", is fine).
//!
//! Failing 2 or 3 rejects the draft; the caller then uses the built-in writer.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::report::Sections;
use crate::terms::{label_key, mentions, terms_for};
use crate::types::{Finding, Passage};

/// What verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Citations removed because they were malformed or not retrieved for this case.
    pub removed_citations: Vec<String>,
    /// Positive findings the text does not state.
    pub missing_findings: Vec<String>,
    /// Below-threshold findings the text asserts as present.
    pub asserted_negatives: Vec<String>,
    /// Set when the draft was rejected.
    pub rejected_reason: Option<String>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.rejected_reason.is_none()
    }

    pub(crate) fn rejected(reason: impl Into<String>) -> Self {
        Self {
            rejected_reason: Some(reason.into()),
            ..Self::default()
        }
    }
}

/// A canonical citation id if `part` has the required form.
fn canonical(part: &str) -> Option<String> {
    let (prefix, rest) = part.split_once(':')?;
    let rest = rest.trim();
    if prefix.trim().eq_ignore_ascii_case("pmid") {
        (!rest.is_empty() && rest.len() <= 10 && rest.bytes().all(|b| b.is_ascii_digit()))
            .then(|| format!("PMID:{rest}"))
    } else if prefix.trim().eq_ignore_ascii_case("gl") {
        (!rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
        .then(|| format!("GL:{rest}"))
    } else {
        None
    }
}

/// Does a bracketed part look like an attempt at a citation?
fn citation_like(part: &str) -> bool {
    let p = part.trim().to_lowercase();
    if p.is_empty() {
        return false;
    }
    const PREFIXES: &[&str] = &[
        "pmid", "gl:", "gl ", "doi", "pmc", "ref", "source", "passage", "citation", "cite", "http",
    ];
    PREFIXES.iter().any(|x| p.starts_with(x))
        || p.bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b' ')
}

/// Removes citations that are malformed or not in `known`; returns the cleaned
/// text, the removed citations and the kept ids in order.
pub fn clean_citations(text: &str, known: &BTreeSet<String>) -> (String, Vec<String>, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let close = after
            .find(']')
            .filter(|&c| c <= 300 && !after[..c].contains('['));
        let Some(close) = close else {
            out.push_str(&rest[..=open]);
            rest = after;
            continue;
        };
        let inner = &after[..close];
        let parts: Vec<&str> = inner.split([',', ';']).map(str::trim).collect();
        if !parts.iter().any(|p| citation_like(p)) {
            out.push_str(&rest[..open + close + 2]);
            rest = &after[close + 1..];
            continue;
        }
        out.push_str(&rest[..open]);
        let mut kept_here = Vec::new();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            match canonical(part) {
                Some(id) if known.contains(&id) => kept_here.push(id),
                _ => removed.push(format!("[{part}]")),
            }
        }
        if kept_here.is_empty() {
            // Drop the space before a removed citation when punctuation or a space follows.
            let next = after[close + 1..].chars().next();
            if out.ends_with(' ') && next.is_none_or(|c| c.is_whitespace() || ",.;:)".contains(c)) {
                out.pop();
            }
        }
        for id in kept_here {
            out.push('[');
            out.push_str(&id);
            out.push(']');
            kept.push(id);
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    let (out, bare) = remove_bare_pmids(&out);
    removed.extend(bare);
    (out, removed, kept)
}

/// Removes "PMID 123" / "(PMID: 123)" written outside the bracket form.
fn remove_bare_pmids(text: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut removed = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let at_pmid = bytes.len() - i >= 4
            && bytes[i..i + 4].eq_ignore_ascii_case(b"pmid")
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'['));
        if at_pmid {
            let mut j = i + 4;
            while j < bytes.len() && matches!(bytes[j], b':' | b' ' | b'#') {
                j += 1;
            }
            let digits = j;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > digits {
                removed.push(text[i..j].to_string());
                // "(PMID: 123)" leaves "()": drop the parentheses and the space before.
                if out.ends_with('(') && bytes.get(j) == Some(&b')') {
                    out.pop();
                    j += 1;
                }
                if out.ends_with(' ')
                    && bytes
                        .get(j)
                        .is_none_or(|b| b.is_ascii_whitespace() || b",.;:)".contains(b))
                {
                    out.pop();
                }
                i = j;
                continue;
            }
        }
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    (out, removed)
}

/// Ids of the passages retrieval returned.
pub fn known_ids(passages: &[Passage]) -> BTreeSet<String> {
    passages.iter().filter_map(|p| canonical(&p.id)).collect()
}

/// Ids cited in `text`, in order of first appearance, without duplicates.
pub fn cited_ids(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        if let Some(id) = canonical(&after[..close]) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        rest = &after[close + 1..];
    }
    out
}

/// Model names and versions are identifiers, not clinical statements: blank
/// them before looking for mentions ("pneumothorax-net 1.0" is no assertion).
fn without_model_ids(text: &str, findings: &[Finding]) -> String {
    let mut ids: Vec<&str> = findings
        .iter()
        .flat_map(|f| [f.model.as_str(), f.model_version.as_str()])
        .filter(|s| s.len() >= 2)
        .collect();
    ids.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for id in ids {
        out = out.replace(id, " ");
    }
    out
}

/// Checks the finding statements of `text`: positives mentioned (affirmed),
/// negatives not asserted. Returns `(missing, asserted)` as labels.
pub fn check_findings(text: &str, findings: &[Finding]) -> (Vec<String>, Vec<String>) {
    let text = without_model_ids(text, findings);
    let positive_keys: BTreeSet<String> = findings
        .iter()
        .filter(|f| f.positive)
        .map(|f| label_key(&f.label))
        .collect();
    let mut missing = Vec::new();
    let mut asserted = Vec::new();
    let mut seen = BTreeSet::new();
    for f in findings {
        let key = label_key(&f.label);
        if !seen.insert((key.clone(), f.positive)) {
            continue;
        }
        let found = mentions(&text, &terms_for(&f.label));
        let affirmed = found.iter().any(|m| !m.negated);
        if f.positive && !affirmed {
            missing.push(f.label.clone());
        }
        if !f.positive && !positive_keys.contains(&key) && affirmed {
            asserted.push(f.label.clone());
        }
    }
    (missing, asserted)
}

fn reject_reason(missing: &[String], asserted: &[String]) -> Option<String> {
    let mut reasons = Vec::new();
    if !missing.is_empty() {
        reasons.push(format!(
            "positive finding(s) not stated: {}",
            missing.join(", ")
        ));
    }
    if !asserted.is_empty() {
        reasons.push(format!(
            "below-threshold finding(s) asserted as present: {}",
            asserted.join(", ")
        ));
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Verifies a report draft in place: unverifiable citations are removed from
/// every section; the finding checks run on Findings and Impression.
pub fn verify_report(
    sections: &mut Sections,
    findings: &[Finding],
    passages: &[Passage],
) -> Verification {
    let known = known_ids(passages);
    let mut v = Verification::default();
    for text in sections.iter_mut() {
        let (clean, removed, _) = clean_citations(text, &known);
        *text = clean;
        v.removed_citations.extend(removed);
    }
    if sections.findings.trim().is_empty() || sections.impression.trim().is_empty() {
        v.rejected_reason = Some("the draft has no Findings or no Impression section".into());
        return v;
    }
    let body = format!("{}\n{}", sections.findings, sections.impression);
    let (missing, asserted) = check_findings(&body, findings);
    v.rejected_reason = reject_reason(&missing, &asserted);
    v.missing_findings = missing;
    v.asserted_negatives = asserted;
    v
}

/// Verifies a plain-language explanation in place, with the same rules over
/// the whole text.
pub fn verify_text(text: &mut String, findings: &[Finding], passages: &[Passage]) -> Verification {
    let known = known_ids(passages);
    let (clean, removed, _) = clean_citations(text, &known);
    *text = clean;
    let mut v = Verification {
        removed_citations: removed,
        ..Verification::default()
    };
    if text.trim().is_empty() {
        v.rejected_reason = Some("empty text".into());
        return v;
    }
    let (missing, asserted) = check_findings(text, findings);
    v.rejected_reason = reject_reason(&missing, &asserted);
    v.missing_findings = missing;
    v.asserted_negatives = asserted;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn unknown_and_malformed_citations_are_removed_and_counted() {
        let k = known(&["PMID:111", "GL:fleischner-2017-solid"]);
        let (t, removed, kept) = clean_citations(
            "Effusion [PMID:111]. Nodule [PMID:999] and [GL:fleischner-2017-solid]. See [3], [doi:10.1/x].",
            &k,
        );
        assert_eq!(
            t,
            "Effusion [PMID:111]. Nodule and [GL:fleischner-2017-solid]. See,."
        );
        assert_eq!(removed, vec!["[PMID:999]", "[3]", "[doi:10.1/x]"]);
        assert_eq!(kept, vec!["PMID:111", "GL:fleischner-2017-solid"]);
    }

    #[test]
    fn grouped_citations_keep_the_known_ones() {
        let k = known(&["PMID:111", "PMID:222"]);
        let (t, removed, _) = clean_citations("A [PMID:111; PMID:333, PMID: 222].", &k);
        assert_eq!(t, "A [PMID:111][PMID:222].");
        assert_eq!(removed, vec!["[PMID:333]"]);
    }

    #[test]
    fn ordinary_brackets_and_bare_pmids() {
        let k = known(&["PMID:111"]);
        let (t, removed, _) = clean_citations("Left [sic] lung (PMID: 4567) ok PMID 89.", &k);
        assert_eq!(t, "Left [sic] lung ok.");
        assert_eq!(removed, vec!["PMID: 4567", "PMID 89"]);
    }

    #[test]
    fn cited_ids_in_order_without_duplicates() {
        assert_eq!(
            cited_ids("[GL:a] x [PMID:1] [GL:a] [foo]"),
            vec!["GL:a", "PMID:1"]
        );
    }
}
