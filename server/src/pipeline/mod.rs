//! The asynchronous analysis pipeline (DESIGN.md, "Data flow"): a durable
//! queue in the database, workers that lease jobs and run their stages,
//! live progress, and the circuit breakers around outside services.
//! `medvision serve` runs an embedded worker pool; `medvision worker` runs
//! workers alone, as many processes as the database serves.

pub mod api;
pub mod batcher;
pub mod breaker;
pub mod events;
pub mod queue;
pub mod stages;

use crate::blobs::Blobs;
use crate::knowledge::{Knowledge, KnowledgeConfig};
use crate::settings::Settings;
use app::pipeline::JobState;
use batcher::Batcher;
use breaker::Breaker;
use entity::job;
use events::Hub;
use inference::pack::{ModelPack, Task};
use inference::registry::{LoadedModel, Registry};
use queue::{Failure, RetryPolicy};
use sea_orm::DatabaseConnection;
use stages::StageError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// The pipeline's settings (see `Settings` for the documented defaults).
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub concurrency: usize,
    pub lease_secs: u64,
    pub poll_ms: u64,
    pub retry: RetryPolicy,
    pub batch_max: usize,
    pub batch_wait_ms: u64,
    /// Test-only fault injection: sleep between a stage's work and commit.
    pub stage_delay_ms: u64,
}

impl PipelineConfig {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            concurrency: s.worker_concurrency,
            lease_secs: s.job_lease_secs.max(1),
            poll_ms: s.job_poll_ms.max(10),
            retry: RetryPolicy {
                initial: Duration::from_millis(s.job_retry_initial_ms),
                multiplier: s.job_retry_multiplier,
                cap: Duration::from_millis(s.job_retry_cap_ms),
            },
            batch_max: s.inference_batch_max.max(1),
            batch_wait_ms: s.inference_batch_wait_ms,
            stage_delay_ms: s.job_stage_delay_ms,
        }
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

/// What the workers share.
pub struct Services {
    pub db: DatabaseConnection,
    pub blobs: Blobs,
    pub cache_dir: PathBuf,
    pub models_dir: PathBuf,
    /// `auto` (a GPU when built with `cuda` and present) or `cpu`.
    pub inference_device: String,
    pub cfg: PipelineConfig,
    pub hub: Arc<Hub>,
    /// Writes draft reports: the LLM endpoint when configured, else the
    /// built-in writer.
    pub drafter: reporting::Drafter,
    /// Around the LLM endpoint: open, drafts fall back to the built-in
    /// writer and say so. One per process.
    pub llm_breaker: Breaker,
    /// Retrieval on (`evidence` setting) and where its index is.
    pub evidence: Option<KnowledgeConfig>,
    pub evidence_top_k: usize,
    knowledge: tokio::sync::Mutex<Option<Arc<Knowledge>>>,
    registry: Mutex<Option<Arc<Registry>>>,
    batchers: Mutex<HashMap<String, Arc<Batcher>>>,
}

impl Services {
    /// Fails on a drafting endpoint that cannot be used (bad URL, model
    /// missing), so a misconfiguration stops the start, not every report.
    pub fn new(
        db: DatabaseConnection,
        blobs: Blobs,
        settings: &Settings,
        hub: Arc<Hub>,
    ) -> anyhow::Result<Self> {
        let drafter = reporting::Drafter::from_config(settings.llm_config()?)
            .map_err(|e| anyhow::anyhow!("the LLM endpoint settings are unusable: {e}"))?;
        Ok(Self {
            db,
            blobs,
            cache_dir: settings.data_dir.join("cache"),
            models_dir: settings.models_dir(),
            inference_device: settings.inference_device.clone(),
            cfg: PipelineConfig::from_settings(settings),
            hub,
            drafter,
            llm_breaker: Breaker::new(
                "llm",
                settings.breaker_failures,
                Duration::from_secs(settings.breaker_open_secs),
            ),
            evidence: settings
                .evidence
                .then(|| KnowledgeConfig::from_settings(settings)),
            evidence_top_k: settings.evidence_top_k.clamp(1, 20),
            knowledge: tokio::sync::Mutex::new(None),
            registry: Mutex::new(None),
            batchers: Mutex::new(HashMap::new()),
        })
    }

