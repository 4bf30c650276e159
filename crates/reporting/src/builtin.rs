//! The built-in writer: a deterministic structured report from the findings,
//! their thresholds and the top retrieved guideline passages. It is the
//! embedded default (no endpoint), the answer when the breaker is open, and
//! the fallback when an LLM draft fails verification. Same input, same bytes.

use std::collections::BTreeSet;

use crate::report::Sections;
use crate::terms::{display_term, mentions, terms_for};
use crate::types::{CaseContext, Finding, Passage, SourceKind};
use crate::verify::clean_citations;

/// Version of the built-in writer's wording, stored with its reports.
pub const BUILTIN_VERSION: &str = "builtin.v1";

/// Stated for demonstration models.
pub const DEMO_NOTICE: &str =
    "Demonstration model trained on synthetic phantoms, not for clinical use.";

/// Most guideline passages quoted under Recommendations.
const MAX_GUIDELINES: usize = 3;
/// Most sources cited per finding in the Impression.
const MAX_SOURCES_PER_FINDING: usize = 2;

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Text from outside (history, guideline text) with anything citation-like removed,
/// so the writer only ever cites what it chose to cite.
fn plain(text: &str) -> String {
    let (t, _, _) = clean_citations(text, &BTreeSet::new());
    t.replace(['[', ']'], "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn p2(x: f32) -> String {
    format!("{x:.2}")
}

fn pct(x: f32) -> String {
    format!("{:.0}%", (x * 100.0).clamp(0.0, 100.0))
}

/// Positive findings, most probable first; ties by label, then model.
fn positives(findings: &[Finding]) -> Vec<&Finding> {
    let mut v: Vec<&Finding> = findings.iter().filter(|f| f.positive).collect();
    v.sort_by(|a, b| {
        b.probability
            .total_cmp(&a.probability)
            .then_with(|| a.label.cmp(&b.label))
            .then_with(|| a.model.cmp(&b.model))
    });
    v
}

/// Negative findings by label, then model.
fn negatives(findings: &[Finding]) -> Vec<&Finding> {
    let mut v: Vec<&Finding> = findings.iter().filter(|f| !f.positive).collect();
    v.sort_by(|a, b| {
        a.label
            .cmp(&b.label)
            .then_with(|| a.model.cmp(&b.model))
            .then_with(|| a.probability.total_cmp(&b.probability))
    });
    v
}

/// Passages that mention the finding, in retrieval order.
fn relevant<'a>(passages: &'a [Passage], f: &Finding) -> Vec<&'a Passage> {
    let terms = terms_for(&f.label);
    passages
        .iter()
        .filter(|p| {
            crate::verify::known_ids(std::slice::from_ref(p)).len() == 1
                && !mentions(&format!("{}. {}", p.title, p.text), &terms).is_empty()
        })
        .collect()
}

fn urgency_rank(u: &str) -> u8 {
    match u.to_lowercase().as_str() {
        "critical" | "stat" | "emergent" => 3,
        "urgent" | "high" => 2,
        "routine" | "normal" | "low" => 1,
        _ => 0,
    }
}

/// First sentence of a passage, at most `n` characters.
fn first_sentence(text: &str, n: usize) -> String {
    let t = plain(text);
    let end = t
        .char_indices()
        .find(|&(i, c)| c == '.' && t[i + 1..].chars().next().is_none_or(char::is_whitespace))
        .map_or(t.len(), |(i, _)| i + 1);
    let s = &t[..end];
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", s[..i].trim_end()),
        None => s.to_string(),
    }
}

