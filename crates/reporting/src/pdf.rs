//! The signed (or draft) radiology report as a PDF a hospital can file.
//!
//! [`render_report_pdf`] is a pure function from a [`ReportDocument`] to PDF bytes:
//! no I/O, no clock, no global configuration. It is CPU-bound (tens of milliseconds
//! for a few pages with images), so async callers run it in `spawn_blocking`.
//!
//! ```no_run
//! use reporting::pdf::{render_report_pdf, Paper, PdfOptions, ReportDocument};
//! # fn demo(doc: &ReportDocument) -> Result<(), reporting::pdf::PdfError> {
//! let bytes = render_report_pdf(doc, &PdfOptions { paper: Paper::A4 })?;
//! assert!(bytes.starts_with(b"%PDF"));
//! # Ok(()) }
//! ```
//!
//! Layout: a running header (organisation, patient pseudonym) and footer
//! ("AI-assisted; requires clinician review", signature status, "Page n of N") on
//! every page; the title block; studies; the report sections with citations
//! numbered against the reference list; the AI findings table with each human
//! decision (its header repeats on every page it spans); key images beside their
//! overlays with a vector colour bar or class legend; the plain-language explanation;
//! the signature block; addenda; references with PubMed links; the models with
//! their intended use; and the fixed disclaimer. A report without a signature is a
//! draft, and every page carries a diagonal DRAFT watermark.
//!
//! Text is set in DejaVu Sans (Latin, Greek, Cyrillic, …) with Droid Sans Fallback
//! for CJK, embedded as subsets; lines are wrapped by the fonts' advance widths.

mod fonts;
mod layout;
mod model;

pub use model::{
    Addendum, ColourMap, Decision, Finding, KeyImage, Legend, LegendEntry, ModelInfo, Organisation,
    Reference, ReportDocument, ReportSections, Signature, Study, Urgency,
};

use chrono::{DateTime, Utc};
use printpdf::{
    ExtendedGraphicsState, FontId, ImageCompression, ImageOptimizationOptions, Op, PdfDocument,
    PdfPage, PdfSaveOptions, Pt, RawImage, XObjectId,
};

use fonts::{FontSet, Weight};
use layout::{wrap, FontIds, Geometry, Rgbf, Span, Writer, ACCENT, BLACK, GREY, LIGHT, RULE};

/// The fixed disclaimer printed on every report.
pub const DISCLAIMER: &str = "AI output in this report is a suggestion, not a diagnosis. \
Every AI finding, probability and drafted sentence was produced by software to support a \
clinician, and is valid only as reviewed and signed by the responsible clinician named in \
this report.";

/// The line in every page footer.
pub const FOOTER_NOTICE: &str = "AI-assisted; requires clinician review.";

/// The intended-use statement added for demonstration model packs.
pub const DEMO_MODEL_NOTICE: &str =
    "Demonstration model trained on synthetic phantoms, not for clinical use.";

/// Paper size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Paper {
    /// 210 × 297 mm.
    #[default]
    A4,
    /// US Letter, 8.5 × 11 in.
    Letter,
}

impl Paper {
    /// Width and height in points.
    fn size_pt(self) -> (f32, f32) {
        match self {
            Paper::A4 => (595.276, 841.89),
            Paper::Letter => (612.0, 792.0),
        }
    }
}

/// Rendering options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PdfOptions {
    pub paper: Paper,
}

/// Which picture of a key image failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePart {
    Image,
    Overlay,
}

impl std::fmt::Display for ImagePart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImagePart::Image => "image",
            ImagePart::Overlay => "overlay",
        })
    }
}

/// Why a report could not be rendered. Input errors name the offending item; none
/// of them carries patient data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PdfError {
    /// A key image's image or overlay is not a decodable PNG.
    #[error("key image {index}: the {part} is not a decodable PNG ({reason})")]
    InvalidImage {
        /// 0-based position in [`ReportDocument::key_images`].
        index: usize,
        part: ImagePart,
        reason: String,
    },
    /// A finding's probability or threshold is not a number in 0..=1.
    #[error("finding {index}: probability and threshold must be numbers in 0..=1")]
    InvalidProbability {
        /// 0-based position in [`ReportDocument::findings`].
        index: usize,
    },
    /// An embedded font failed to parse (a build defect, not an input error).
    #[error("embedded font {0} could not be parsed")]
    Font(&'static str),
}

