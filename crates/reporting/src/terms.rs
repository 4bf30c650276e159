//! Finding vocabulary and a small NegEx-style negation check.
//!
//! Each model label has a display term and synonyms; a mention of a synonym is
//! "negated" when a negation trigger governs it within its clause (NegEx,
//! Chapman et al. 2001: pre- and post-negation triggers, pseudo-negations that
//! are not negations, and conjunctions that end a negation's scope).

/// Display term first, then the synonyms a report may use.
struct Entry {
    /// Normalised label keys (lower case, `_`/`-` as spaces).
    keys: &'static [&'static str],
    terms: &'static [&'static str],
}

const LEXICON: &[Entry] = &[
    // Chest X-ray (CheXNet / ChestX-ray14 labels).
    Entry {
        keys: &["cardiomegaly"],
        terms: &[
            "cardiomegaly",
            "enlarged cardiac silhouette",
            "enlargement of the cardiac silhouette",
            "cardiac enlargement",
            "enlarged heart",
        ],
    },
    Entry {
        keys: &["effusion", "pleural effusion"],
        terms: &["pleural effusion", "effusion", "pleural fluid"],
    },
    Entry {
        keys: &["pneumothorax"],
        terms: &["pneumothorax"],
    },
    Entry {
        keys: &["nodule", "lung nodule", "pulmonary nodule"],
        terms: &["pulmonary nodule", "nodule", "nodular opacity"],
    },
    Entry {
        keys: &["mass", "lung mass"],
        terms: &["pulmonary mass", "mass"],
    },
    Entry {
        keys: &["consolidation"],
        terms: &["consolidation", "airspace opacity", "air-space opacity"],
    },
    Entry {
        keys: &["atelectasis"],
        terms: &["atelectasis", "atelectatic"],
    },
    Entry {
        keys: &["infiltration", "infiltrate"],
        terms: &["infiltration", "infiltrate"],
    },
    Entry {
        keys: &["pneumonia"],
        terms: &["pneumonia"],
    },
    Entry {
        keys: &["edema", "oedema", "pulmonary edema", "peritumoral edema"],
        terms: &["oedema", "edema"],
    },
    Entry {
        keys: &["emphysema"],
        terms: &["emphysema", "emphysematous"],
    },
    Entry {
        keys: &["fibrosis"],
        terms: &["fibrosis", "fibrotic"],
    },
    Entry {
        keys: &["pleural thickening"],
        terms: &["pleural thickening"],
    },
    Entry {
        keys: &["hernia", "hiatus hernia"],
        terms: &["hernia"],
    },
    // Head CT haemorrhage (RSNA ICH labels).
    Entry {
        // Readers and model packs also say just "bleed".
        keys: &[
            "any",
            "ich",
            "intracranial haemorrhage",
            "intracranial hemorrhage",
            "bleed",
            "bleeding",
        ],
        terms: &[
            "intracranial haemorrhage",
            "intracranial hemorrhage",
            "intracranial bleed",
            "intracranial bleeding",
            "bleed",
            "bleeding",
        ],
    },
    Entry {
        keys: &["epidural"],
        terms: &[
            "epidural haemorrhage",
            "epidural hemorrhage",
            "epidural haematoma",
            "epidural hematoma",
            "extradural haematoma",
            "extradural hematoma",
        ],
    },
    Entry {
        keys: &["intraparenchymal"],
        terms: &[
            "intraparenchymal haemorrhage",
            "intraparenchymal hemorrhage",
            "parenchymal haemorrhage",
            "parenchymal hemorrhage",
            "intracerebral haemorrhage",
            "intracerebral hemorrhage",
        ],
    },
    Entry {
        keys: &["intraventricular"],
        terms: &[
            "intraventricular haemorrhage",
            "intraventricular hemorrhage",
            "intraventricular blood",
        ],
    },
    Entry {
        keys: &["subarachnoid"],
        terms: &[
            "subarachnoid haemorrhage",
            "subarachnoid hemorrhage",
            "subarachnoid blood",
        ],
    },
    Entry {
        keys: &["subdural"],
        terms: &[
            "subdural haemorrhage",
            "subdural hemorrhage",
            "subdural haematoma",
            "subdural hematoma",
            "subdural collection",
        ],
    },
    // Brain tumour segmentation regions (BraTS).
    Entry {
        keys: &["whole tumour", "whole tumor", "wt"],
        terms: &["whole tumour", "whole tumor"],
    },
    Entry {
        keys: &["tumour core", "tumor core", "tc"],
        terms: &["tumour core", "tumor core"],
    },
    Entry {
        keys: &["enhancing tumour", "enhancing tumor", "et"],
        terms: &[
            "enhancing tumour",
            "enhancing tumor",
            "enhancing component",
            "enhancing lesion",
        ],
    },
];

