//! Benchmark (not a test): embedding throughput, and top-10 hybrid query
//! latency and recall over a large synthetic Qdrant Edge shard.
//!
//! `cargo run -p evidence --example evidence_bench [-- --points N --queries Q]`
//! (bench/evidence.sh runs it and records the machine). Env:
//! MEDVISION_EMBEDDER_DIR for the model (the embedding part is skipped with a
//! notice when it is absent), BENCH_DIR for the shard (default: a temp dir).

use std::time::{Duration, Instant};

use evidence::embed::{check_model_dir, default_model_dir, Embedder, BATCH};
use evidence::sparse::{Bm25, SparseVector};
use evidence::store::{
    Chunk, Collection, EdgeStore, Filter, Mode, Point, SourceType, StoreQuery, VectorStore,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 384;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let points = arg("--points", 100_000);
    let queries = arg("--queries", 300);
    let embed_n = arg("--embed", 512);
    embedding_throughput(embed_n)?;
    hybrid_search(points, queries)?;
    Ok(())
}

fn embedding_throughput(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let dir = default_model_dir();
    if let Err(e) = check_model_dir(&dir) {
        println!("embedding: SKIPPED ({e})");
        return Ok(());
    }
    let model = Embedder::load(&dir)?;
    // Chunk-like texts: guideline sentences recombined, 40 to 120 words.
    let words: Vec<&str> = include_str!("../../../corpus/guidelines/fleischner-2017.md")
        .split_whitespace()
        .filter(|w| {
            w.chars()
                .all(|c| c.is_alphanumeric() || ",.;:()-".contains(c))
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    let texts: Vec<String> = (0..n)
        .map(|_| {
            let len = rng.gen_range(40..120);
            let start = rng.gen_range(0..words.len().saturating_sub(len).max(1));
            words[start..(start + len).min(words.len())].join(" ")
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    model.embed(&refs[..BATCH.min(refs.len())])?; // warm-up
    let t = Instant::now();
    let out = model.embed(&refs)?;
    let secs = t.elapsed().as_secs_f64();
    let tokens: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    println!(
        "embedding: {} chunks (mean {} words) in {:.2} s, batch {BATCH}: {:.1} chunks/s on {} threads",
        out.len(),
        tokens / n.max(1),
        secs,
        out.len() as f64 / secs,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    Ok(())
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box-Muller; enough for synthetic clusters.
    let (u1, u2): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen_range(0.0..1.0));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// Clustered unit vectors (topics) and Zipf-distributed terms, closer to a
/// real corpus than uniform noise, which makes HNSW look worse than it is.
struct Synth {
    rng: StdRng,
    centroids: Vec<Vec<f32>>,
    vocab: usize,
}

impl Synth {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let centroids = (0..1000)
            .map(|_| {
                let mut v: Vec<f32> = (0..DIM).map(|_| gaussian(&mut rng)).collect();
                normalise(&mut v);
                v
            })
            .collect();
        Self {
            rng,
            centroids,
            vocab: 30_000,
        }
    }

    fn dense(&mut self, spread: f32) -> Vec<f32> {
        let c = self.rng.gen_range(0..self.centroids.len());
        let mut v: Vec<f32> = self.centroids[c]
            .iter()
            .map(|x| x + spread * gaussian(&mut self.rng) / (DIM as f32).sqrt())
            .collect();
        normalise(&mut v);
        v
    }

    fn term(&mut self) -> u32 {
        // Zipf-like: inverse transform of a power law over the vocabulary.
        let u: f64 = self.rng.gen_range(0.0..1.0);
        ((self.vocab as f64).powf(u) as u32).saturating_sub(1)
    }

    fn text(&mut self, words: usize) -> String {
        (0..words)
            .map(|_| format!("t{}", self.term()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn hybrid_search(n: usize, nq: usize) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::var_os("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let store = EdgeStore::open(&dir)?;
    let bm25 = Bm25::default();
    let mut synth = Synth::new(42);
    let t = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        let passage = synth.text(60);
        let sparse = bm25.encode_document(&passage);
        batch.push(Point {
            chunk: Chunk {
                chunk_id: format!("PMID:{i}#abstract"),
                doc_id: format!("PMID:{i}"),
                source: SourceType::Pubmed,
                title: format!("Synthetic {i}"),
                year: Some(1990 + (i % 35) as i32),
                url: None,
                section: Some("Abstract".into()),
                passage,
                modalities: vec![["ct", "mr", "cr"][i % 3].into()],
                body_parts: vec![["chest", "head"][i % 2].into()],
                org: None,
                extra: Default::default(),
            },
            dense: synth.dense(0.6),
            sparse,
        });
        if batch.len() == 1000 {
            store.upsert(Collection::Literature, &batch)?;
            batch.clear();
        }
    }
    store.upsert(Collection::Literature, &batch)?;
    let load = t.elapsed();
    let t = Instant::now();
    store.optimize()?;
    let index = t.elapsed();
    println!(
        "qdrant-edge: {n} chunks loaded in {:.1} s, optimised (HNSW) in {:.1} s",
        load.as_secs_f64(),
        index.as_secs_f64()
    );

    let mut qs: Vec<(Vec<f32>, SparseVector)> = (0..nq + 20)
        .map(|_| {
            let d = synth.dense(0.8);
            let s = bm25.encode_query(&synth.text(4));
            (d, s)
        })
        .collect();
    let run = |q: &(Vec<f32>, SparseVector), mode: Mode, exact: bool, filter: &Filter| {
        store.search(
            Collection::Literature,
            &StoreQuery {
                dense: &q.0,
                sparse: &q.1,
                filter,
                limit: 10,
                mode,
                exact,
            },
        )
    };
    let none = Filter::default();
    for q in qs.drain(..20) {
        run(&q, Mode::Hybrid, false, &none)?; // warm-up
    }
    for (label, filter) in [
        ("no filter", Filter::default()),
        (
            "filter modality=ct, 2005-2020",
            Filter {
                modality: Some("ct".into()),
                year_range: Some((2005, 2020)),
                ..Default::default()
            },
        ),
    ] {
        let mut lat = Vec::with_capacity(nq);
        let (mut hybrid_recall, mut dense_recall) = (0.0, 0.0);
        for q in &qs {
            let t = Instant::now();
            let approx = run(q, Mode::Hybrid, false, &filter)?;
            lat.push(t.elapsed());
            let exact = run(q, Mode::Hybrid, true, &filter)?;
            hybrid_recall += overlap(&approx, &exact);
            let da = run(q, Mode::Dense, false, &filter)?;
            let de = run(q, Mode::Dense, true, &filter)?;
            dense_recall += overlap(&da, &de);
        }
        lat.sort();
        let m = qs.len() as f64;
        println!(
            "hybrid top-10 ({label}): {} queries, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; recall@10 vs exact: hybrid {:.3}, dense {:.3}",
            qs.len(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
            hybrid_recall / m,
            dense_recall / m
        );
    }
    Ok(())
}

fn overlap(a: &[evidence::store::StoreHit], b: &[evidence::store::StoreHit]) -> f64 {
    if b.is_empty() {
        return 1.0;
    }
    let found = b
        .iter()
        .filter(|x| a.iter().any(|y| y.chunk.chunk_id == x.chunk.chunk_id))
        .count();
    found as f64 / b.len() as f64
}