/// A decoded key image ready to place.
struct Picture {
    id: XObjectId,
    width: usize,
    height: usize,
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn decode_png(bytes: &[u8], index: usize, part: ImagePart) -> Result<RawImage, PdfError> {
    let err = |reason: String| PdfError::InvalidImage {
        index,
        part,
        reason,
    };
    if !bytes.starts_with(PNG_SIGNATURE) {
        return Err(err("missing PNG signature".into()));
    }
    let mut warnings = Vec::new();
    let image = RawImage::decode_from_bytes(bytes, &mut warnings).map_err(err)?;
    if image.width == 0 || image.height == 0 {
        return Err(err("empty image".into()));
    }
    Ok(image)
}

fn valid_unit(x: f64) -> bool {
    x.is_finite() && (0.0..=1.0).contains(&x)
}

/// Renders `report` as a PDF.
///
/// Errors: [`PdfError::InvalidImage`] for a key image or overlay that is not a
/// decodable PNG, [`PdfError::InvalidProbability`] for a probability or threshold
/// outside 0..=1. Never panics on any input.
pub fn render_report_pdf(
    report: &ReportDocument,
    options: &PdfOptions,
) -> Result<Vec<u8>, PdfError> {
    let fonts = fonts::fonts()?;
    for (index, f) in report.findings.iter().enumerate() {
        if !valid_unit(f.probability) || !valid_unit(f.threshold) {
            return Err(PdfError::InvalidProbability { index });
        }
    }

    let mut doc = PdfDocument::new(&format!("Radiology report — {}", report.case_title));
    let info = &mut doc.metadata.info;
    info.producer = "MedVision".into();
    info.creator = "MedVision".into();
    info.author = match &report.signature {
        Some(sig) => sig.signed_by.clone(),
        None => report.organisation.name.clone(),
    };
    info.subject = "Radiology report".into();
    // The document's dates are the report's, so the same input gives the same bytes.
    if let Ok(t) = printpdf::OffsetDateTime::from_unix_timestamp(report.generated_at.timestamp()) {
        info.creation_date = t;
        info.modification_date = t;
        info.metadata_date = t;
    }

    // Decode every picture first: a bad PNG fails before any layout work.
    let mut pictures: Vec<(Picture, Option<Picture>)> = Vec::new();
    for (index, key) in report.key_images.iter().enumerate() {
        let add = |doc: &mut PdfDocument, raw: RawImage| Picture {
            width: raw.width,
            height: raw.height,
            id: doc.add_image(&raw),
        };
        let image = decode_png(&key.image_png, index, ImagePart::Image)?;
        let overlay = key
            .overlay_png
            .as_deref()
            .map(|b| decode_png(b, index, ImagePart::Overlay))
            .transpose()?;
        let image = add(&mut doc, image);
        let overlay = overlay.map(|o| add(&mut doc, o));
        pictures.push((image, overlay));
    }

    let (width, height) = options.paper.size_pt();
    let geo = Geometry {
        width,
        height,
        left: 50.0,
        right: width - 50.0,
        top: 84.0,
        bottom: height - 62.0,
    };
    // The ids become the fonts' /BaseFont names: a six-letter tag and '+' mark a
    // subset font (PDF 32000-1, 9.6.4).
    let ids = FontIds {
        regular: FontId("MVDJVR+DejaVuSans".into()),
        bold: FontId("MVDJVB+DejaVuSans-Bold".into()),
        cjk: FontId("MVDRSF+DroidSansFallback".into()),
        used: Default::default(),
    };
    let mut w = Writer::new(fonts, ids, geo);

    title_block(&mut w, report);
    studies(&mut w, report);
    sections(&mut w, report);
    findings_table(&mut w, report);
    key_images(&mut w, report, &pictures);
    if let Some(text) = report
        .plain_language
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        heading(&mut w, "Plain-language explanation");
        body(&mut w, &number_citations(text, &report.references));
    }
    signature_block(&mut w, report);
    addenda(&mut w, report);
    references(&mut w, report);
    models(&mut w, report);
    disclaimer(&mut w);

    let watermark = if report.signature.is_none() {
        Some(doc.add_graphics_state(ExtendedGraphicsState::default().with_current_fill_alpha(0.16)))
    } else {
        None
    };
    let total = w.pages.len();
    let mut pages = Vec::with_capacity(total);
    for n in 0..total {
        let mut ops = page_chrome(&mut w, report, n + 1, total);
        if let Some(gs) = &watermark {
            ops.extend(draft_watermark(&mut w, gs.clone()));
        }
        let mut content = std::mem::take(&mut w.pages[n]);
        content.extend(ops);
        pages.push(PdfPage::new(
            printpdf::Mm::from(Pt(width)),
            printpdf::Mm::from(Pt(height)),
            content,
        ));
    }
    w.register_fonts(&mut doc);
    doc.with_pages(pages);

    let save = PdfSaveOptions {
        optimize: true,
        subset_fonts: true,
        secure: true,
        // Lossless: medical images are never re-encoded as JPEG or resized.
        image_optimization: Some(ImageOptimizationOptions {
            quality: None,
            max_image_size: None,
            dither_greyscale: None,
            convert_to_greyscale: Some(false),
            auto_optimize: Some(false),
            format: Some(ImageCompression::Flate),
        }),
    };
    let mut warnings = Vec::new();
    Ok(doc.save(&save, &mut warnings))
}

