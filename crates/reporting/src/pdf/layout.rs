//! A small flowing-layout engine on top of printpdf's operation lists: a cursor that
//! moves down the page, word wrapping by measured glyph widths, page breaks, and
//! the drawing primitives the report needs. Coordinates are points with y measured
//! from the top of the page; they are flipped to PDF's bottom-up space when emitted.

use std::collections::BTreeSet;

use printpdf::{
    Color, FontId, Line, LinePoint, Op, PaintMode, PdfDocument, PdfFontHandle, Point, Polygon,
    PolygonRing, Pt, Rect, Rgb, TextItem, TextMatrix, WindingOrder, XObjectId, XObjectTransform,
};

use super::fonts::{is_cjk_breakable, Face, FontSet, Weight};

/// An RGB colour with components in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rgbf(pub f32, pub f32, pub f32);

impl Rgbf {
    pub(crate) fn from_u8(rgb: [u8; 3]) -> Self {
        Self(
            f32::from(rgb[0]) / 255.0,
            f32::from(rgb[1]) / 255.0,
            f32::from(rgb[2]) / 255.0,
        )
    }

    fn color(self) -> Color {
        Color::Rgb(Rgb {
            r: self.0,
            g: self.1,
            b: self.2,
            icc_profile: None,
        })
    }
}

pub(crate) const BLACK: Rgbf = Rgbf(0.08, 0.09, 0.11);
pub(crate) const GREY: Rgbf = Rgbf(0.38, 0.40, 0.44);
pub(crate) const LIGHT: Rgbf = Rgbf(0.93, 0.94, 0.96);
pub(crate) const RULE: Rgbf = Rgbf(0.70, 0.72, 0.76);
pub(crate) const ACCENT: Rgbf = Rgbf(0.05, 0.28, 0.52);

/// A piece of text in one style.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub(crate) text: String,
    pub(crate) weight: Weight,
    pub(crate) color: Rgbf,
}

impl Span {
    pub(crate) fn regular(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            weight: Weight::Regular,
            color: BLACK,
        }
    }

    pub(crate) fn bold(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            weight: Weight::Bold,
            color: BLACK,
        }
    }

    pub(crate) fn colored(mut self, color: Rgbf) -> Self {
        self.color = color;
        self
    }
}

/// A word, a space or a single CJK character, measured.
#[derive(Debug, Clone)]
struct Token {
    text: String,
    weight: Weight,
    color: Rgbf,
    width: f32,
    space: bool,
}

/// One wrapped line: pieces with their x offsets from the line start.
#[derive(Debug, Clone, Default)]
pub(crate) struct WrappedLine {
    pieces: Vec<(f32, Span)>,
    pub(crate) width: f32,
}

/// Replaces characters a PDF text string should not carry (controls, tabs).
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' => ' ',
            '\n' => '\n',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Splits spans into measured tokens.
fn tokenize(fonts: &FontSet, spans: &[Span], size: f32) -> Vec<Token> {
    let mut out = Vec::new();
    for span in spans {
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut Vec<Token>| {
            if !word.is_empty() {
                out.push(Token {
                    width: fonts.width(word, span.weight, size),
                    text: std::mem::take(word),
                    weight: span.weight,
                    color: span.color,
                    space: false,
                });
            }
        };
        for c in span.text.chars() {
            if c.is_whitespace() {
                flush(&mut word, &mut out);
                out.push(Token {
                    text: " ".into(),
                    weight: span.weight,
                    color: span.color,
                    width: fonts.width(" ", span.weight, size),
                    space: true,
                });
            } else if is_cjk_breakable(c) {
                flush(&mut word, &mut out);
                word.push(c);
                flush(&mut word, &mut out);
            } else {
                word.push(c);
            }
        }
        flush(&mut word, &mut out);
    }
    out
}

/// Breaks a token wider than `max` into pieces that fit.
fn split_long(fonts: &FontSet, token: Token, size: f32, max: f32) -> Vec<Token> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_w = 0.0;
    for c in token.text.chars() {
        let w = fonts.width(c.encode_utf8(&mut [0; 4]), token.weight, size);
        if cur_w + w > max && !cur.is_empty() {
            out.push(Token {
                text: std::mem::take(&mut cur),
                width: cur_w,
                ..token.clone()
            });
            cur_w = 0.0;
        }
        cur.push(c);
        cur_w += w;
    }
    if !cur.is_empty() {
        out.push(Token {
            text: cur,
            width: cur_w,
            ..token
        });
    }
    out
}

