//! PDF export, checked the way a person would: pdftotext reads the text back,
//! pdftoppm renders every page, and the rendered pixels are inspected.
//! The poppler tools come from Debian's poppler-utils; without them these tests
//! print a skip notice and pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use reporting::pdf::{
    render_report_pdf, ImagePart, Paper, PdfError, PdfOptions, ReportDocument, DEMO_MODEL_NOTICE,
    DISCLAIMER, FOOTER_NOTICE,
};

use crate::pdf_fixtures as fixtures;

fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("-v").output().is_ok();
    if !ok {
        eprintln!("SKIP: {tool} not installed (apt-get install poppler-utils); PDF check skipped");
    }
    ok
}

fn poppler() -> bool {
    have("pdftotext") && have("pdftoppm") && have("pdfinfo")
}

struct Rendered {
    _dir: TempDir,
    path: PathBuf,
}

/// A scratch folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "medvision-pdf-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn render(doc: &ReportDocument, paper: Paper, tag: &str) -> Rendered {
    let bytes = render_report_pdf(doc, &PdfOptions { paper }).expect("render");
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    let dir = TempDir::new(tag);
    let path = dir.0.join("report.pdf");
    std::fs::write(&path, &bytes).expect("write pdf");
    Rendered { _dir: dir, path }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run poppler tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Text of the whole PDF, or of one page (1-based).
fn text(pdf: &Path, page: Option<usize>) -> String {
    let mut cmd = Command::new("pdftotext");
    cmd.arg("-enc").arg("UTF-8");
    if let Some(p) = page {
        cmd.arg("-f")
            .arg(p.to_string())
            .arg("-l")
            .arg(p.to_string());
    }
    run(cmd.arg(pdf).arg("-"))
}

/// Whitespace collapsed to single spaces, so text wrapped over lines matches.
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn page_count(pdf: &Path) -> usize {
    let info = run(Command::new("pdfinfo").arg(pdf));
    info.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("pdfinfo Pages")
}

/// Renders every page at 72 dpi (1 px = 1 pt) and decodes the PNGs.
fn raster(pdf: &Path) -> Vec<(u32, u32, Vec<u8>)> {
    let dir = pdf.parent().expect("parent").join("pages");
    std::fs::create_dir_all(&dir).expect("pages dir");
    let prefix = dir.join("p");
    run(Command::new("pdftoppm")
        .args(["-r", "72", "-png"])
        .arg(pdf)
        .arg(&prefix));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read pages")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let decoder = png::Decoder::new(std::io::BufReader::new(
                std::fs::File::open(f).expect("png"),
            ));
            let mut reader = decoder.read_info().expect("png info");
            let mut buf = vec![0; reader.output_buffer_size().expect("size")];
            let info = reader.next_frame(&mut buf).expect("png frame");
            assert_eq!(info.color_type, png::ColorType::Rgb, "pdftoppm writes RGB");
            buf.truncate(info.buffer_size());
            (info.width, info.height, buf)
        })
        .collect()
}

/// Word boxes (xMin, yMin, xMax, yMax, word) of one page, from pdftotext -bbox.
fn words(pdf: &Path, page: usize) -> Vec<(f32, f32, f32, f32, String)> {
    let html = run(Command::new("pdftotext")
        .args(["-bbox", "-f", &page.to_string(), "-l", &page.to_string()])
        .arg(pdf)
        .arg("-"));
    let attr = |line: &str, name: &str| -> f32 {
        let key = format!("{name}=\"");
        let start = line.find(&key).expect("attr") + key.len();
        line[start..]
            .split('"')
            .next()
            .expect("value")
            .parse()
            .expect("number")
    };
    html.lines()
        .filter(|l| l.trim_start().starts_with("<word"))
        .map(|l| {
            let word = l
                .split('>')
                .nth(1)
                .and_then(|s| s.split('<').next())
                .unwrap_or("");
            (
                attr(l, "xMin"),
                attr(l, "yMin"),
                attr(l, "xMax"),
                attr(l, "yMax"),
                word.to_string(),
            )
        })
        .collect()
}

/// Pixel statistics of a rectangle of a rendered page.
struct Region {
    non_white: usize,
    colourful: usize,
    total: usize,
    grey_levels: std::collections::BTreeSet<u8>,
}