fn fmt_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn percent(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// Shortens `text` with an ellipsis to fit `max` points.
fn ellipsize(fonts: &FontSet, text: &str, weight: Weight, size: f32, max: f32) -> String {
    let text = layout::clean(text).replace('\n', " ");
    if fonts.width(&text, weight, size) <= max {
        return text;
    }
    let budget = max - fonts.width("…", weight, size);
    let mut out = String::new();
    let mut used = 0.0;
    for c in text.chars() {
        let cw = fonts.width(c.encode_utf8(&mut [0; 4]), weight, size);
        if used + cw > budget {
            break;
        }
        used += cw;
        out.push(c);
    }
    out.push('…');
    out
}

/// Replaces citations of known references by their numbers: `[PMID:1]` → `[1]`,
/// `[PMID:1; GL:x]` → `[1, 2]`. Citations of unknown ids are left as written.
fn number_citations(text: &str, refs: &[Reference]) -> String {
    let number = |key: &str| {
        refs.iter()
            .position(|r| r.id.trim().eq_ignore_ascii_case(key.trim()))
            .map(|i| i + 1)
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = &after[..close];
        let keys: Vec<&str> = inner.split([',', ';']).collect();
        let numbers: Option<Vec<usize>> = keys.iter().map(|k| number(k)).collect();
        match numbers {
            Some(ns) if !inner.trim().is_empty() => {
                let ns: Vec<String> = ns.iter().map(ToString::to_string).collect();
                out.push('[');
                out.push_str(&ns.join(", "));
                out.push(']');
            }
            _ => {
                out.push('[');
                out.push_str(inner);
                out.push(']');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

const BODY: f32 = 9.5;
const BODY_LEADING: f32 = 13.0;

fn heading(w: &mut Writer, text: &str) {
    // Keep a heading with at least three lines of what follows.
    w.y += 10.0;
    w.ensure(22.0 + 3.0 * BODY_LEADING);
    let (x, right) = (w.geo.left, w.geo.right);
    let base = w.y + 11.0;
    w.text_at(x, base, text, Weight::Bold, 11.5, ACCENT);
    w.hline(x, right, base + 4.0, ACCENT, 0.8);
    w.y = base + 10.0;
}

fn subheading(w: &mut Writer, text: &str) {
    w.y += 4.0;
    w.ensure(14.0 + 2.0 * BODY_LEADING);
    let x = w.geo.left;
    w.text_at(x, w.y + 9.5, text, Weight::Bold, 10.0, BLACK);
    w.y += 15.0;
}

/// Body text: paragraphs separated by blank lines.
fn body(w: &mut Writer, text: &str) {
    let (x, width) = (w.geo.left, w.geo.content_width());
    for (i, para) in text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .enumerate()
    {
        if i > 0 {
            w.y += 4.0;
        }
        w.paragraph(&[Span::regular(para.trim())], x, width, BODY, BODY_LEADING);
    }
}

fn title_block(w: &mut Writer, r: &ReportDocument) {
    let (x, width) = (w.geo.left, w.geo.content_width());
    let draft = r.signature.is_none();
    let status = if draft {
        "DRAFT — not signed"
    } else if r.addenda.is_empty() {
        "Final — signed"
    } else {
        "Final — signed, with addenda"
    };
    // Title and status badge.
    let badge_size = 9.0;
    let badge_w = w.fonts.width(status, Weight::Bold, badge_size) + 14.0;
    let title = ellipsize(
        w.fonts,
        "Radiology report",
        Weight::Bold,
        17.0,
        width - badge_w - 10.0,
    );
    w.text_at(x, w.y + 16.0, &title, Weight::Bold, 17.0, BLACK);
    let badge_color = if draft {
        Rgbf(0.75, 0.12, 0.12)
    } else {
        Rgbf(0.10, 0.45, 0.22)
    };
    let bx = w.geo.right - badge_w;
    w.fill_rect(bx, w.y + 2.0, badge_w, 17.0, badge_color);
    w.text_at(
        bx + 7.0,
        w.y + 14.0,
        status,
        Weight::Bold,
        badge_size,
        Rgbf(1.0, 1.0, 1.0),
    );
    w.y += 26.0;

    // Patient / case box: two columns of label–value pairs.
    let mut pairs: Vec<(&str, String)> = vec![
        ("Patient (pseudonym)", r.patient_pseudonym.clone()),
        ("Case", r.case_title.clone()),
    ];
    if let Some(reference) = r.case_reference.as_deref().filter(|s| !s.trim().is_empty()) {
        pairs.push(("Case reference", reference.to_string()));
    }
    pairs.push(("Report status", status.to_string()));
    if let Some(sig) = &r.signature {
        pairs.push((
            "Signed",
            format!("{} · {}", sig.signed_by, fmt_time(&sig.signed_at)),
        ));
    }
    pairs.push(("Generated", fmt_time(&r.generated_at)));

    let pad = 8.0;
    let col_w = (width - 2.0 * pad - 12.0) / 2.0;
    let label_w = 104.0;
    let value_w = col_w - label_w;
    let mut cells = Vec::new();
    for (label, value) in &pairs {
        let mut lines = wrap(w.fonts, &[Span::regular(value.clone())], BODY, value_w);
        layout::cap_lines(w.fonts, &mut lines, 4, BODY);
        cells.push((*label, lines));
    }
    let rows: Vec<_> = cells.chunks(2).collect();
    let row_heights: Vec<f32> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|(_, l)| l.len().max(1) as f32 * BODY_LEADING)
                .fold(0.0, f32::max)
                + 3.0
        })
        .collect();
    let box_h: f32 = row_heights.iter().sum::<f32>() + 2.0 * pad;
    w.ensure(box_h);
    let top = w.y;
    w.fill_rect(x, top, width, box_h, LIGHT);
    w.stroke_rect(x, top, width, box_h, RULE, 0.5);
    let mut y = top + pad;
    for (row, h) in rows.iter().zip(&row_heights) {
        for (c, (label, lines)) in row.iter().enumerate() {
            let cx = x + pad + c as f32 * (col_w + 12.0);
            w.text_at(cx, y + BODY * 0.93, label, Weight::Bold, 8.0, GREY);
            for (i, line) in lines.iter().enumerate() {
                let base = y + BODY * 0.93 + i as f32 * BODY_LEADING;
                w.line_at(cx + label_w, base, line, BODY);
            }
        }
        y += h;
    }
    w.y = top + box_h;
}

fn studies(w: &mut Writer, r: &ReportDocument) {
    if r.studies.is_empty() {
        return;
    }
    heading(
        w,
        if r.studies.len() == 1 {
            "Study"
        } else {
            "Studies"
        },
    );
    let rows = r
        .studies
        .iter()
        .map(|s| {
            vec![
                vec![Span::regular(s.modality.clone())],
                vec![Span::regular(s.body_part.clone())],
                vec![Span::regular(
                    s.date
                        .map(|d| d.format("%Y-%m-%d").to_string())
                        .unwrap_or_else(|| "—".into()),
                )],
                vec![Span::regular(s.description.clone().unwrap_or_default())],
            ]
        })
        .collect();
    table(
        w,
        &[
            ("Modality", 0.14),
            ("Body part", 0.18),
            ("Date", 0.16),
            ("Description", 0.52),
        ],
        rows,
    );
}

fn sections(w: &mut Writer, r: &ReportDocument) {
    let s = &r.sections;
    let all = [
        ("Clinical information", &s.clinical_information),
        ("Technique", &s.technique),
        ("Findings", &s.findings),
        ("Impression", &s.impression),
        ("Recommendations", &s.recommendations),
    ];
    if all.iter().all(|(_, t)| t.trim().is_empty()) {
        return;
    }
    heading(w, "Report");
    for (title, text) in all {
        if text.trim().is_empty() {
            continue;
        }
        subheading(w, title);
        body(w, &number_citations(text, &r.references));
    }
}

fn findings_table(w: &mut Writer, r: &ReportDocument) {
    if r.findings.is_empty() {
        return;
    }
    heading(w, "AI findings and review decisions");
    let rows = r
        .findings
        .iter()
        .map(|f| {
            let mut label = vec![Span::bold(f.label.clone())];
            if let Some(model) = f.model.as_deref().filter(|m| !m.trim().is_empty()) {
                label.push(Span::regular(format!("\n{model}")).colored(GREY));
            }
            let result = if f.positive {
                Span::bold("Positive").colored(Rgbf(0.72, 0.10, 0.10))
            } else {
                Span::regular("Negative")
            };
            let urgency = match f.urgency {
                Urgency::Urgent | Urgency::Stat => {
                    Span::bold(f.urgency.label()).colored(Rgbf(0.72, 0.10, 0.10))
                }
                _ => Span::regular(f.urgency.label()),
            };
            let mut decision = vec![Span::bold(f.decision.label())];
            if let Some(by) = f.decided_by.as_deref().filter(|b| !b.trim().is_empty()) {
                decision.push(Span::regular(format!(" by {by}")));
            }
            // A reader's own finding has no model probability.
            let (p, t) = if f.decision == Decision::Added {
                ("—".to_string(), "—".to_string())
            } else {
                (percent(f.probability), percent(f.threshold))
            };
            vec![
                label,
                vec![Span::regular(p)],
                vec![Span::regular(t)],
                vec![result],
                vec![urgency],
                decision,
            ]
        })
        .collect();
    table(
        w,
        &[
            ("Finding", 0.26),
            ("Probability", 0.14),
            ("Threshold", 0.125),
            ("Result", 0.11),
            ("Urgency", 0.11),
            ("Decision", 0.255),
        ],
        rows,
    );
    w.y += 3.0;
    let x = w.geo.left;
    let width = w.geo.content_width();
    w.paragraph(
        &[Span::regular(
            "Probabilities are calibrated model outputs; a finding is positive when its probability reaches the threshold, unless a radiologist's decision changed it.",
        )
        .colored(GREY)],
        x,
        width,
        7.5,
        10.0,
    );
}

/// A table with a coloured header row that repeats on every page it spans.
fn table(w: &mut Writer, cols: &[(&str, f32)], rows: Vec<Vec<Vec<Span>>>) {
    let x0 = w.geo.left;
    let width = w.geo.content_width();
    let pad = 4.0;
    let size = 8.5;
    let leading = 11.0;
    let widths: Vec<f32> = cols.iter().map(|(_, f)| f * width).collect();
    let header_h = leading + 2.0 * pad;
    let draw_header = |w: &mut Writer| {
        let y = w.y;
        w.fill_rect(x0, y, width, header_h, ACCENT);
        let mut x = x0;
        for ((title, _), cw) in cols.iter().zip(&widths) {
            let t = ellipsize(w.fonts, title, Weight::Bold, size, cw - 2.0 * pad);
            w.text_at(
                x + pad,
                y + pad + size * 0.93,
                &t,
                Weight::Bold,
                size,
                Rgbf(1.0, 1.0, 1.0),
            );
            x += cw;
        }
        w.y += header_h;
    };
    let wrapped: Vec<Vec<Vec<layout::WrappedLine>>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(cell, cw)| wrap(w.fonts, cell, size, cw - 2.0 * pad))
                .collect()
        })
        .collect();
    let first_h = wrapped
        .first()
        .map(|r| row_height(r, leading, pad))
        .unwrap_or(0.0);
    w.ensure(header_h + first_h.min(w.geo.bottom - w.geo.top - header_h));
    draw_header(w);
    let page_room = w.geo.bottom - w.geo.top - header_h;
    for (i, row) in wrapped.iter().enumerate() {
        let h = row_height(row, leading, pad);
        if w.y + h > w.geo.bottom && h <= page_room {
            // Move the whole row to the next page.
            w.new_page();
            draw_header(w);
        }
        // A row taller than a page is split between lines.
        let total = row.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut start = 0;
        while start < total {
            let mut fit = ((w.geo.bottom - w.y - 2.0 * pad) / leading)
                .floor()
                .max(0.0) as usize;
            if fit == 0 {
                w.new_page();
                draw_header(w);
                fit = ((w.geo.bottom - w.y - 2.0 * pad) / leading)
                    .floor()
                    .max(1.0) as usize;
            }
            let end = (start + fit).min(total);
            let slice_h = (end - start) as f32 * leading + 2.0 * pad;
            let y = w.y;
            if i % 2 == 1 {
                w.fill_rect(x0, y, width, slice_h, LIGHT);
            }
            let mut x = x0;
            for (lines, cw) in row.iter().zip(&widths) {
                for (l, line) in lines.iter().enumerate().take(end).skip(start) {
                    let base = y + pad + size * 0.93 + (l - start) as f32 * leading;
                    w.line_at(x + pad, base, line, size);
                }
                x += cw;
            }
            w.hline(x0, x0 + width, y + slice_h, RULE, 0.4);
            w.y += slice_h;
            start = end;
        }
    }
}