    /// The evidence index, opened on first use. `Err` says why retrieval
    /// is unavailable (turned off, model not installed, index locked by
    /// another process); the next call tries again.
    pub async fn knowledge(&self) -> Result<Arc<Knowledge>, String> {
        let Some(cfg) = self.evidence.clone() else {
            return Err("evidence retrieval is turned off on this server".into());
        };
        let mut k = self.knowledge.lock().await;
        if let Some(k) = k.as_ref() {
            return Ok(k.clone());
        }
        let opened = tokio::task::spawn_blocking(move || Knowledge::open(&cfg))
            .await
            .map_err(|_| "opening the evidence index stopped".to_string())??;
        let opened = Arc::new(opened);
        *k = Some(opened.clone());
        Ok(opened)
    }

    /// The evidence index if this process has opened it already (never
    /// opens it: readiness must not wait for the embedding model).
    pub async fn knowledge_if_open(&self) -> Option<Arc<Knowledge>> {
        self.knowledge.try_lock().ok().and_then(|k| k.clone())
    }

    /// The installed model packs, scanned once per process (a pack
    /// installed later is picked up by restarting the workers).
    pub fn registry(&self) -> Arc<Registry> {
        let mut r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(reg) = r.as_ref() {
            return reg.clone();
        }
        let device = crate::models::inference_device(&self.inference_device);
        let reg = match Registry::scan(&self.models_dir, device.clone()) {
            Ok(reg) => reg,
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.models_dir.display(), "no model packs could be read");
                Registry::empty(device)
            }
        };
        for (path, why) in reg.broken() {
            tracing::warn!(pack = %path.display(), reason = %why, "model pack skipped");
        }
        let reg = Arc::new(reg);
        *r = Some(reg.clone());
        reg
    }

    /// The pack for a study, trying the usual spellings of modality and
    /// body part (CR is read like DX; BRAIN like HEAD, THORAX like CHEST).
    pub fn choose(&self, modality: &str, body_part: &str, task: Task) -> Option<ModelPack> {
        let reg = self.registry();
        let m = modality.trim().to_ascii_uppercase();
        let modalities: Vec<&str> = match m.as_str() {
            "CR" | "DX" => vec!["DX", "CR"],
            other => vec![other],
        };
        let b = body_part.trim().to_ascii_uppercase();
        let parts: Vec<&str> = match b.as_str() {
            "HEAD" | "BRAIN" | "SKULL" => vec!["HEAD", "BRAIN"],
            "CHEST" | "THORAX" | "LUNG" | "LUNGS" => vec!["CHEST"],
            other => vec![other],
        };
        for m in &modalities {
            for p in &parts {
                if let Some(pack) = reg.select(m, p, task) {
                    return Some(pack.clone());
                }
            }
        }
        None
    }

    pub async fn model(&self, name: &str) -> Result<Arc<LoadedModel>, StageError> {
        let reg = self.registry();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || reg.load(&name))
            .await
            .map_err(|_| StageError::Transient("loading the model stopped".into()))?
            .map_err(|e| StageError::Permanent(format!("the model could not be loaded: {e}")))
    }

    pub fn batcher(&self, model: &Arc<LoadedModel>) -> Result<Arc<Batcher>, StageError> {
        let mut b = self.batchers.lock().unwrap_or_else(|p| p.into_inner());
        let key = format!("{}@{}", model.pack.manifest.name, model.version());
        if let Some(x) = b.get(&key) {
            return Ok(x.clone());
        }
        let x = Arc::new(
            Batcher::spawn(
                model.clone(),
                self.cfg.batch_max,
                Duration::from_millis(self.cfg.batch_wait_ms),
            )
            .map_err(|_| StageError::Transient("the inference thread could not start".into()))?,
        );
        b.insert(key, x.clone());
        Ok(x)
    }

    /// A blob as a local file for the decoders (cached, content-addressed).
    pub async fn local_blob(&self, org: Uuid, sha256: &str) -> Result<PathBuf, StageError> {
        let path = self.cache_dir.join("blobs").join(sha256);
        if tokio::fs::metadata(&path).await.is_ok() {
            return Ok(path);
        }
        let bytes = self.blobs.get(org, sha256).await.map_err(|e| {
            tracing::warn!(error = %e, "pipeline: reading an image from the store failed");
            StageError::Transient("the image store was unavailable".into())
        })?;
        let dir = self.cache_dir.join("blobs");
        let io = |e: std::io::Error| {
            tracing::warn!(error = %e, "pipeline: writing the image cache failed");
            StageError::Transient("the local cache could not be written".into())
        };
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let tmp = dir.join(format!(".{}.tmp", Uuid::new_v4()));
        tokio::fs::write(&tmp, &bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        Ok(path)
    }
}