/// Normalised label key: lower case, `_` and `-` as spaces, single spaces.
pub fn label_key(label: &str) -> String {
    label
        .to_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The terms that count as a mention of `label`, display term first.
pub fn terms_for(label: &str) -> Vec<String> {
    let key = label_key(label);
    LEXICON
        .iter()
        .find(|e| e.keys.contains(&key.as_str()))
        .map(|e| e.terms.iter().map(|t| (*t).to_string()).collect())
        .unwrap_or_else(|| vec![key])
}

/// How a report names a label.
pub fn display_term(label: &str) -> String {
    terms_for(label)
        .into_iter()
        .next()
        .unwrap_or_else(|| label.to_string())
}

/// Pre-negation triggers (before the term).
const PRE_NEG: &[&str] = &[
    "no",
    "not",
    "without",
    "absence of",
    "absent",
    "negative for",
    "free of",
    "no evidence of",
    "no sign of",
    "no signs of",
    "no features of",
    "rule out",
    "ruled out",
    "rules out",
    "to exclude",
    "excludes",
    "nor",
    "neither",
    "non",
    "resolution of",
    "resolved",
];

/// Post-negation triggers (after the term).
const POST_NEG: &[&str] = &[
    "not suggested",
    "not seen",
    "not identified",
    "not present",
    "not demonstrated",
    "not detected",
    "not evident",
    "not flagged",
    "is absent",
    "are absent",
    "was absent",
    "absent",
    "is not",
    "are not",
    "was not",
    "were not",
    "has resolved",
    "have resolved",
    "resolved",
    "ruled out",
    "excluded",
    "unlikely",
    "below threshold",
    "below the threshold",
    "below its threshold",
];

/// Phrases containing a trigger that do not negate (NegEx pseudo-negations).
const PSEUDO: &[&str] = &[
    "no change",
    "no significant change",
    "no interval change",
    "no increase",
    "no decrease",
    "not only",
    "not excluded",
    "cannot be excluded",
    "can not be excluded",
    "cannot exclude",
    "not be excluded",
    "not ruled out",
    "cannot be ruled out",
    "not be ruled out",
    "without change",
    "not necessarily",
    "not certain whether",
];

/// Conjunctions that end a negation's scope.
const TERMINATORS: &[&str] = &[
    "but",
    "however",
    "although",
    "though",
    "yet",
    "except",
    "apart from",
    "aside from",
    "whereas",
    "while",
    "which",
    "there is",
    "there are",
];

/// Phrases in which a term is not a mention of the finding.
const NOT_A_MENTION: &[&str] = &["mass effect"];

/// How many words a trigger reaches.
const WINDOW: usize = 6;

/// A mention of a finding in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub term: String,
    pub negated: bool,
    /// The clause it was found in.
    pub clause: String,
}