fn row_height(row: &[Vec<layout::WrappedLine>], leading: f32, pad: f32) -> f32 {
    row.iter().map(|l| l.len().max(1)).max().unwrap_or(1) as f32 * leading + 2.0 * pad
}

fn colour_at(map: ColourMap, t: f32) -> Rgbf {
    let t = t.clamp(0.0, 1.0);
    let c = |v: f32| v.clamp(0.0, 1.0);
    let stops = |s: &[[u8; 3]; 5]| {
        let pos = t * 4.0;
        let i = (pos.floor() as usize).min(3);
        let f = pos - i as f32;
        let a = Rgbf::from_u8(s[i]);
        let b = Rgbf::from_u8(s[i + 1]);
        Rgbf(
            a.0 + (b.0 - a.0) * f,
            a.1 + (b.1 - a.1) * f,
            a.2 + (b.2 - a.2) * f,
        )
    };
    match map {
        ColourMap::Jet => Rgbf(
            c(1.5 - (4.0 * t - 3.0).abs()),
            c(1.5 - (4.0 * t - 2.0).abs()),
            c(1.5 - (4.0 * t - 1.0).abs()),
        ),
        ColourMap::Hot => Rgbf(c(3.0 * t), c(3.0 * t - 1.0), c(3.0 * t - 2.0)),
        ColourMap::Inferno => stops(&[
            [0, 0, 4],
            [87, 16, 110],
            [188, 55, 84],
            [249, 142, 9],
            [252, 255, 164],
        ]),
        ColourMap::Viridis => stops(&[
            [68, 1, 84],
            [59, 82, 139],
            [33, 145, 140],
            [94, 201, 98],
            [253, 231, 37],
        ]),
    }
}

