//! Times `render_report_pdf` for the issue's benchmark case (goal < 300 ms): a report of five
//! pages with four key images (two with overlays), signed, Unicode pseudonym.
//!
//! ```text
//! cargo run --release -p reporting --example pdf_bench [-- ITERATIONS]
//! ```
//! Prints the PDF size (written to $TMPDIR/medvision-pdf-bench.pdf; `pdfinfo` counts its
//! pages) and the median / min / max time per render.

#[path = "../tests/it/pdf_fixtures.rs"]
mod fixtures;

use std::time::{Duration, Instant};

use reporting::pdf::{render_report_pdf, PdfOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(30);
    let doc = fixtures::bench_case();
    let options = PdfOptions::default();

    // First render parses the embedded fonts (once per process); report it apart.
    let start = Instant::now();
    let bytes = render_report_pdf(&doc, &options)?;
    let first = start.elapsed();

    let mut times: Vec<Duration> = (0..iterations.max(1))
        .map(|_| {
            let start = Instant::now();
            let out = render_report_pdf(&doc, &options);
            let t = start.elapsed();
            assert!(out.is_ok());
            t
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "pdf_bench: {} key images, {} bytes, first render (incl. font parsing) {:.1} ms; \
         {} renders: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        doc.key_images.len(),
        bytes.len(),
        ms(first),
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
    );
    std::fs::write(std::env::temp_dir().join("medvision-pdf-bench.pdf"), &bytes)?;
    Ok(())
}