/// Greedy word wrap of styled text into lines no wider than `max` points. `\n` starts
/// a new line; runs of spaces collapse at line starts and ends.
pub(crate) fn wrap(fonts: &FontSet, spans: &[Span], size: f32, max: f32) -> Vec<WrappedLine> {
    let mut lines = Vec::new();
    // Hard line breaks first: split every span at '\n'.
    let mut paragraphs: Vec<Vec<Span>> = vec![Vec::new()];
    for span in spans {
        let cleaned = clean(&span.text);
        for (i, part) in cleaned.split('\n').enumerate() {
            if i > 0 {
                paragraphs.push(Vec::new());
            }
            if !part.is_empty() {
                if let Some(p) = paragraphs.last_mut() {
                    p.push(Span {
                        text: part.to_string(),
                        ..span.clone()
                    });
                }
            }
        }
    }
    for para in paragraphs {
        let mut tokens = Vec::new();
        for t in tokenize(fonts, &para, size) {
            if !t.space && t.width > max {
                tokens.extend(split_long(fonts, t, size, max));
            } else {
                tokens.push(t);
            }
        }
        let mut line: Vec<Token> = Vec::new();
        let mut width = 0.0;
        for t in tokens {
            if t.space && line.is_empty() {
                continue;
            }
            if !t.space && width + t.width > max && !line.is_empty() {
                lines.push(finish_line(std::mem::take(&mut line)));
                width = 0.0;
            }
            width += t.width;
            line.push(t);
        }
        lines.push(finish_line(line));
    }
    lines
}

/// Keeps at most `max` lines, marking a cut with an ellipsis.
pub(crate) fn cap_lines(fonts: &FontSet, lines: &mut Vec<WrappedLine>, max: usize, size: f32) {
    if lines.len() <= max {
        return;
    }
    lines.truncate(max.max(1));
    if let Some(last) = lines.last_mut() {
        let weight = last
            .pieces
            .last()
            .map_or(Weight::Regular, |(_, s)| s.weight);
        let x = last.width;
        last.pieces.push((
            x,
            Span {
                text: "…".into(),
                weight,
                color: GREY,
            },
        ));
        last.width += fonts.width("…", weight, size);
    }
}

fn finish_line(mut tokens: Vec<Token>) -> WrappedLine {
    while tokens.last().is_some_and(|t| t.space) {
        tokens.pop();
    }
    let mut out = WrappedLine::default();
    let mut x = 0.0;
    for t in tokens {
        match out.pieces.last_mut() {
            Some((_, span)) if span.weight == t.weight && span.color == t.color => {
                span.text.push_str(&t.text);
            }
            _ => out.pieces.push((
                x,
                Span {
                    text: t.text,
                    weight: t.weight,
                    color: t.color,
                },
            )),
        }
        x += t.width;
    }
    out.width = x;
    out
}

/// Page geometry in points.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) width: f32,
    pub(crate) height: f32,
    pub(crate) left: f32,
    pub(crate) right: f32,
    /// First y of the flowing content (below the running header).
    pub(crate) top: f32,
    /// Last y of the flowing content (above the running footer).
    pub(crate) bottom: f32,
}

impl Geometry {
    pub(crate) fn content_width(&self) -> f32 {
        self.right - self.left
    }
}

/// Font handles registered with the document.
pub(crate) struct FontIds {
    pub(crate) regular: FontId,
    pub(crate) bold: FontId,
    pub(crate) cjk: FontId,
    /// The characters drawn with each face (regular, bold, CJK), for subsetting.
    pub(crate) used: [BTreeSet<char>; 3],
}