fn region(page: &(u32, u32, Vec<u8>), x0: f32, y0: f32, x1: f32, y1: f32) -> Region {
    let (w, h, px) = page;
    let mut r = Region {
        non_white: 0,
        colourful: 0,
        total: 0,
        grey_levels: Default::default(),
    };
    let (xa, xb) = (x0.max(0.0) as u32, (x1 as u32).min(*w));
    let (ya, yb) = (y0.max(0.0) as u32, (y1 as u32).min(*h));
    for y in ya..yb {
        for x in xa..xb {
            let i = ((y * w + x) * 3) as usize;
            let (red, green, blue) = (px[i], px[i + 1], px[i + 2]);
            r.total += 1;
            if red < 240 || green < 240 || blue < 240 {
                r.non_white += 1;
            }
            let max = red.max(green).max(blue);
            let min = red.min(green).min(blue);
            if max - min > 60 {
                r.colourful += 1;
            }
            r.grey_levels.insert(red / 8);
        }
    }
    r
}

#[test]
fn full_case_pdf_has_findings_references_disclaimer_and_page_numbers() {
    if !poppler() {
        return;
    }
    let doc = fixtures::full_case(true, "Zoë Ångström");
    let pdf = render(&doc, Paper::A4, "full");
    let all = flat(&text(&pdf.path, None));
    for f in &doc.findings {
        assert!(all.contains(&f.label), "finding {:?} missing", f.label);
    }
    assert!(
        all.contains("91.2 %") && all.contains("50.0 %"),
        "probability / threshold"
    );
    assert!(
        all.contains("Accepted by Dr Amara Okafor"),
        "decision by whom"
    );
    assert!(all.contains("Pending review"));
    assert_eq!(doc.references.len(), 10);
    for (i, r) in doc.references.iter().enumerate() {
        assert!(
            all.contains(&flat(&r.title)),
            "reference title {:?} missing",
            r.title
        );
        assert!(
            all.contains(&format!("[{}]", i + 1)),
            "reference number {}",
            i + 1
        );
        assert!(all.contains(&r.id), "reference id {}", r.id);
        if let Some(pmid) = r.pmid() {
            let url = format!("https://pubmed.ncbi.nlm.nih.gov/{pmid}/");
            assert!(all.contains(&url), "PubMed link {url} missing");
        }
    }
    // Citations in the text became reference numbers.
    assert!(
        all.contains("consistent with acute intraparenchymal haemorrhage [2, 1]"),
        "{all}"
    );
    assert!(!all.contains("[PMID:30398430; PMID:31486294]"));
    assert!(all.contains(&flat(DISCLAIMER)), "disclaimer missing");
    assert!(all.contains(DEMO_MODEL_NOTICE), "demo notice missing");
    assert!(all.contains("Triage of non-contrast head CT for intracranial haemorrhage."));
    for heading in [
        "Clinical information",
        "Technique",
        "Findings",
        "Impression",
        "Recommendations",
        "Plain-language explanation",
        "Studies",
        "Key images",
        "Addenda",
    ] {
        assert!(all.contains(heading), "{heading} missing");
    }
    assert!(
        all.contains("CT head without contrast") && all.contains("MRI brain"),
        "both studies"
    );
    assert!(
        all.contains("Discussed with the stroke team at 04:05."),
        "addendum"
    );
    let n = page_count(&pdf.path);
    assert!(n >= 2, "expected several pages, got {n}");
    assert!(
        all.contains(&format!("Page 1 of {n}")),
        "Page 1 of {n} missing"
    );
    for p in 1..=n {
        let t = flat(&text(&pdf.path, Some(p)));
        assert!(t.contains(&format!("Page {p} of {n}")), "page {p} number");
        assert!(t.contains(FOOTER_NOTICE), "page {p} footer notice");
        assert!(
            t.contains("St Elsewhere University Hospital"),
            "page {p} header"
        );
        assert!(t.contains("Zoë Ångström"), "page {p} patient in header");
    }
    // Both studies' key images with their overlays are embedded.
    let list = run(Command::new("pdfimages").arg("-list").arg(&pdf.path));
    assert_eq!(list.lines().skip(2).count(), 4, "{list}");
}

#[test]
fn unicode_pseudonyms_round_trip_through_pdftotext() {
    if !poppler() {
        return;
    }
    for name in [
        "Zoë Ångström",
        "Łukasz Żółć",
        "李雷",
        "Ηλέκτρα Παπαδοπούλου",
        "Дмитрий Ёлкин",
    ] {
        let doc = fixtures::full_case(false, name);
        let pdf = render(&doc, Paper::A4, "unicode");
        let first = flat(&text(&pdf.path, Some(1)));
        assert!(first.contains(name), "{name:?} not found in {first:?}");
    }
    // Fonts are embedded and subset.
    let doc = fixtures::full_case(false, "李雷");
    let pdf = render(&doc, Paper::A4, "fonts");
    let fonts = run(Command::new("pdffonts").arg(&pdf.path));
    let embedded: Vec<&str> = fonts.lines().skip(2).collect();
    assert_eq!(embedded.len(), 3, "{fonts}");
    for line in embedded {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // ... emb sub uni object ID
        let n = cols.len();
        assert_eq!(
            &cols[n - 5..n - 2],
            ["yes", "yes", "yes"],
            "not embedded+subset+unicode: {line}"
        );
    }
}