/// Height the legend takes.
fn legend_height(w: &Writer, legend: &Legend, width: f32) -> f32 {
    match legend {
        Legend::ColourBar { .. } => 36.0,
        Legend::Classes { entries } => {
            let rows = class_rows(w, entries, width);
            rows.len() as f32 * 12.0 + 4.0
        }
    }
}

fn class_rows<'e>(
    w: &Writer,
    entries: &'e [LegendEntry],
    width: f32,
) -> Vec<Vec<(&'e LegendEntry, f32)>> {
    let mut rows: Vec<Vec<(&LegendEntry, f32)>> = vec![Vec::new()];
    let mut x = 0.0;
    // A legend longer than this would not be read; the caption can say more.
    for e in entries.iter().take(16) {
        let label = ellipsize(w.fonts, &e.label, Weight::Regular, 8.0, width - 14.0);
        let ew = 12.0 + w.fonts.width(&label, Weight::Regular, 8.0) + 10.0;
        if x + ew > width && x > 0.0 {
            rows.push(Vec::new());
            x = 0.0;
        }
        if let Some(row) = rows.last_mut() {
            row.push((e, x));
        }
        x += ew;
    }
    rows
}

fn draw_legend(w: &mut Writer, legend: &Legend, x: f32, y: f32, width: f32) {
    match legend {
        Legend::ColourBar {
            title,
            colour_map,
            min_label,
            max_label,
        } => {
            let t = ellipsize(w.fonts, title, Weight::Bold, 7.5, width);
            w.text_at(x, y + 8.0, &t, Weight::Bold, 7.5, GREY);
            let bar_y = y + 11.0;
            let steps = 64;
            let step_w = width / steps as f32;
            for i in 0..steps {
                let colour = colour_at(*colour_map, (i as f32 + 0.5) / steps as f32);
                // Overlap by a hair so no seams show between steps.
                w.fill_rect(x + i as f32 * step_w, bar_y, step_w + 0.3, 9.0, colour);
            }
            w.stroke_rect(x, bar_y, width, 9.0, GREY, 0.4);
            let min_t = ellipsize(w.fonts, min_label, Weight::Regular, 7.5, width / 2.0 - 2.0);
            let max_t = ellipsize(w.fonts, max_label, Weight::Regular, 7.5, width / 2.0 - 2.0);
            w.text_at(x, bar_y + 18.0, &min_t, Weight::Regular, 7.5, BLACK);
            let mw = w.fonts.width(&max_t, Weight::Regular, 7.5);
            w.text_at(
                x + width - mw,
                bar_y + 18.0,
                &max_t,
                Weight::Regular,
                7.5,
                BLACK,
            );
        }
        Legend::Classes { entries } => {
            let rows = class_rows(w, entries, width);
            for (r, row) in rows.iter().enumerate() {
                let ry = y + 4.0 + r as f32 * 12.0;
                for (e, ex) in row {
                    w.fill_rect(x + ex, ry, 8.0, 8.0, Rgbf::from_u8(e.rgb));
                    w.stroke_rect(x + ex, ry, 8.0, 8.0, GREY, 0.3);
                    let label = ellipsize(w.fonts, &e.label, Weight::Regular, 8.0, width - 14.0);
                    w.text_at(x + ex + 12.0, ry + 7.0, &label, Weight::Regular, 8.0, BLACK);
                }
            }
        }
    }
}

