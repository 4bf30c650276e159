//! Decode throughput of `imaging::dicom` for bench/imaging_decode.sh.
//!
//! `decode_bench ROUNDS LIST` reads file paths (one a line) from LIST, and
//! ROUNDS times opens each file and decodes every frame. Prints one JSON
//! line: files decoded, failures, input bytes, decoded bytes and seconds.
//! Single-threaded, like pydicom, so the comparison is per core.

use std::time::Instant;

use imaging::dicom;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(1);
    let Some(list) = args.next() else {
        eprintln!("usage: decode_bench ROUNDS FILE_LIST");
        std::process::exit(2);
    };
    let paths: Vec<String> = match std::fs::read_to_string(&list) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        Err(e) => {
            eprintln!("cannot read {list}: {e}");
            std::process::exit(2);
        }
    };
    let (mut files, mut failures, mut in_bytes, mut out_bytes) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    for _ in 0..rounds {
        for path in &paths {
            in_bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let decoded = dicom::open(std::path::Path::new(path)).and_then(|file| {
                (0..file.frames()).try_fold(0u64, |sum, f| {
                    let frame = file.decode_frame(f)?;
                    let width = frame
                        .data
                        .dtype()
                        .trim_start_matches(|c: char| c.is_alphabetic());
                    let bits: u64 = width.parse().unwrap_or(8);
                    Ok(sum + frame.data.len() as u64 * bits / 8)
                })
            });
            match decoded {
                Ok(bytes) => {
                    files += 1;
                    out_bytes += bytes;
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("{path}: {e}");
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"files\": {files}, \"failures\": {failures}, \"in_bytes\": {in_bytes}, \"out_bytes\": {out_bytes}, \"seconds\": {seconds:.6}}}"
    );
}