/// A pool of workers in this process.
pub struct Workers {
    pub id: String,
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Workers {
    /// Starts `svc.cfg.concurrency` concurrent job slots.
    pub fn start(svc: Arc<Services>) -> Self {
        let id = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let stop = Arc::new(AtomicBool::new(false));
        let handle = tokio::spawn(pool(svc, id.clone(), stop.clone()));
        Self { id, stop, handle }
    }

    /// Stops claiming; jobs in flight finish or lose their lease to others.
    pub async fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.handle.await;
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into())
        .chars()
        .take(32)
        .collect()
}

async fn pool(svc: Arc<Services>, worker: String, stop: Arc<AtomicBool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(svc.cfg.concurrency.max(1)));
    let poll = Duration::from_millis(svc.cfg.poll_ms);
    let mut tasks = tokio::task::JoinSet::new();
    while !stop.load(Ordering::SeqCst) {
        while tasks.try_join_next().is_some() {}
        let free = slots.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match queue::claim(&svc.db, &worker, free, svc.cfg.lease()).await {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!(error = %e, "pipeline: claiming jobs failed");
                    Vec::new()
                }
            }
        };
        let got = !claimed.is_empty();
        for j in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let (svc, worker) = (svc.clone(), worker.clone());
            tasks.spawn(async move {
                run_job(&svc, &worker, j).await;
                drop(permit);
            });
        }
        if got {
            svc.hub.poke();
            continue;
        }
        tokio::select! {
            _ = svc.hub.jobs_ready.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Runs one claimed job with a heartbeat, and records how it ended.
pub async fn run_job(svc: &Services, worker: &str, j: job::Model) {
    let id = j.id;
    if j.attempts > j.max_attempts {
        let reason = format!(
            "stopped after {} attempts: the worker processing it stopped responding each time",
            j.max_attempts
        );
        let _ = queue::fail(
            &svc.db,
            &j,
            worker,
            Failure::Permanent(&reason),
            &svc.cfg.retry,
        )
        .await;
        svc.hub.poke();
        return;
    }
    let lost = Arc::new(AtomicBool::new(false));
    let beat = {
        let (db, lost, worker, lease) = (
            svc.db.clone(),
            lost.clone(),
            worker.to_owned(),
            svc.cfg.lease(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match queue::heartbeat(&db, id, &worker, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "pipeline: heartbeat failed"),
                }
            }
        })
    };
    let result = match j.kind.as_str() {
        "analyse" => stages::Run::new(svc, j.clone(), worker).run().await,
        "noop" => noop(svc, &j, worker).await,
        other => Err(StageError::Permanent(format!("unknown job kind `{other}`"))),
    };
    beat.abort();
    let outcome = match result {
        Ok(()) => Ok(JobState::Completed),
        Err(StageError::LeaseLost) => {
            tracing::info!(job = %id, "pipeline: job taken over or cancelled; work discarded");
            Ok(JobState::Cancelled)
        }
        Err(StageError::Permanent(why)) => {
            queue::fail(
                &svc.db,
                &j,
                worker,
                Failure::Permanent(&why),
                &svc.cfg.retry,
            )
            .await
        }
        Err(StageError::Transient(why)) => {
            queue::fail(
                &svc.db,
                &j,
                worker,
                Failure::Transient(&why),
                &svc.cfg.retry,
            )
            .await
        }
    };
    let label = match &outcome {
        // Failed with attempts left: queued again after a backoff.
        Ok(JobState::Queued) => "retried",
        Ok(s) => s.as_str(),
        Err(_) => "unrecorded",
    };
    metrics::counter!("medvision_jobs_total", "kind" => j.kind.clone(), "outcome" => label)
        .increment(1);
    if let Err(e) = outcome {
        tracing::warn!(job = %id, error = %e, "pipeline: recording the job's end failed");
    }
    svc.hub.poke();
}

/// A job that does nothing but commit its one stage and an audit row:
/// what the queue benchmark and the exactly-once tests run.
async fn noop(svc: &Services, j: &job::Model, worker: &str) -> Result<(), StageError> {
    use app::pipeline::Stage;
    if svc.cfg.stage_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(svc.cfg.stage_delay_ms)).await;
    }
    let txn = queue::begin(&svc.db).await?;
    queue::finish_stage(
        &txn,
        j.id,
        worker,
        Stage::Drafting,
        Stage::Completed,
        &serde_json::json!({}),
        0,
        svc.cfg.lease(),
        None,
    )
    .await?;
    app::audit::ssr::append(
        &txn,
        app::audit::ssr::Entry {
            org_id: Some(j.org_id),
            actor_id: None,
            action: "job.noop",
            target_type: "job",
            target_id: Some(j.id.to_string()),
            details: serde_json::Value::Null,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