/// Fits `px_w` × `px_h` into `max_w` × `max_h` keeping the aspect ratio.
fn fit(px_w: usize, px_h: usize, max_w: f32, max_h: f32) -> (f32, f32) {
    let (pw, ph) = (px_w.max(1) as f32, px_h.max(1) as f32);
    let s = (max_w / pw).min(max_h / ph);
    (pw * s, ph * s)
}

fn key_images(w: &mut Writer, r: &ReportDocument, pictures: &[(Picture, Option<Picture>)]) {
    if r.key_images.is_empty() {
        return;
    }
    heading(w, "Key images");
    let x0 = w.geo.left;
    let width = w.geo.content_width();
    let gap = 14.0;
    let max_h = ((w.geo.bottom - w.geo.top) * 0.42).min(250.0);
    for (n, (key, (image, overlay))) in r.key_images.iter().zip(pictures).enumerate() {
        let slot_w = if overlay.is_some() {
            (width - gap) / 2.0
        } else {
            width * 0.55
        };
        let (iw, ih) = fit(image.width, image.height, slot_w, max_h);
        let (ow, oh) = overlay
            .as_ref()
            .map(|o| fit(o.width, o.height, slot_w, max_h))
            .unwrap_or((0.0, 0.0));
        let pics_h = ih.max(oh);
        let caption = format!("Figure {}. {}", n + 1, key.caption.trim());
        let mut caption_lines = wrap(w.fonts, &[Span::regular(caption)], 8.5, width);
        layout::cap_lines(w.fonts, &mut caption_lines, 6, 8.5);
        let legend_w = (if overlay.is_some() { ow } else { iw }).clamp(80.0, 220.0);
        let legend_h = key
            .legend
            .as_ref()
            .map(|l| legend_height(w, l, legend_w))
            .unwrap_or(0.0);
        let block_h = 12.0 + pics_h + 6.0 + legend_h + caption_lines.len() as f32 * 11.0 + 10.0;
        w.ensure(block_h);
        let top = w.y;
        let label_y = top + 8.0;
        let pic_y = top + 12.0;
        // Image on the left, overlay on the right, both top-aligned.
        w.text_at(x0, label_y, "Key image", Weight::Bold, 7.5, GREY);
        w.image(
            image.id.clone(),
            image.width,
            image.height,
            x0,
            pic_y,
            iw,
            ih,
        );
        w.stroke_rect(x0, pic_y, iw, ih, RULE, 0.4);
        let mut y = pic_y + pics_h + 6.0;
        if let Some(o) = overlay {
            let ox = x0 + slot_w + gap;
            w.text_at(ox, label_y, "AI overlay", Weight::Bold, 7.5, GREY);
            w.image(o.id.clone(), o.width, o.height, ox, pic_y, ow, oh);
            w.stroke_rect(ox, pic_y, ow, oh, RULE, 0.4);
            if let Some(legend) = &key.legend {
                draw_legend(w, legend, ox, y, legend_w);
            }
        } else if let Some(legend) = &key.legend {
            draw_legend(w, legend, x0, y, legend_w);
        }
        y += legend_h;
        for (i, line) in caption_lines.iter().enumerate() {
            w.line_at(x0, y + 8.5 + i as f32 * 11.0, line, 8.5);
        }
        w.y = top + block_h;
    }
}

fn signature_block(w: &mut Writer, r: &ReportDocument) {
    heading(w, "Signature");
    let x = w.geo.left;
    let width = w.geo.content_width();
    match &r.signature {
        Some(sig) => {
            w.ensure(3.0 * BODY_LEADING + 10.0);
            w.paragraph(
                &[
                    Span::regular("Electronically signed by "),
                    Span::bold(sig.signed_by.clone()),
                ],
                x,
                width,
                BODY,
                BODY_LEADING,
            );
            w.paragraph(
                &[Span::regular(sig.role.clone())],
                x,
                width,
                BODY,
                BODY_LEADING,
            );
            w.paragraph(
                &[Span::regular(format!("Signed {}", fmt_time(&sig.signed_at))).colored(GREY)],
                x,
                width,
                BODY,
                BODY_LEADING,
            );
        }
        None => {
            w.paragraph(
                &[
                    Span::bold("Not signed. ").colored(Rgbf(0.75, 0.12, 0.12)),
                    Span::regular(
                        "This is a draft for review; it is not a medical report until a clinician signs it.",
                    ),
                ],
                x,
                width,
                BODY,
                BODY_LEADING,
            );
        }
    }
}