#[test]
fn draft_has_a_watermark_on_every_page_and_signed_shows_the_signer() {
    if !poppler() {
        return;
    }
    let draft = render(
        &fixtures::full_case(false, "Zoë Ångström"),
        Paper::A4,
        "draft",
    );
    let signed = render(
        &fixtures::full_case(true, "Zoë Ångström"),
        Paper::A4,
        "signed",
    );
    let n = page_count(&draft.path);
    for p in 1..=n {
        // The rotated watermark comes out one glyph a line, in content order with -raw.
        let raw = run(Command::new("pdftotext")
            .args([
                "-raw",
                "-enc",
                "UTF-8",
                "-f",
                &p.to_string(),
                "-l",
                &p.to_string(),
            ])
            .arg(&draft.path)
            .arg("-"));
        let t: String = raw.split_whitespace().collect();
        assert!(t.contains("DRAFT"), "draft page {p} lacks DRAFT");
    }
    let signed_text = flat(&text(&signed.path, None));
    let raw = run(Command::new("pdftotext")
        .arg("-raw")
        .arg(&signed.path)
        .arg("-"));
    let squeezed: String = raw.split_whitespace().collect();
    assert!(!squeezed.contains("DRAFT"), "signed report says DRAFT");
    assert!(signed_text.contains("Electronically signed by Dr Amara Okafor"));
    assert!(signed_text.contains("Consultant neuroradiologist"));
    assert!(signed_text.contains("Signed 2026-11-23 03:12 UTC"));
    assert!(flat(&text(&draft.path, None)).contains("Not signed."));
    // The watermark is visible: the draft's page centre has reddish pixels the
    // signed report's lacks.
    let reddish = |pages: &[(u32, u32, Vec<u8>)]| {
        let (w, h, px) = &pages[0];
        let mut n = 0;
        for y in h / 3..2 * h / 3 {
            for x in w / 4..3 * w / 4 {
                let i = ((y * w + x) * 3) as usize;
                // Translucent red over white comes out near (247, 218, 218).
                if px[i] >= 235 && px[i + 1] <= 230 && i32::from(px[i]) - i32::from(px[i + 2]) >= 15
                {
                    n += 1;
                }
            }
        }
        n
    };
    let (d, s) = (
        reddish(&raster(&draft.path)),
        reddish(&raster(&signed.path)),
    );
    assert!(
        d > 2000 && s < d / 10,
        "watermark pixels: draft {d}, signed {s}"
    );
}

#[test]
fn every_page_renders_and_the_key_images_are_not_blank() {
    if !poppler() {
        return;
    }
    let pdf = render(
        &fixtures::full_case(true, "Zoë Ångström"),
        Paper::Letter,
        "raster",
    );
    let info = run(Command::new("pdfinfo").arg(&pdf.path));
    assert!(
        info.contains("Page size:       612 x 792"),
        "Letter size: {info}"
    );
    let pages = raster(&pdf.path);
    assert_eq!(pages.len(), page_count(&pdf.path));
    for (w, h, _) in &pages {
        // 612 × 792 pt at 72 dpi; pdftoppm rounds up.
        assert!(
            (612..=613).contains(w) && (792..=793).contains(h),
            "{w} x {h}"
        );
    }
    // Find the picture labels and look at the pixels just below them.
    let mut images_seen = 0;
    let mut overlays_seen = 0;
    for (i, page) in pages.iter().enumerate() {
        let ws = words(&pdf.path, i + 1);
        for pair in ws.windows(2) {
            let ((x0, y0, _, y1, first), (_, y0b, _, _, second)) = (&pair[0], &pair[1]);
            if (y0 - y0b).abs() > 0.5 {
                continue;
            }
            match (first.as_str(), second.as_str()) {
                ("Key", "image") => {
                    images_seen += 1;
                    let below = region(page, x0 + 2.0, y1 + 8.0, x0 + 120.0, y1 + 120.0);
                    assert!(
                        below.non_white * 10 > below.total * 9,
                        "image region blank on page {}",
                        i + 1
                    );
                    assert!(
                        below.grey_levels.len() >= 4,
                        "image region is flat on page {}",
                        i + 1
                    );
                }
                ("AI", "overlay") => {
                    overlays_seen += 1;
                    let below = region(page, x0 + 2.0, y1 + 8.0, x0 + 120.0, y1 + 120.0);
                    assert!(
                        below.colourful > 300,
                        "overlay shows no heatmap colours on page {}",
                        i + 1
                    );
                }
                _ => {}
            }
        }
    }
    assert_eq!((images_seen, overlays_seen), (2, 2));
}