/// The flowing writer: pages of operations and a cursor.
pub(crate) struct Writer<'a> {
    pub(crate) fonts: &'a FontSet,
    pub(crate) ids: FontIds,
    pub(crate) geo: Geometry,
    pub(crate) pages: Vec<Vec<Op>>,
    /// Current y (from the top of the page).
    pub(crate) y: f32,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(fonts: &'a FontSet, ids: FontIds, geo: Geometry) -> Self {
        Self {
            fonts,
            ids,
            geo,
            pages: vec![Vec::new()],
            y: geo.top,
        }
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    pub(crate) fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = self.geo.top;
    }

    /// Starts a new page unless `height` more points fit on this one.
    pub(crate) fn ensure(&mut self, height: f32) {
        if self.y + height > self.geo.bottom && self.y > self.geo.top + 0.5 {
            self.new_page();
        }
    }

    fn handle(&mut self, face: Face, text: &str) -> PdfFontHandle {
        let (id, used) = match face {
            Face::Regular => (&self.ids.regular, &mut self.ids.used[0]),
            Face::Bold => (&self.ids.bold, &mut self.ids.used[1]),
            Face::Cjk => (&self.ids.cjk, &mut self.ids.used[2]),
        };
        used.extend(text.chars());
        PdfFontHandle::External(id.clone())
    }

    /// Text operations drawing `text` with its left end of the baseline at (x, y),
    /// optionally rotated by `angle` radians counter-clockwise.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn text_ops(
        &mut self,
        x: f32,
        y: f32,
        text: &str,
        weight: Weight,
        size: f32,
        color: Rgbf,
        angle: f32,
    ) -> Vec<Op> {
        let mut ops = vec![
            Op::StartTextSection,
            Op::SetFillColor { col: color.color() },
        ];
        let (sin, cos) = angle.sin_cos();
        let mut advance = 0.0;
        let page_h = self.geo.height;
        for (face, run) in self.fonts.runs(text, weight) {
            let handle = self.handle(face, &run);
            let px = x + advance * cos;
            let py = page_h - y + advance * sin;
            ops.push(Op::SetFont {
                font: handle,
                size: Pt(size),
            });
            ops.push(Op::SetTextMatrix {
                matrix: TextMatrix::Raw([cos, sin, -sin, cos, px, py]),
            });
            advance += self.fonts.run_width(face, &run, size);
            ops.push(Op::ShowText {
                items: vec![TextItem::Text(run)],
            });
        }
        ops.push(Op::EndTextSection);
        ops
    }

    /// Draws one line of text with its baseline at `y`.
    pub(crate) fn text_at(
        &mut self,
        x: f32,
        y: f32,
        text: &str,
        weight: Weight,
        size: f32,
        color: Rgbf,
    ) {
        let ops = self.text_ops(x, y, text, weight, size, color, 0.0);
        self.ops().extend(ops);
    }

    /// Draws a wrapped line with its baseline at `y`.
    pub(crate) fn line_at(&mut self, x: f32, y: f32, line: &WrappedLine, size: f32) {
        for (dx, span) in line.pieces.clone() {
            self.text_at(x + dx, y, &span.text, span.weight, size, span.color);
        }
    }

    /// Flowing paragraph at the cursor, wrapped to `width` starting at `x`, breaking
    /// pages between lines. Returns the number of lines.
    pub(crate) fn paragraph(
        &mut self,
        spans: &[Span],
        x: f32,
        width: f32,
        size: f32,
        leading: f32,
    ) -> usize {
        let lines = wrap(self.fonts, spans, size, width);
        for line in &lines {
            self.ensure(leading);
            let baseline = self.y + size * 0.93;
            self.line_at(x, baseline, line, size);
            self.y += leading;
        }
        lines.len()
    }

    pub(crate) fn fill_rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgbf) {
        let page_h = self.geo.height;
        let ops = self.ops();
        ops.push(Op::SetFillColor { col: color.color() });
        ops.push(Op::DrawPolygon {
            polygon: Polygon {
                rings: vec![PolygonRing {
                    points: [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
                        .iter()
                        .map(|&(px, py)| LinePoint {
                            p: Point {
                                x: Pt(px),
                                y: Pt(page_h - py),
                            },
                            bezier: false,
                        })
                        .collect(),
                }],
                mode: PaintMode::Fill,
                winding_order: WindingOrder::NonZero,
            },
        });
    }

    pub(crate) fn stroke_rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgbf, thick: f32) {
        let page_h = self.geo.height;
        let ops = self.ops();
        ops.push(Op::SetOutlineColor { col: color.color() });
        ops.push(Op::SetOutlineThickness { pt: Pt(thick) });
        ops.push(Op::DrawRectangle {
            rectangle: Rect {
                x: Pt(x),
                y: Pt(page_h - y - h),
                width: Pt(w),
                height: Pt(h),
                mode: Some(PaintMode::Stroke),
                winding_order: None,
            },
        });
    }

    pub(crate) fn hline(&mut self, x0: f32, x1: f32, y: f32, color: Rgbf, thick: f32) {
        let page_h = self.geo.height;
        let ops = self.ops();
        ops.push(Op::SetOutlineColor { col: color.color() });
        ops.push(Op::SetOutlineThickness { pt: Pt(thick) });
        ops.push(Op::DrawLine {
            line: Line {
                points: vec![
                    LinePoint {
                        p: Point {
                            x: Pt(x0),
                            y: Pt(page_h - y),
                        },
                        bezier: false,
                    },
                    LinePoint {
                        p: Point {
                            x: Pt(x1),
                            y: Pt(page_h - y),
                        },
                        bezier: false,
                    },
                ],
                is_closed: false,
            },
        });
    }

    /// Places an image XObject of `px_w` × `px_h` pixels into the box at (x, y) of
    /// `w` × `h` points (the caller keeps the aspect ratio).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn image(
        &mut self,
        id: XObjectId,
        px_w: usize,
        px_h: usize,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
    ) {
        let page_h = self.geo.height;
        // At 72 dpi one pixel is one point; scale from there.
        let transform = XObjectTransform {
            translate_x: Some(Pt(x)),
            translate_y: Some(Pt(page_h - y - h)),
            rotate: None,
            scale_x: Some(w / px_w.max(1) as f32),
            scale_y: Some(h / px_h.max(1) as f32),
            dpi: Some(72.0),
            no_auto_scale: false,
        };
        self.ops().push(Op::UseXobject { id, transform });
    }

    /// A clickable URI area over the box at (x, y) of `w` × `h` points.
    pub(crate) fn link(&mut self, x: f32, y: f32, w: f32, h: f32, uri: &str) {
        let page_h = self.geo.height;
        self.ops().push(Op::LinkAnnotation {
            link: printpdf::LinkAnnotation::new(
                Rect {
                    x: Pt(x),
                    y: Pt(page_h - y - h),
                    width: Pt(w),
                    height: Pt(h),
                    mode: None,
                    winding_order: None,
                },
                printpdf::Actions::Uri(uri.to_string()),
                Some(printpdf::BorderArray::Solid([0.0, 0.0, 0.0])),
                Some(printpdf::ColorArray::Transparent),
                None,
            ),
        });
    }

    /// Registers the fonts the pages use with `doc` under the ids the ops refer to,
    /// each subset to the characters drawn with it.
    pub(crate) fn register_fonts(&self, doc: &mut PdfDocument) {
        use printpdf::PdfFont;
        let faces = [
            (&self.ids.regular, &self.fonts.regular),
            (&self.ids.bold, &self.fonts.bold),
            (&self.ids.cjk, &self.fonts.cjk),
        ];
        for ((id, face), used) in faces.into_iter().zip(&self.ids.used) {
            if !used.is_empty() {
                doc.resources
                    .fonts
                    .map
                    .insert(id.clone(), PdfFont::new(face.subset(used)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf::fonts::fonts;

    fn text_of(line: &WrappedLine) -> String {
        line.pieces.iter().map(|(_, s)| s.text.as_str()).collect()
    }

    #[test]
    fn wrap_respects_width_and_keeps_every_word() {
        let f = fonts().expect("fonts");
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(8);
        let lines = wrap(f, &[Span::regular(text.clone())], 10.0, 150.0);
        assert!(lines.len() > 3);
        for l in &lines {
            assert!(l.width <= 150.0 + 1e-3, "{}", l.width);
            let measured = f.width(&text_of(l), Weight::Regular, 10.0);
            assert!((measured - l.width).abs() < 1e-2);
        }
        let joined: Vec<String> = lines.iter().map(text_of).collect();
        assert_eq!(
            joined.join(" ").split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
    }

    #[test]
    fn wrap_breaks_long_words_cjk_and_hard_newlines() {
        let f = fonts().expect("fonts");
        let long = "x".repeat(200);
        let lines = wrap(f, &[Span::regular(long.clone())], 10.0, 100.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.iter().map(text_of).collect::<String>(), long);
        let cjk = "放射科报告".repeat(20);
        let lines = wrap(f, &[Span::regular(cjk.clone())], 10.0, 100.0);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.width <= 100.0 + 1e-3));
        let lines = wrap(f, &[Span::regular("a\n\nb")], 10.0, 100.0);
        assert_eq!(lines.len(), 3);
    }
}