fn addenda(w: &mut Writer, r: &ReportDocument) {
    if r.addenda.is_empty() {
        return;
    }
    heading(w, "Addenda");
    let x = w.geo.left;
    let width = w.geo.content_width();
    for (i, a) in r.addenda.iter().enumerate() {
        if i > 0 {
            w.y += 6.0;
        }
        w.ensure(2.0 * BODY_LEADING);
        w.paragraph(
            &[
                Span::bold(format!("Addendum {} ", i + 1)),
                Span::regular(format!("— {}, {}", a.author, fmt_time(&a.written_at))).colored(GREY),
            ],
            x,
            width,
            BODY,
            BODY_LEADING,
        );
        body(w, &number_citations(&a.text, &r.references));
    }
}

fn references(w: &mut Writer, r: &ReportDocument) {
    if r.references.is_empty() {
        return;
    }
    heading(w, "References");
    let x = w.geo.left;
    let width = w.geo.content_width();
    let indent = 24.0;
    let size = 8.5;
    let leading = 11.0;
    for (i, reference) in r.references.iter().enumerate() {
        let mut spans = vec![Span::bold(reference.title.trim().to_string())];
        let mut tail = format!(". {}", reference.source.trim());
        if let Some(year) = reference.year {
            tail.push_str(&format!(", {year}"));
        }
        tail.push_str(&format!(". {}.", reference.id.trim()));
        spans.push(Span::regular(tail));
        let link = reference.link();
        let mut lines = wrap(w.fonts, &spans, size, width - indent);
        let link_lines = link
            .as_deref()
            .map(|l| {
                wrap(
                    w.fonts,
                    &[Span::regular(l).colored(ACCENT)],
                    size,
                    width - indent,
                )
            })
            .unwrap_or_default();
        let n_text = lines.len();
        lines.extend(link_lines);
        w.ensure(lines.len().min(4) as f32 * leading + 3.0);
        let num = format!("[{}]", i + 1);
        w.text_at(x, w.y + size * 0.93, &num, Weight::Bold, size, BLACK);
        for (l, line) in lines.iter().enumerate() {
            w.ensure(leading);
            let base = w.y + size * 0.93;
            w.line_at(x + indent, base, line, size);
            if l >= n_text {
                if let Some(uri) = link.as_deref() {
                    w.link(x + indent, w.y, line.width, leading, uri);
                }
            }
            w.y += leading;
        }
        w.y += 3.0;
    }
}

fn models(w: &mut Writer, r: &ReportDocument) {
    if r.models.is_empty() {
        return;
    }
    heading(w, "Models and intended use");
    let x = w.geo.left;
    let width = w.geo.content_width();
    for m in &r.models {
        w.ensure(2.0 * BODY_LEADING);
        let mut spans = vec![
            Span::bold(format!("{} {}", m.name, m.version)),
            Span::regular(format!(" — {}", m.intended_use.trim())),
        ];
        if m.demo {
            spans.push(Span::bold(format!(" {DEMO_MODEL_NOTICE}")).colored(Rgbf(0.75, 0.12, 0.12)));
        }
        w.paragraph(&spans, x, width, BODY, BODY_LEADING);
        w.y += 3.0;
    }
}

fn disclaimer(w: &mut Writer) {
    w.y += 12.0;
    let x = w.geo.left;
    let width = w.geo.content_width();
    let pad = 8.0;
    let lines = wrap(
        w.fonts,
        &[Span::bold("Important. "), Span::regular(DISCLAIMER)],
        8.5,
        width - 2.0 * pad,
    );
    let h = lines.len() as f32 * 11.0 + 2.0 * pad;
    w.ensure(h);
    let top = w.y;
    w.fill_rect(x, top, width, h, Rgbf(1.0, 0.97, 0.90));
    w.stroke_rect(x, top, width, h, Rgbf(0.85, 0.65, 0.25), 0.6);
    for (i, line) in lines.iter().enumerate() {
        w.line_at(x + pad, top + pad + 8.0 + i as f32 * 11.0, line, 8.5);
    }
    w.y = top + h;
}