/// Splits a text into clauses: sentence ends (`.` `!` `?` followed by a space
/// or the end), `;` and line breaks. Decimal points stay inside a clause.
fn clauses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next_is_space = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        let ends = matches!(c, ';' | '\n') || (matches!(c, '.' | '!' | '?') && next_is_space);
        if ends {
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_string());
            }
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Lower-cased words of a clause: letters, digits and in-word `'`; everything
/// else (hyphens included) separates words, so "non-enhancing" is "non enhancing".
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn phrase_words(p: &str) -> Vec<String> {
    words(p)
}

/// Word positions where `phrase` starts in `ws`. The last word of the phrase
/// may carry a plural `s` / `es`.
fn find_phrase(ws: &[String], phrase: &[String]) -> Vec<usize> {
    if phrase.is_empty() || phrase.len() > ws.len() {
        return Vec::new();
    }
    (0..=ws.len() - phrase.len())
        .filter(|&i| {
            phrase.iter().enumerate().all(|(j, p)| {
                let w = &ws[i + j];
                w == p
                    || (j + 1 == phrase.len()
                        && (w.strip_suffix('s') == Some(p.as_str())
                            || w.strip_suffix("es") == Some(p.as_str())))
            })
        })
        .collect()
}

/// Spans `[start, end)` of every phrase of `list` in `ws`.
fn spans(ws: &[String], list: &[&str]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for p in list {
        let pw = phrase_words(p);
        for s in find_phrase(ws, &pw) {
            out.push((s, s + pw.len()));
        }
    }
    out
}

fn inside(spans: &[(usize, usize)], i: usize) -> bool {
    spans.iter().any(|&(s, e)| s <= i && i < e)
}

fn overlaps(spans: &[(usize, usize)], s: usize, e: usize) -> bool {
    spans.iter().any(|&(a, b)| s < b && a < e)
}

/// Is the term at words `[start, end)` negated within its clause?
fn is_negated(ws: &[String], start: usize, end: usize) -> bool {
    let pseudo = spans(ws, PSEUDO);
    let terms = spans(ws, TERMINATORS);
    // Pre-negation: a trigger before the term, no terminator in between, within the window.
    let pre = spans(ws, PRE_NEG);
    for &(s, e) in &pre {
        if e > start || overlaps(&pseudo, s, e) {
            continue;
        }
        // "non-" governs only the word it is glued to ("non-enhancing").
        let reach = if ws[s] == "non" { 0 } else { WINDOW };
        if start - e > reach {
            continue;
        }
        if terms.iter().any(|&(ts, _)| ts >= e && ts < start) {
            continue;
        }
        return true;
    }
    // Post-negation: a trigger after the term, within the window.
    let post = spans(ws, POST_NEG);
    for &(s, e) in &post {
        if s < end || overlaps(&pseudo, s, e) {
            continue;
        }
        if s - end > WINDOW {
            continue;
        }
        if terms.iter().any(|&(ts, _)| ts >= end && ts < s) {
            continue;
        }
        return true;
    }
    false
}