/// The built-in report.
pub fn builtin_report(ctx: &CaseContext, findings: &[Finding], passages: &[Passage]) -> Sections {
    let pos = positives(findings);
    let neg = negatives(findings);
    let demo = ctx.uses_demo_model();

    // Clinical information.
    let mut clinical = Vec::new();
    match (ctx.age, ctx.sex) {
        (Some(a), Some(s)) => clinical.push(format!("{a}-year-old {}.", s.as_str())),
        (Some(a), None) => clinical.push(format!("{a} years old.")),
        (None, Some(s)) => clinical.push(format!("{}.", capitalise(s.as_str()))),
        (None, None) => {}
    }
    match ctx.history.as_deref().map(plain).filter(|h| !h.is_empty()) {
        Some(h) => clinical.push(format!("History: {h}")),
        None => clinical.push("History: not provided.".into()),
    }

    // Technique.
    let mut models: Vec<(String, String)> = findings
        .iter()
        .map(|f| (f.model.clone(), f.model_version.clone()))
        .collect();
    models.sort();
    models.dedup();
    let mut technique = vec![format!(
        "{} of the {}.",
        plain(&ctx.modality),
        plain(&ctx.body_part)
    )];
    if !models.is_empty() {
        technique.push(format!(
            "Automated image analysis by {}; probabilities are calibrated and compared with each model's threshold.",
            models
                .iter()
                .map(|(m, v)| format!("{m} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if demo {
        technique.push(DEMO_NOTICE.into());
    }

    // Findings: one sentence per finding.
    let mut fl = Vec::new();
    for f in &pos {
        fl.push(format!(
            "{}: suggested by the model (p = {}, threshold {}; {} {}; urgency {}).",
            capitalise(&display_term(&f.label)),
            p2(f.probability),
            p2(f.threshold),
            f.model,
            f.model_version,
            plain(&f.urgency)
        ));
    }
    for f in &neg {
        fl.push(format!(
            "{}: not suggested by the model (p = {}, threshold {}).",
            capitalise(&display_term(&f.label)),
            p2(f.probability),
            p2(f.threshold)
        ));
    }
    if fl.is_empty() {
        fl.push("The models returned no findings for this study.".into());
    }

    // Impression.
    let mut imp = Vec::new();
    if pos.is_empty() {
        imp.push(
            "No finding reached its model threshold. This is not a statement that the study is normal; the images require review."
                .to_string(),
        );
    } else {
        imp.push(format!(
            "AI-suggested for radiologist review: {}.",
            pos.iter()
                .map(|f| format!("{} (p = {})", display_term(&f.label), p2(f.probability)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if let Some(top) = pos.iter().max_by_key(|f| urgency_rank(&f.urgency)) {
            imp.push(format!("Highest triage urgency: {}.", plain(&top.urgency)));
        }
        for f in &pos {
            let ids: Vec<String> = relevant(passages, f)
                .into_iter()
                .take(MAX_SOURCES_PER_FINDING)
                .map(|p| format!("[{}]", p.id))
                .collect();
            if !ids.is_empty() {
                imp.push(format!(
                    "Sources on {}: {}.",
                    display_term(&f.label),
                    ids.join(" ")
                ));
            }
        }
    }
    if demo {
        imp.push(DEMO_NOTICE.into());
    }
    imp.push(format!("{}.", crate::report::AI_DRAFT_LABEL));

    // Recommendations: top retrieved guideline passages on the positive findings.
    let mut rec = Vec::new();
    let mut quoted: Vec<&str> = Vec::new();
    for f in &pos {
        for p in relevant(passages, f) {
            if p.source == SourceKind::Guideline
                && quoted.len() < MAX_GUIDELINES
                && !quoted.contains(&p.id.as_str())
            {
                quoted.push(&p.id);
                rec.push(format!(
                    "{}{}: {} [{}]",
                    plain(&p.title),
                    p.year.map_or_else(String::new, |y| format!(" ({y})")),
                    first_sentence(&p.text, 240),
                    p.id
                ));
            }
        }
    }
    if pos.is_empty() {
        rec.push("None from the models.".into());
    } else if rec.is_empty() {
        rec.push(
            "No retrieved guideline passage addresses these findings; follow local protocols."
                .into(),
        );
    }
    rec.push("Correlate with the clinical findings and prior imaging.".into());

    Sections {
        clinical_information: clinical.join(" "),
        technique: technique.join(" "),
        findings: fl.join("\n"),
        impression: imp.join(" "),
        recommendations: rec.join("\n"),
    }
}

/// The built-in plain-language explanation for the referring doctor.
pub fn builtin_explanation(
    ctx: &CaseContext,
    findings: &[Finding],
    passages: &[Passage],
) -> String {
    let mut s = vec![
        "This summary was produced by image-analysis software to support, not replace, the radiologist's reading.".to_string(),
    ];
    let pos = positives(findings);
    if pos.is_empty() {
        s.push("The software did not flag any finding above its thresholds; this does not mean the images are normal.".into());
    }
    for f in &pos {
        let ids: Vec<String> = relevant(passages, f)
            .into_iter()
            .take(1)
            .map(|p| format!(" [{}]", p.id))
            .collect();
        s.push(format!(
            "The software suggested {} (estimated probability {}; it flags this at {} or more).{}",
            display_term(&f.label),
            pct(f.probability),
            pct(f.threshold),
            ids.concat()
        ));
    }
    for f in negatives(findings) {
        s.push(format!(
            "The software did not flag {} (estimated probability {}, below its threshold of {}), which does not rule it out.",
            display_term(&f.label),
            pct(f.probability),
            pct(f.threshold)
        ));
    }
    if ctx.uses_demo_model() {
        s.push(DEMO_NOTICE.into());
    }
    s.push("The radiologist's signed report is the result that counts.".into());
    s.join(" ")
}
