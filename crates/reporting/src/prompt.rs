//! Versioned prompt templates (`prompts/*.md`) and defensive parsing of answers.

use serde_json::Value;

use crate::llm::ChatPrompt;
use crate::report::Sections;
use crate::terms::display_term;
use crate::types::{CaseContext, Finding, Passage, SourceKind};

/// Version of the prompt set; bump with new template files.
pub const PROMPT_VERSION: &str = "v1";
/// Version of the report prompt, stored with every LLM draft.
pub const REPORT_PROMPT_VERSION: &str = "report.v1";
/// Version of the explanation prompt.
pub const EXPLAIN_PROMPT_VERSION: &str = "explain.v1";

const REPORT_TEMPLATE: &str = include_str!("../prompts/report.v1.md");
const EXPLAIN_TEMPLATE: &str = include_str!("../prompts/explain.v1.md");

/// Longest passage text put into a prompt, in characters.
const PASSAGE_CHARS: usize = 1200;

/// Splits a template into its system and user parts.
fn split_template(template: &str) -> (&str, &str) {
    let body = template
        .split_once("<!-- system -->")
        .map_or(template, |(_, b)| b);
    match body.split_once("<!-- user -->") {
        Some((s, u)) => (s.trim(), u.trim()),
        None => ("", body.trim()),
    }
}

/// Replaces `{{key}}` placeholders in one pass over the template, so text put
/// in (a passage that contains "{{findings}}") is never expanded again.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 4096);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                match values.iter().find(|(k, _)| *k == key) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The case as the prompt states it.
pub fn render_case(ctx: &CaseContext) -> String {
    let mut lines = Vec::new();
    lines.push(format!(
        "- Patient: {}, {}",
        ctx.age
            .map_or_else(|| "age not given".to_string(), |a| format!("{a} years")),
        ctx.sex.map_or("sex not given", |s| s.as_str())
    ));
    lines.push(format!(
        "- Clinical history: {}",
        ctx.history
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .unwrap_or("not given")
    ));
    lines.push(format!("- Modality: {}", ctx.modality));
    lines.push(format!("- Body part: {}", ctx.body_part));
    for m in &ctx.models {
        lines.push(format!(
            "- Model {} {}: {}{}",
            m.model,
            m.model_version,
            m.intended_use.trim(),
            if m.is_demo() {
                " (demonstration model, not for clinical use)"
            } else {
                ""
            }
        ));
    }
    lines.join("\n")
}

fn finding_line(f: &Finding) -> String {
    format!(
        "- {} ({}): p = {:.2}, threshold {:.2}, urgency {}, model {} {}",
        f.label,
        display_term(&f.label),
        f.probability,
        f.threshold,
        f.urgency,
        f.model,
        f.model_version
    )
}

/// Calibrated findings, above-threshold first.
pub fn render_findings(findings: &[Finding]) -> String {
    let pos: Vec<String> = findings
        .iter()
        .filter(|f| f.positive)
        .map(finding_line)
        .collect();
    let neg: Vec<String> = findings
        .iter()
        .filter(|f| !f.positive)
        .map(finding_line)
        .collect();
    format!(
        "Above threshold (suggested by the model):\n{}\n\nBelow threshold (not suggested by the model):\n{}",
        if pos.is_empty() {
            "- none".to_string()
        } else {
            pos.join("\n")
        },
        if neg.is_empty() {
            "- none".to_string()
        } else {
            neg.join("\n")
        }
    )
}

