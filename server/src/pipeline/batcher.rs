//! Micro-batching of classifier inference across jobs: requests from any
//! number of jobs queue up, and one thread per model runs them as batches of
//! up to `max` images, waiting at most `wait` after the first for company.
//! On a GPU a batch of 16 costs little more than one image; on the CPU it
//! still saves per-call overhead.

use inference::preprocess::Plane;
use inference::registry::{LabelScore, LoadedModel};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// An image for the classifier: modality values, row-major.
pub struct Image {
    pub values: Vec<f32>,
    pub width: usize,
    pub height: usize,
}

struct Request {
    image: Arc<Image>,
    reply: oneshot::Sender<Result<Vec<LabelScore>, String>>,
}

pub struct Batcher {
    tx: mpsc::Sender<Request>,
    stats: Arc<BatchStats>,
}

/// What the inference thread has run: how well batches fill.
#[derive(Debug, Default)]
pub struct BatchStats {
    pub batches: AtomicU64,
    pub images: AtomicU64,
    pub largest: AtomicU64,
}

impl Batcher {
    pub fn spawn(model: Arc<LoadedModel>, max: usize, wait: Duration) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Request>();
        let name = format!("batcher-{}", model.pack.manifest.name);
        let stats = Arc::new(BatchStats::default());
        let s = stats.clone();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || run(model, rx, max.max(1), wait, &s))?;
        Ok(Self { tx, stats })
    }

    /// (batches, images, largest batch) so far.
    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.stats.batches.load(Ordering::Relaxed),
            self.stats.images.load(Ordering::Relaxed),
            self.stats.largest.load(Ordering::Relaxed),
        )
    }

    /// Queues one image at once (not when first polled, so a caller that
    /// queues a whole study fills batches); resolves when its batch has run.
    pub fn classify(
        &self,
        image: Arc<Image>,
    ) -> impl std::future::Future<Output = Result<Vec<LabelScore>, String>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Request { image, reply });
        async move {
            sent.map_err(|_| "the inference thread stopped".to_owned())?;
            rx.await
                .map_err(|_| "the inference thread stopped".to_owned())?
        }
    }
}

fn run(
    model: Arc<LoadedModel>,
    rx: mpsc::Receiver<Request>,
    max: usize,
    wait: Duration,
    stats: &BatchStats,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + wait;
        while batch.len() < max {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .images
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats
            .largest
            .fetch_max(batch.len() as u64, Ordering::Relaxed);
        let planes: Vec<Plane> = batch
            .iter()
            .map(|r| Plane {
                values: &r.image.values,
                width: r.image.width,
                height: r.image.height,
            })
            .collect();
        let start = std::time::Instant::now();
        let result = model.classify(&planes);
        crate::telemetry::inference(&model, "classify", batch.len(), start, result.is_ok());
        match result {
            Ok(scores) => {
                for (r, s) in batch.into_iter().zip(scores) {
                    let _ = r.reply.send(Ok(s));
                }
            }
            // One bad image must not fail its neighbours: run them alone.
            Err(_) if batch.len() > 1 => {
                for r in batch {
                    let plane = Plane {
                        values: &r.image.values,
                        width: r.image.width,
                        height: r.image.height,
                    };
                    let out = model
                        .classify(std::slice::from_ref(&plane))
                        .map_err(|e| e.to_string())
                        .and_then(|mut v| v.pop().ok_or_else(|| "no scores".to_owned()));
                    let _ = r.reply.send(out);
                }
            }
            Err(e) => {
                for r in batch {
                    let _ = r.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