/// Every mention of any of `terms` in `text`, with its negation status.
/// Longer terms win where they overlap a shorter one ("pleural effusion" is
/// one mention, not two).
pub fn mentions(text: &str, terms: &[String]) -> Vec<Mention> {
    let mut sorted: Vec<&String> = terms.iter().collect();
    sorted.sort_by_key(|t| std::cmp::Reverse(phrase_words(t).len()));
    let mut out = Vec::new();
    for clause in clauses(text) {
        let ws = words(&clause);
        let excluded = spans(&ws, NOT_A_MENTION);
        let mut taken: Vec<(usize, usize)> = Vec::new();
        for term in &sorted {
            let tw = phrase_words(term);
            for s in find_phrase(&ws, &tw) {
                let e = s + tw.len();
                if taken.iter().any(|&(a, b)| s < b && a < e) || inside(&excluded, s) {
                    continue;
                }
                let negated = is_negated(&ws, s, e);
                taken.push((s, e));
                out.push(Mention {
                    term: (*term).clone(),
                    negated,
                    clause: clause.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(text: &str, label: &str) -> Vec<bool> {
        mentions(text, &terms_for(label))
            .into_iter()
            .map(|m| m.negated)
            .collect()
    }

    #[test]
    fn plain_negations_are_negated() {
        assert_eq!(neg("No pneumothorax.", "Pneumothorax"), vec![true]);
        assert_eq!(
            neg("There is no evidence of pneumothorax.", "Pneumothorax"),
            vec![true]
        );
        assert_eq!(neg("Without pleural effusion.", "Effusion"), vec![true]);
        assert_eq!(
            neg(
                "Pneumothorax: not suggested by the model (p = 0.12, threshold 0.50).",
                "Pneumothorax"
            ),
            vec![true]
        );
        assert_eq!(neg("Pneumothorax is not seen.", "Pneumothorax"), vec![true]);
        assert_eq!(
            neg(
                "No focal consolidation, effusion or pneumothorax.",
                "Pneumothorax"
            ),
            vec![true]
        );
        assert_eq!(
            neg("Non-enhancing tumour only.", "enhancing tumour"),
            vec![true]
        );
    }

    #[test]
    fn affirmations_are_not_negated() {
        assert_eq!(neg("There is a pneumothorax.", "Pneumothorax"), vec![false]);
        assert_eq!(
            neg("Small left pleural effusions.", "Effusion"),
            vec![false]
        );
        assert_eq!(
            neg("Enlarged cardiac silhouette, p = 0.81.", "Cardiomegaly"),
            vec![false]
        );
        assert_eq!(
            neg("Possible right apical pneumothorax.", "Pneumothorax"),
            vec![false]
        );
    }

    #[test]
    fn scope_ends_at_conjunctions_and_sentences() {
        assert_eq!(
            neg(
                "No consolidation, but there is a small pneumothorax.",
                "Pneumothorax"
            ),
            vec![false]
        );
        assert_eq!(
            neg(
                "No consolidation. Pneumothorax on the right.",
                "Pneumothorax"
            ),
            vec![false]
        );
        // Window: a trigger far before the term does not reach it.
        assert_eq!(
            neg(
                "No acute osseous abnormality of the ribs or clavicles seen on this film with pneumothorax",
                "Pneumothorax"
            ),
            vec![false]
        );
    }

    #[test]
    fn pseudo_negations_do_not_negate() {
        assert_eq!(
            neg("No change in the small pneumothorax.", "Pneumothorax"),
            vec![false]
        );
        assert_eq!(
            neg("Pneumothorax cannot be excluded.", "Pneumothorax"),
            vec![false]
        );
        assert_eq!(
            neg("Pneumothorax not ruled out.", "Pneumothorax"),
            vec![false]
        );
        assert_eq!(
            neg("Pneumothorax is not excluded.", "Pneumothorax"),
            vec![false]
        );
        // "non-" reaches only the word it is glued to.
        assert_eq!(
            neg("Non-contrast CT: subdural haematoma.", "subdural"),
            vec![false]
        );
    }

    #[test]
    fn longer_synonyms_win_and_mass_effect_is_not_a_mass() {
        let m = mentions("Right pleural effusion.", &terms_for("Effusion"));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].term, "pleural effusion");
        assert!(mentions("Mild mass effect.", &terms_for("Mass")).is_empty());
        assert!(mentions("Pulmonary masses.", &terms_for("Mass")).len() == 1);
    }

    #[test]
    fn decimal_points_do_not_split_clauses() {
        assert_eq!(
            clauses("p = 0.12. Next one; third\nfourth."),
            vec!["p = 0.12", "Next one", "third", "fourth"]
        );
    }

    #[test]
    fn label_aliases_share_terms() {
        assert_eq!(terms_for("Pleural_Thickening"), vec!["pleural thickening"]);
        assert_eq!(display_term("Effusion"), "pleural effusion");
        assert_eq!(display_term("any"), "intracranial haemorrhage");
        assert_eq!(display_term("Some_New_Label"), "some new label");
    }
}