fn truncate_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Retrieved passages, numbered, each with its citation id.
pub fn render_passages(passages: &[Passage]) -> String {
    if passages.is_empty() {
        return "(none retrieved; cite nothing)".into();
    }
    passages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let source = match p.source {
                SourceKind::Literature => "literature",
                SourceKind::Guideline => "guideline",
                SourceKind::OrgReport => "organisation report",
            };
            format!(
                "[{n}] id [{id}] ({source}, {year}) {title}\n    \"\"\"{text}\"\"\"",
                n = i + 1,
                id = p.id,
                year = p
                    .year
                    .map_or_else(|| "year unknown".into(), |y| y.to_string()),
                title = p.title.trim(),
                text = truncate_chars(p.text.trim(), PASSAGE_CHARS).replace("\"\"\"", "\""),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn prompt_from(
    template: &str,
    ctx: &CaseContext,
    findings: &[Finding],
    passages: &[Passage],
) -> ChatPrompt {
    let (system, user) = split_template(template);
    let case = render_case(ctx);
    let f = render_findings(findings);
    let p = render_passages(passages);
    ChatPrompt {
        system: system.to_string(),
        user: fill(user, &[("case", &case), ("findings", &f), ("passages", &p)]),
        images: Vec::new(),
    }
}

/// The report prompt (`report.v1`).
pub fn report_prompt(ctx: &CaseContext, findings: &[Finding], passages: &[Passage]) -> ChatPrompt {
    prompt_from(REPORT_TEMPLATE, ctx, findings, passages)
}

/// The plain-language explanation prompt (`explain.v1`).
pub fn explain_prompt(ctx: &CaseContext, findings: &[Finding], passages: &[Passage]) -> ChatPrompt {
    prompt_from(EXPLAIN_TEMPLATE, ctx, findings, passages)
}

/// Drops `<think>…</think>` blocks that reasoning models emit.
fn strip_thinking(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<think>") {
        out.push_str(&rest[..start]);
        match rest[start..].find("</think>") {
            Some(end) => rest = &rest[start + end + "</think>".len()..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Clone, Copy)]
enum Slot {
    Clinical,
    Technique,
    Findings,
    Impression,
    Recommendations,
}

/// Which section a key or heading names ("Clinical Information", "clinical_information").
fn slot(name: &str) -> Option<Slot> {
    let n: String = name
        .chars()
        .filter(|c| c.is_alphabetic())
        .collect::<String>()
        .to_lowercase();
    match n.as_str() {
        "clinicalinformation" | "clinicalinfo" | "clinicalhistory" | "history" | "indication" => {
            Some(Slot::Clinical)
        }
        "technique" => Some(Slot::Technique),
        "findings" | "finding" => Some(Slot::Findings),
        "impression" | "impressions" | "conclusion" => Some(Slot::Impression),
        "recommendations" | "recommendation" => Some(Slot::Recommendations),
        _ => None,
    }
}

fn put(s: &mut Sections, slot: Slot, text: String) {
    let t = match slot {
        Slot::Clinical => &mut s.clinical_information,
        Slot::Technique => &mut s.technique,
        Slot::Findings => &mut s.findings,
        Slot::Impression => &mut s.impression,
        Slot::Recommendations => &mut s.recommendations,
    };
    if !t.is_empty() && !text.is_empty() {
        t.push('\n');
    }
    t.push_str(text.trim());
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_string(),
        Value::Array(items) => items
            .iter()
            .map(value_text)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The outermost `{…}` of a text (code fences and chatter around it ignored).
fn json_object(text: &str) -> Option<serde_json::Map<String, Value>> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    if end <= start {
        return None;
    }
    match serde_json::from_str::<Value>(&text[start..=end]).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn from_json(map: &serde_json::Map<String, Value>) -> Sections {
    let mut s = Sections::default();
    // Some models nest the sections: {"report": {...}} or {"sections": {...}}.
    for (k, v) in map {
        match (slot(k), v) {
            (Some(sl), v) => put(&mut s, sl, value_text(v)),
            (None, Value::Object(inner)) => {
                let nested = from_json(inner);
                for (dst, src) in s.iter_mut().into_iter().zip(nested.iter()) {
                    if dst.is_empty() {
                        *dst = src.1.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    s
}

/// A heading line: `## Findings`, `**Impression:**`, `FINDINGS: text…`.
fn heading(line: &str) -> Option<(Slot, String)> {
    let l = line.trim().trim_start_matches(['#', '*', '_', ' ']);
    let (name, rest) = match l.split_once(':') {
        Some((n, r)) => (n, r),
        None => (l, ""),
    };
    let name = name.trim().trim_end_matches(['*', '_']);
    if name.split_whitespace().count() > 3 {
        return None;
    }
    let sl = slot(name)?;
    let rest = rest.trim().trim_start_matches(['*', '_']).trim();
    Some((sl, rest.to_string()))
}

fn from_headings(text: &str) -> Sections {
    let mut s = Sections::default();
    let mut current: Option<Slot> = None;
    let mut buf: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some((sl, rest)) = heading(line) {
            if let Some(c) = current {
                put(&mut s, c, buf.join("\n"));
            }
            buf.clear();
            current = Some(sl);
            if !rest.is_empty() {
                buf.push(rest);
            }
        } else if current.is_some() {
            buf.push(line.trim_end().to_string());
        }
    }
    if let Some(c) = current {
        put(&mut s, c, buf.join("\n"));
    }
    s
}

/// Parses a report answer: a JSON object with the section fields, or, failing
/// that, text with section headings. `None` when Findings or Impression is missing.
pub fn parse_report(answer: &str) -> Option<Sections> {
    let text = strip_thinking(answer);
    let parsed = json_object(&text)
        .map(|m| from_json(&m))
        .filter(|s| !s.findings.is_empty() && !s.impression.is_empty())
        .unwrap_or_else(|| from_headings(&text));
    (!parsed.findings.trim().is_empty() && !parsed.impression.trim().is_empty()).then_some(parsed)
}

/// Parses an explanation answer: plain text (a JSON `{"explanation": …}` is
/// accepted too). `None` when empty.
pub fn parse_explanation(answer: &str) -> Option<String> {
    let text = strip_thinking(answer);
    let text = text.trim();
    let text = json_object(text)
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| k.to_lowercase().contains("explanation"))
                .map(|(_, v)| value_text(v))
        })
        .unwrap_or_else(|| {
            text.trim_start_matches("```text")
                .trim_start_matches("```")
                .trim_end_matches("```")
                .trim()
                .to_string()
        });
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_have_both_parts_and_all_placeholders() {
        for t in [REPORT_TEMPLATE, EXPLAIN_TEMPLATE] {
            let (s, u) = split_template(t);
            assert!(s.contains("You do not diagnose"));
            for key in ["{{case}}", "{{findings}}", "{{passages}}"] {
                assert!(u.contains(key), "{key}");
            }
        }
    }

    #[test]
    fn fill_does_not_expand_inserted_text() {
        let out = fill("a {{x}} b {{y}} {{z}}", &[("x", "{{y}}"), ("y", "Y")]);
        assert_eq!(out, "a {{y}} b Y {{z}}");
    }

    #[test]
    fn parses_fenced_json_with_chatter() {
        let a = "Sure!\n```json\n{\"Clinical Information\": \"Cough.\", \"technique\": \"PA chest.\", \"findings\": [\"Effusion.\", \"Cardiomegaly.\"], \"impression\": \"Effusion.\", \"recommendations\": null}\n```";
        let s = parse_report(a).expect("parsed");
        assert_eq!(s.clinical_information, "Cough.");
        assert_eq!(s.findings, "Effusion.\nCardiomegaly.");
        assert_eq!(s.recommendations, "");
    }

    #[test]
    fn parses_headings_and_thinking() {
        let a = "<think>hmm {not json}</think>\n## Clinical information\nCough\n**Findings:** Small effusion.\nMore.\nIMPRESSION: Effusion.\n### Recommendations\nFollow up.";
        let s = parse_report(a).expect("parsed");
        assert_eq!(s.clinical_information, "Cough");
        assert_eq!(s.findings, "Small effusion.\nMore.");
        assert_eq!(s.impression, "Effusion.");
        assert_eq!(s.recommendations, "Follow up.");
    }

    #[test]
    fn rejects_answers_without_findings_or_impression() {
        assert!(parse_report("I cannot help with that.").is_none());
        assert!(parse_report("{\"findings\": \"x\"}").is_none());
    }

    #[test]
    fn explanation_plain_or_json() {
        assert_eq!(parse_explanation("  Hello. ").as_deref(), Some("Hello."));
        assert_eq!(
            parse_explanation("{\"explanation\": \"Hi.\"}").as_deref(),
            Some("Hi.")
        );
        assert!(parse_explanation("<think>x</think>  ").is_none());
    }
}