/// Running header and footer of page `n` of `total`.
fn page_chrome(w: &mut Writer, r: &ReportDocument, n: usize, total: usize) -> Vec<Op> {
    let g = w.geo;
    let fonts = w.fonts;
    let mut ops = Vec::new();
    let half = g.content_width() * 0.62;
    let org = ellipsize(fonts, &r.organisation.name, Weight::Bold, 11.0, half);
    ops.extend(w.text_ops(g.left, 46.0, &org, Weight::Bold, 11.0, ACCENT, 0.0));
    let address: Vec<&str> = r
        .organisation
        .address_lines
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if !address.is_empty() {
        let a = ellipsize(fonts, &address.join(" · "), Weight::Regular, 7.5, half);
        ops.extend(w.text_ops(g.left, 58.0, &a, Weight::Regular, 7.5, GREY, 0.0));
    }
    let right_w = g.content_width() - half - 12.0;
    let title = "Radiology report";
    let tw = fonts.width(title, Weight::Bold, 9.0);
    ops.extend(w.text_ops(g.right - tw, 46.0, title, Weight::Bold, 9.0, BLACK, 0.0));
    let patient = ellipsize(
        fonts,
        &format!("Patient: {}", r.patient_pseudonym),
        Weight::Regular,
        7.5,
        right_w,
    );
    let pw = fonts.width(&patient, Weight::Regular, 7.5);
    ops.extend(w.text_ops(
        g.right - pw,
        58.0,
        &patient,
        Weight::Regular,
        7.5,
        GREY,
        0.0,
    ));

    let footer_rule = g.height - 50.0;
    let notice_y = g.height - 38.0;
    let status_y = g.height - 28.0;
    ops.extend(w.text_ops(
        g.left,
        notice_y,
        FOOTER_NOTICE,
        Weight::Bold,
        8.0,
        BLACK,
        0.0,
    ));
    let page = format!("Page {n} of {total}");
    let pw = fonts.width(&page, Weight::Regular, 8.0);
    ops.extend(w.text_ops(
        g.right - pw,
        notice_y,
        &page,
        Weight::Regular,
        8.0,
        BLACK,
        0.0,
    ));
    let status = match &r.signature {
        Some(sig) => format!("Signed by {}, {}", sig.signed_by, fmt_time(&sig.signed_at)),
        None => "Draft — not signed".to_string(),
    };
    let status = ellipsize(
        fonts,
        &status,
        Weight::Regular,
        7.0,
        g.content_width() * 0.6,
    );
    ops.extend(w.text_ops(g.left, status_y, &status, Weight::Regular, 7.0, GREY, 0.0));
    let gen = format!("Generated {} by MedVision", fmt_time(&r.generated_at));
    let gw = fonts.width(&gen, Weight::Regular, 7.0);
    ops.extend(w.text_ops(
        g.right - gw,
        status_y,
        &gen,
        Weight::Regular,
        7.0,
        GREY,
        0.0,
    ));

    // Rules under the header and over the footer.
    let line = |y: f32| {
        let p = |x: f32| printpdf::LinePoint {
            p: printpdf::Point {
                x: Pt(x),
                y: Pt(g.height - y),
            },
            bezier: false,
        };
        [
            Op::SetOutlineColor {
                col: printpdf::Color::Rgb(printpdf::Rgb {
                    r: RULE.0,
                    g: RULE.1,
                    b: RULE.2,
                    icc_profile: None,
                }),
            },
            Op::SetOutlineThickness { pt: Pt(0.6) },
            Op::DrawLine {
                line: printpdf::Line {
                    points: vec![p(g.left), p(g.right)],
                    is_closed: false,
                },
            },
        ]
    };
    ops.extend(line(66.0));
    ops.extend(line(footer_rule));
    ops
}

/// The diagonal, translucent DRAFT watermark across the middle of the page.
fn draft_watermark(w: &mut Writer, gs: printpdf::ExtendedGraphicsStateId) -> Vec<Op> {
    let g = w.geo;
    let size = 120.0;
    let text = "DRAFT";
    let tw = w.fonts.width(text, Weight::Bold, size);
    let angle = (g.height / g.width)
        .atan()
        .min(std::f32::consts::FRAC_PI_4 * 1.2);
    let (sin, cos) = angle.sin_cos();
    // Centre the text box (tw × cap height) on the page centre.
    let cap = size * 0.72;
    let (cx, cy_pdf) = (g.width / 2.0, g.height / 2.0);
    let x = cx - (tw / 2.0) * cos + (cap / 2.0) * sin;
    let y_pdf = cy_pdf - (tw / 2.0) * sin - (cap / 2.0) * cos;
    let mut ops = vec![Op::SaveGraphicsState, Op::LoadGraphicsState { gs }];
    // text_ops takes y from the top.
    ops.extend(w.text_ops(
        x,
        g.height - y_pdf,
        text,
        Weight::Bold,
        size,
        Rgbf(0.80, 0.10, 0.10),
        angle,
    ));
    ops.push(Op::RestoreGraphicsState);
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(id: &str) -> Reference {
        Reference {
            id: id.into(),
            title: "t".into(),
            year: None,
            source: "s".into(),
            url: None,
        }
    }

    #[test]
    fn citations_are_numbered_against_the_reference_list() {
        let refs = [reference("PMID:111"), reference("GL:fleischner-2017")];
        assert_eq!(
            number_citations(
                "Bleed [PMID:111]. Nodule [GL:fleischner-2017; PMID:111].",
                &refs
            ),
            "Bleed [1]. Nodule [2, 1]."
        );
        // Unknown keys, plain brackets and an unclosed bracket stay as written.
        assert_eq!(
            number_citations("x [PMID:999] [a] [", &refs),
            "x [PMID:999] [a] ["
        );
        assert_eq!(number_citations("[]", &refs), "[]");
    }

    #[test]
    fn fit_keeps_the_aspect_ratio() {
        let (w, h) = fit(512, 256, 200.0, 200.0);
        assert!((w - 200.0).abs() < 1e-3 && (h - 100.0).abs() < 1e-3);
        let (w, h) = fit(100, 400, 200.0, 200.0);
        assert!((w - 50.0).abs() < 1e-3 && (h - 200.0).abs() < 1e-3);
    }

    #[test]
    fn colour_maps_run_from_dark_or_blue_to_hot() {
        for map in [
            ColourMap::Jet,
            ColourMap::Inferno,
            ColourMap::Viridis,
            ColourMap::Hot,
        ] {
            let lo = colour_at(map, 0.0);
            let hi = colour_at(map, 1.0);
            assert!(hi.0 > lo.0, "{map:?}");
        }
        let jet_lo = colour_at(ColourMap::Jet, 0.0);
        assert!(jet_lo.2 > jet_lo.0);
    }
}