#[test]
fn a_twenty_page_report_paginates_with_page_n_of_n_and_repeats_the_table_header() {
    if !poppler() {
        return;
    }
    let doc = fixtures::long_case(160, 70);
    let pdf = render(&doc, Paper::A4, "long");
    let n = page_count(&pdf.path);
    assert!(n >= 20, "expected at least 20 pages, got {n}");
    let mut table_pages = 0;
    for p in 1..=n {
        let t = flat(&text(&pdf.path, Some(p)));
        assert!(t.contains(&format!("Page {p} of {n}")), "page {p}: {t}");
        assert!(!t.contains(&format!("Page {} of", p + 1)));
        if t.contains("Finding row") {
            table_pages += 1;
            assert!(
                t.contains("Probability Threshold"),
                "table page {p} lacks the header row"
            );
        }
    }
    assert!(
        table_pages >= 2,
        "the table should span pages, spans {table_pages}"
    );
    // Every paragraph and row made it, in order.
    let all = flat(&text(&pdf.path, None));
    let mut last = 0;
    for i in 0..160 {
        let at = all[last..]
            .find(&format!("Paragraph {i}:"))
            .map(|a| a + last);
        last = at.unwrap_or_else(|| panic!("paragraph {i} missing or out of order"));
    }
    for i in 0..70 {
        assert!(
            all.contains(&format!("Finding row {i:02}")),
            "row {i} missing"
        );
    }
}

#[test]
fn a_minimal_report_leaves_out_empty_parts() {
    if !poppler() {
        return;
    }
    let mut doc = fixtures::full_case(false, "Anon 1");
    doc.studies.clear();
    doc.key_images.clear();
    doc.findings.clear();
    doc.sections = Default::default();
    doc.plain_language = Some("   ".into());
    doc.references.clear();
    doc.models.clear();
    doc.case_reference = None;
    doc.organisation.address_lines.clear();
    let pdf = render(&doc, Paper::A4, "minimal");
    assert_eq!(page_count(&pdf.path), 1);
    let t = flat(&text(&pdf.path, None));
    for absent in [
        "Studies",
        "Study ",
        "Key images",
        "AI findings",
        "References",
        "Models and intended use",
        "Plain-language",
        "Clinical information",
        "Case reference",
        "Addenda",
    ] {
        assert!(!t.contains(absent), "{absent:?} should be left out: {t}");
    }
    assert!(t.contains(&flat(DISCLAIMER)) && t.contains("Page 1 of 1") && t.contains("Anon 1"));
    let size = std::fs::metadata(&pdf.path).expect("size").len();
    assert!(
        size < 200_000,
        "fonts should be subset, PDF is {size} bytes"
    );
}

#[test]
fn a_png_that_does_not_decode_is_a_specific_error() {
    let mut doc = fixtures::full_case(false, "Pseudo Nym");
    doc.key_images[1].image_png = b"GIF89a not a png".to_vec();
    assert!(matches!(
        render_report_pdf(&doc, &PdfOptions::default()),
        Err(PdfError::InvalidImage {
            index: 1,
            part: ImagePart::Image,
            ..
        })
    ));
    // A PNG signature with a truncated body.
    let mut doc = fixtures::full_case(false, "Pseudo Nym");
    let good = fixtures::overlay_png(64, 0);
    doc.key_images[0].overlay_png = Some(good[..good.len() / 2].to_vec());
    let err = render_report_pdf(&doc, &PdfOptions::default()).expect_err("truncated overlay");
    assert!(
        matches!(
            err,
            PdfError::InvalidImage {
                index: 0,
                part: ImagePart::Overlay,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains(&doc.patient_pseudonym));
    let mut doc = fixtures::full_case(false, "x");
    doc.key_images[0].image_png.clear();
    assert!(matches!(
        render_report_pdf(&doc, &PdfOptions::default()),
        Err(PdfError::InvalidImage { index: 0, .. })
    ));
    let mut doc = fixtures::full_case(false, "x");
    doc.findings[2].probability = f64::NAN;
    assert_eq!(
        render_report_pdf(&doc, &PdfOptions::default()),
        Err(PdfError::InvalidProbability { index: 2 })
    );
}

#[test]
fn hostile_text_does_not_panic() {
    let mut doc = fixtures::full_case(false, "\u{0}\u{7}tab\there\r\n\u{202E}rtl \u{10FFFF}");
    doc.case_title = "x".repeat(5000);
    doc.sections.findings = "[".repeat(300) + &"]".repeat(300) + "[PMID:" + &"9".repeat(50);
    doc.organisation.name = "🩻🧠".repeat(200);
    doc.findings[0].label = "y".repeat(3000);
    let bytes = render_report_pdf(&doc, &PdfOptions::default()).expect("renders");
    assert!(bytes.starts_with(b"%PDF-"));
}
