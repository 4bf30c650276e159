//! The `analyse` job: decoding → analysing → explaining → retrieving →
//! drafting. Each stage computes, then commits its output and its side
//! effects (findings, artefacts, audit rows) in one guarded transaction
//! (`queue::finish_stage`). What a stage needs from an earlier one is read
//! from that stage's recorded output, or recomputed when it is only an
//! in-memory product (decoded pixels), so a job resumes anywhere.

use super::batcher::Image;
use super::queue::{self, QueueError};
use super::Services;
use app::audit::ssr::{append, Entry};
use app::domain::Urgency as CaseUrgency;
use app::pipeline::JobState;
use app::pipeline::Stage;
use app::report::{SourceDto, StoredSources};
use entity::{artefact, case, finding, instance, job, report, series, study};
use inference::pack::Task;
use inference::registry::LoadedModel;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Why a stage did not finish.
#[derive(Debug)]
pub enum StageError {
    /// Retrying cannot help: the input is unusable. Shown to people.
    Permanent(String),
    /// Retrying may help (storage, database, a service). Shown to people.
    Transient(String),
    /// Someone else owns the job now (cancelled, or our lease expired).
    LeaseLost,
}

impl From<QueueError> for StageError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::LeaseLost => StageError::LeaseLost,
            QueueError::Db(e) => {
                tracing::warn!(error = %e, "pipeline: database error");
                StageError::Transient("the database was unavailable".into())
            }
        }
    }
}

impl From<sea_orm::DbErr> for StageError {
    fn from(e: sea_orm::DbErr) -> Self {
        QueueError::Db(e).into()
    }
}

impl From<app::error::AppError> for StageError {
    fn from(e: app::error::AppError) -> Self {
        tracing::warn!(error = %e, "pipeline: data layer error");
        StageError::Transient("the database was unavailable".into())
    }
}

type StageResult<T> = Result<T, StageError>;

/// The decoding stage's record: which model, on which images.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Plan {
    pub model: Option<String>,
    pub model_version: Option<String>,
    /// Set when the study completes without analysis, and why.
    pub note: Option<String>,
    /// (instance, frame) of each image the classifier reads, in order.
    pub images: Vec<(Uuid, u32)>,
    /// For a segmenter: the series of each input sequence, in the model's
    /// order.
    #[serde(default)]
    pub sequences: Vec<Uuid>,
    pub modality: String,
    pub body_part: String,
}

/// One label's study-level result, as the analysing stage records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scored {
    pub label: String,
    pub probability: f32,
    pub raw_probability: f32,
    pub threshold: f32,
    pub positive: bool,
    pub urgency: String,
    /// Index into `Plan::images` of the image that scored highest.
    pub image: usize,
}

/// The in-memory state of one run of a job.
pub struct Run<'a> {
    pub svc: &'a Services,
    pub job: job::Model,
    pub worker: &'a str,
    plan: Option<Plan>,
    images: Option<Vec<Arc<Image>>>,
    volume: Option<Arc<inference::preprocess::Volume>>,
}

impl<'a> Run<'a> {
    pub fn new(svc: &'a Services, job: job::Model, worker: &'a str) -> Self {
        Self {
            svc,
            job,
            worker,
            plan: None,
            images: None,
            volume: None,
        }
    }

    /// Runs the job from the stage it is in to the end.
    pub async fn run(mut self) -> StageResult<()> {
        let mut stage = match self.job.stage.parse::<Stage>() {
            Ok(Stage::Uploaded) => Stage::Decoding,
            Ok(s) if Stage::WORK.contains(&s) => s,
            _ => {
                return Err(StageError::Permanent(format!(
                    "the job is in an unknown stage `{}`",
                    self.job.stage
                )))
            }
        };
        loop {
            let t0 = Instant::now();
            let out = match stage {
                Stage::Decoding => self.decoding().await?,
                Stage::Analysing => self.analysing(t0).await?,
                Stage::Explaining => self.explaining(t0).await?,
                Stage::Retrieving => self.retrieving(t0).await?,
                Stage::Drafting => self.drafting(t0).await?,
                _ => return Ok(()),
            };
            // A stage with rows of its own commits them itself (None).
            if let Some(out) = out {
                self.commit_plain(stage, out, t0).await?;
            }
            self.svc.hub.poke();
            stage = stage.next();
            if stage == Stage::Completed {
                return Ok(());
            }
        }
    }

    /// Fault injection for the crash tests: hold the stage between its
    /// work and its commit, where a kill hurts most.
    async fn hold(&self) {
        if self.svc.cfg.stage_delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(
                self.svc.cfg.stage_delay_ms,
            ))
            .await;
        }
    }

    async fn commit_plain(
        &self,
        stage: Stage,
        out: serde_json::Value,
        t0: Instant,
    ) -> StageResult<()> {
        self.hold().await;
        let txn = queue::begin(&self.svc.db).await?;
        let note = (stage == Stage::Drafting)
            .then(|| self.plan.as_ref().and_then(|p| p.note.clone()))
            .flatten();
        queue::finish_stage(
            &txn,
            self.job.id,
            self.worker,
            stage,
            stage.next(),
            &out,
            t0.elapsed().as_millis() as i64,
            self.svc.cfg.lease(),
            note.as_deref(),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    fn study_id(&self) -> StageResult<Uuid> {
        self.job
            .study_id
            .ok_or_else(|| StageError::Permanent("the job has no study".into()))
    }

    async fn plan(&mut self) -> StageResult<Plan> {
        if let Some(p) = &self.plan {
            return Ok(p.clone());
        }
        let out = queue::stage_output(&self.svc.db, self.job.id, Stage::Decoding)
            .await?
            .ok_or_else(|| StageError::Transient("the decoding stage left no record".into()))?;
        let p: Plan = serde_json::from_value(out)
            .map_err(|_| StageError::Permanent("the decoding record is unreadable".into()))?;
        self.plan = Some(p.clone());
        Ok(p)
    }

    // ---- decoding -------------------------------------------------------

    async fn decoding(&mut self) -> StageResult<Option<serde_json::Value>> {
        let study_id = self.study_id()?;
        let db = &self.svc.db;
        let study = study::Entity::find_by_id(study_id)
            .one(db)
            .await?
            .ok_or_else(|| StageError::Permanent("the study no longer exists".into()))?;
        let case = case::Entity::find_by_id(study.case_id).one(db).await?;
        let series = series::Entity::find()
            .filter(series::Column::StudyId.eq(study.id))
            .order_by_asc(series::Column::Number)
            .all(db)
            .await?;
        let instances = instance::Entity::find()
            .filter(instance::Column::StudyId.eq(study.id))
            .order_by_asc(instance::Column::SliceLocation)
            .order_by_asc(instance::Column::InstanceNumber)
            .all(db)
            .await?;
        let body_part = series
            .iter()
            .find_map(|s| s.body_part.clone().filter(|b| !b.trim().is_empty()))
            .or_else(|| case.as_ref().map(|c| c.body_part.clone()))
            .unwrap_or_default();
        // NIfTI and raster files carry no modality ("OT"): the case says
        // what was imaged.
        let modality = match (study.modality.as_str(), &case) {
            ("OT" | "", Some(c)) => c.modality.clone(),
            (m, _) => m.to_owned(),
        };
        let mut plan = Plan {
            modality: modality.clone(),
            body_part: body_part.clone(),
            ..Default::default()
        };
        let pack = self.svc.choose(&modality, &body_part, Task::Classification);
        let Some(pack) = pack else {
            if let Some(seg) = self.svc.choose(&modality, &body_part, Task::Segmentation) {
                return self.plan_segmentation(plan, seg, &series, &instances).await;
            }
            plan.note = Some(format!(
                "no model for {}/{} installed",
                modality.to_uppercase(),
                if body_part.is_empty() {
                    "UNKNOWN".into()
                } else {
                    body_part.to_uppercase()
                }
            ));
            self.plan = Some(plan.clone());
            self.commit_plain(Stage::Decoding, out_value(&plan), Instant::now())
                .await?;
            return Ok(None);
        };
        plan.model = Some(pack.manifest.name.clone());
        plan.model_version = Some(pack.manifest.version.clone());
        // Every frame of every image instance, capped so one enormous series
        // cannot hold a worker for an hour.
        const MAX_IMAGES: usize = 512;
        for i in &instances {
            if i.kind == "nifti" {
                continue;
            }
            for f in 0..i.frames.max(1) as u32 {
                if plan.images.len() < MAX_IMAGES {
                    plan.images.push((i.id, f));
                }
            }
        }
        if plan.images.is_empty() {
            return Err(StageError::Permanent(
                "the study has no 2D images the model could read".into(),
            ));
        }
        let images = self.decode(&plan, &instances).await?;
        self.images = Some(images);
        let out = out_value(&plan);
        self.plan = Some(plan);
        Ok(Some(out))
    }

    /// A segmenter reads one volume per MRI sequence: find each sequence's
    /// series from its description or file name, in the model's order.
    async fn plan_segmentation(
        &mut self,
        mut plan: Plan,
        pack: inference::pack::ModelPack,
        series: &[series::Model],
        instances: &[instance::Model],
    ) -> StageResult<Option<serde_json::Value>> {
        let inference::pack::Preprocessing::MriZscore { sequences } =
            &pack.manifest.input.preprocessing
        else {
            return Err(StageError::Permanent(format!(
                "the segmentation model {} does not say which sequences it reads",
                pack.manifest.name
            )));
        };
        let inputs: Vec<(Uuid, String)> = series
            .iter()
            .map(|s| {
                let file = instances
                    .iter()
                    .find(|i| i.series_id == s.id)
                    .map(|i| i.source_name.clone())
                    .unwrap_or_default();
                (
                    s.id,
                    format!("{} {file}", s.description.clone().unwrap_or_default()),
                )
            })
            .collect();
        plan.sequences = inference::sequences::assign(&inputs, &[], sequences).map_err(|e| {
            StageError::Permanent(format!("the MRI sequences could not be matched: {e}"))
        })?;
        plan.model = Some(pack.manifest.name.clone());
        plan.model_version = Some(pack.manifest.version.clone());
        let volume = self.load_volume(&plan).await?;
        self.volume = Some(volume);
        let out = out_value(&plan);
        self.plan = Some(plan);
        Ok(Some(out))
    }

    /// The sequences of the plan as one multi-channel volume.
    async fn load_volume(&self, plan: &Plan) -> StageResult<Arc<inference::preprocess::Volume>> {
        let mut per_series: Vec<(String, Vec<PathBuf>)> = Vec::new();
        for sid in &plan.sequences {
            let inst = instance::Entity::find()
                .filter(instance::Column::SeriesId.eq(*sid))
                .order_by_asc(instance::Column::SliceLocation)
                .all(&self.svc.db)
                .await?;
            let mut paths = Vec::new();
            let mut kind = String::from("dicom");
            for i in &inst {
                paths.push(self.svc.local_blob(i.org_id, &i.blob_sha256).await?);
                kind = i.kind.clone();
            }
            per_series.push((kind, paths));
        }
        let v = tokio::task::spawn_blocking(move || build_volume(&per_series))
            .await
            .map_err(|_| StageError::Transient("the decoder stopped".into()))?
            .map_err(StageError::Permanent)?;
        Ok(Arc::new(v))
    }

    async fn volume(&mut self) -> StageResult<Arc<inference::preprocess::Volume>> {
        if let Some(v) = &self.volume {
            return Ok(v.clone());
        }
        let plan = self.plan().await?;
        let v = self.load_volume(&plan).await?;
        self.volume = Some(v.clone());
        Ok(v)
    }

    async fn segment(
        &mut self,
        model: &Arc<LoadedModel>,
    ) -> StageResult<Arc<inference::registry::Segmentation>> {
        let volume = self.volume().await?;
        let model = model.clone();
        let seg = tokio::task::spawn_blocking(move || {
            let start = std::time::Instant::now();
            let r = model.segment(&volume);
            crate::telemetry::inference(&model, "segment", 1, start, r.is_ok());
            r
        })
        .await
        .map_err(|_| StageError::Transient("the segmentation stopped".into()))?
        .map_err(|e| {
            StageError::Permanent(format!("the model could not segment the study: {e}"))
        })?;
        Ok(Arc::new(seg))
    }

    async fn decode(
        &self,
        plan: &Plan,
        instances: &[instance::Model],
    ) -> StageResult<Vec<Arc<Image>>> {
        let mut files: Vec<(PathBuf, String, u32)> = Vec::with_capacity(plan.images.len());
        for (id, frame) in &plan.images {
            let inst = instances.iter().find(|i| i.id == *id).ok_or_else(|| {
                StageError::Permanent("an image of the study no longer exists".into())
            })?;
            let path = self.svc.local_blob(inst.org_id, &inst.blob_sha256).await?;
            files.push((path, inst.kind.clone(), *frame));
        }
        let decoded = tokio::task::spawn_blocking(move || {
            files
                .iter()
                .map(|(p, kind, f)| decode_image(p, kind, *f))
                .collect::<Result<Vec<_>, String>>()
        })
        .await
        .map_err(|_| StageError::Transient("the decoder stopped".into()))?
        .map_err(StageError::Permanent)?;
        Ok(decoded.into_iter().map(Arc::new).collect())
    }

    async fn images(&mut self) -> StageResult<Vec<Arc<Image>>> {
        if let Some(i) = &self.images {
            return Ok(i.clone());
        }
        let plan = self.plan().await?;
        let instances = instance::Entity::find()
            .filter(instance::Column::StudyId.eq(self.study_id()?))
            .all(&self.svc.db)
            .await?;
        let images = self.decode(&plan, &instances).await?;
        self.images = Some(images.clone());
        Ok(images)
    }

    async fn model(&self, plan: &Plan) -> StageResult<Arc<LoadedModel>> {
        let name = plan.model.clone().unwrap_or_default();
        self.svc.model(&name).await
    }

    // ---- analysing ------------------------------------------------------

    async fn analysing(&mut self, t0: Instant) -> StageResult<Option<serde_json::Value>> {
        let plan = self.plan().await?;
        if plan.model.is_none() {
            return Ok(Some(serde_json::json!({ "skipped": plan.note })));
        }
        if !plan.sequences.is_empty() {
            return self.analysing_volume(t0, &plan).await;
        }
        let images = self.images().await?;
        let model = self.model(&plan).await?;
        let batcher = self.svc.batcher(&model)?;
        let mut per_image = Vec::with_capacity(images.len());
        // Every image of the study is queued before any is awaited, so
        // they share batches with each other and with other jobs.
        let pending: Vec<_> = images
            .iter()
            .map(|img| batcher.classify(img.clone()))
            .collect();
        for p in pending {
            per_image.push(p.await.map_err(|e| {
                StageError::Permanent(format!("the model could not read an image: {e}"))
            })?);
        }
        // Study level: each label's highest probability over the images
        // (a haemorrhage on one slice is a haemorrhage in the study).
        let labels = &model.pack.manifest.labels;
        let mut best = Vec::with_capacity(labels.len());
        for (k, _) in labels.iter().enumerate() {
            let (idx, s) = per_image
                .iter()
                .enumerate()
                .filter_map(|(i, scores)| scores.get(k).map(|s| (i, s)))
                .max_by(|a, b| a.1.probability.total_cmp(&b.1.probability))
                .ok_or_else(|| StageError::Permanent("the model returned no scores".into()))?;
            best.push((idx, s.clone()));
        }
        let scores: Vec<_> = best.iter().map(|(_, s)| s.clone()).collect();
        // The organisation's operating points (set by its admins after
        // threshold tuning), for the labels this pack has.
        let overrides: Vec<inference::triage::ThresholdOverride> =
            app::analytics::ssr::org_thresholds(
                &self.svc.db,
                self.job.org_id,
                &model.pack.manifest.name,
            )
            .await?
            .into_iter()
            .filter(|(l, _)| labels.contains(l))
            .map(|(label, t)| inference::triage::ThresholdOverride {
                label,
                positive_at: Some(t as f32),
                urgency_if_positive: None,
            })
            .collect();
        let assessment = model.assess(&scores, &overrides).map_err(|e| {
            StageError::Permanent(format!("the model's thresholds are invalid: {e}"))
        })?;
        let scored: Vec<Scored> = assessment
            .findings
            .iter()
            .zip(&best)
            .map(|(d, (idx, s))| Scored {
                label: d.label.clone(),
                probability: d.probability,
                raw_probability: s.raw_probability,
                threshold: d.threshold,
                positive: d.positive,
                urgency: d.urgency.as_str().to_owned(),
                image: *idx,
            })
            .collect();
        let urgency = assessment.urgency.as_str().to_owned();
        let out = serde_json::json!({
            "model": model.pack.manifest.name,
            "model_version": model.version(),
            "urgency": urgency,
            "images": images.len(),
            "findings": scored,
        });
        self.commit_findings(t0, &out, &scored, &urgency, &model, None)
            .await?;
        Ok(None)
    }

    /// Segmentation: one finding per region, present when the model marks
    /// at least 0.1 mL of it, with its volume.
    async fn analysing_volume(
        &mut self,
        t0: Instant,
        plan: &Plan,
    ) -> StageResult<Option<serde_json::Value>> {
        let model = self.model(plan).await?;
        let seg = self.segment(&model).await?;
        let m = &model.pack.manifest;
        let mut scored = Vec::new();
        let mut volumes = Vec::new();
        let mut urgency = inference::triage::Urgency::Routine;
        for (label, _, ml) in &seg.regions {
            let positive = *ml >= 0.1;
            let u = m
                .thresholds
                .iter()
                .find(|t| &t.label == label)
                .filter(|_| positive)
                .map_or(inference::triage::Urgency::Routine, |t| {
                    t.urgency_if_positive
                });
            urgency = urgency.max(u);
            scored.push(Scored {
                label: label.clone(),
                probability: if positive { 1.0 } else { 0.0 },
                raw_probability: if positive { 1.0 } else { 0.0 },
                threshold: 0.5,
                positive,
                urgency: u.as_str().to_owned(),
                image: 0,
            });
            volumes.push(*ml);
        }
        let out = serde_json::json!({
            "model": m.name,
            "model_version": m.version,
            "urgency": urgency.as_str(),
            "volumes_ml": volumes,
            "findings": scored,
        });
        self.commit_findings(t0, &out, &scored, urgency.as_str(), &model, Some(&volumes))
            .await?;
        Ok(None)
    }

    /// Findings, the case's AI urgency and the audit row commit with the
    /// analysing stage's record: all once, or none.
    async fn commit_findings(
        &self,
        t0: Instant,
        out: &serde_json::Value,
        scored: &[Scored],
        urgency: &str,
        model: &LoadedModel,
        volumes: Option<&[f64]>,
    ) -> StageResult<()> {
        self.hold().await;
        let txn = queue::begin(&self.svc.db).await?;
        queue::finish_stage(
            &txn,
            self.job.id,
            self.worker,
            Stage::Analysing,
            Stage::Explaining,
            out,
            t0.elapsed().as_millis() as i64,
            self.svc.cfg.lease(),
            None,
        )
        .await?;
        let study_id = self.study_id()?;
        let at = app::ssr::now();
        let m = &model.pack.manifest;
        for (k, s) in scored.iter().enumerate() {
            finding::ActiveModel {
                id: Set(Uuid::new_v4()),
                org_id: Set(self.job.org_id),
                case_id: Set(self.job.case_id),
                study_id: Set(study_id),
                job_id: Set(self.job.id),
                kind: Set(if volumes.is_some() {
                    "segmentation"
                } else {
                    "classification"
                }
                .into()),
                label: Set(s.label.clone()),
                probability: Set(f64::from(s.probability)),
                raw_probability: Set(volumes.is_none().then_some(f64::from(s.raw_probability))),
                threshold: Set(f64::from(s.threshold)),
                positive: Set(s.positive),
                urgency: Set(s.urgency.clone()),
                model: Set(m.name.clone()),
                model_version: Set(m.version.clone()),
                intended_use: Set(m.intended_use.clone()),
                volume_ml: Set(volumes.and_then(|v| v.get(k).copied())),
                created_at: Set(at),
            }
            .insert(&txn)
            .await?;
        }
        if let Some(c) = case::Entity::find_by_id(self.job.case_id).one(&txn).await? {
            let ai: Option<CaseUrgency> = urgency.parse().ok();
            let old: Option<CaseUrgency> = c.ai_urgency.as_deref().and_then(|u| u.parse().ok());
            let ai = match (old, ai) {
                (Some(o), Some(n)) => Some(if o.rank() >= n.rank() { o } else { n }),
                (o, n) => n.or(o),
            };
            let human: CaseUrgency = c.urgency.parse().unwrap_or(CaseUrgency::Routine);
            let rank = CaseUrgency::effective_rank(human, ai);
            let mut am: case::ActiveModel = c.into();
            am.ai_urgency = Set(ai.map(|u| u.as_str().to_owned()));
            am.urgency_rank = Set(rank);
            am.update(&txn).await?;
        }
        append(
            &txn,
            Entry {
                org_id: Some(self.job.org_id),
                actor_id: None,
                action: "inference.run",
                target_type: "study",
                target_id: Some(study_id.to_string()),
                details: serde_json::json!({
                    "job": self.job.id,
                    "model": m.name,
                    "model_version": m.version,
                    "urgency": urgency,
                    "positive": scored.iter().filter(|s| s.positive).map(|s| &s.label).collect::<Vec<_>>(),
                }),
            },
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    // ---- explaining -----------------------------------------------------

    async fn explaining(&mut self, t0: Instant) -> StageResult<Option<serde_json::Value>> {
        let plan = self.plan().await?;
        if plan.model.is_none() {
            return Ok(Some(serde_json::json!({ "skipped": plan.note })));
        }
        let analysis = queue::stage_output(&self.svc.db, self.job.id, Stage::Analysing)
            .await?
            .ok_or_else(|| StageError::Transient("the analysing stage left no record".into()))?;
        let scored: Vec<Scored> = serde_json::from_value(analysis["findings"].clone())
            .map_err(|_| StageError::Permanent("the analysis record is unreadable".into()))?;
        // Heatmaps for every positive finding, and for the most probable one
        // when none is positive: the reader sees where the model looked.
        let mut wanted: Vec<&Scored> = scored.iter().filter(|s| s.positive).collect();
        if wanted.is_empty() {
            if let Some(top) = scored
                .iter()
                .max_by(|a, b| a.probability.total_cmp(&b.probability))
            {
                wanted.push(top);
            }
        }
        let model = self.model(&plan).await?;
        let mut made = Vec::new();
        if !plan.sequences.is_empty() {
            // Each present region over the axial slice where it is largest.
            let seg = self.segment(&model).await?;
            let volume = self.volume().await?;
            for s in wanted.iter().filter(|s| s.positive) {
                let Some((_, mask, _)) = seg.regions.iter().find(|(l, _, _)| l == &s.label) else {
                    continue;
                };
                let png = mask_overlay(&volume, mask).map_err(StageError::Permanent)?;
                made.push((s.label.clone(), png));
            }
        }
        let images = if plan.sequences.is_empty() {
            self.images().await?
        } else {
            Vec::new()
        };
        for s in wanted.iter().filter(|_| plan.sequences.is_empty()) {
            let Some(img) = images.get(s.image).cloned() else {
                continue;
            };
            let (model, label) = (model.clone(), s.label.clone());
            let png = tokio::task::spawn_blocking(move || heatmap_overlay(&model, &img, &label))
                .await
                .map_err(|_| StageError::Transient("the heatmap computation stopped".into()))?
                .map_err(StageError::Permanent)?;
            made.push((s.label.clone(), png));
        }
        let kind = if plan.sequences.is_empty() {
            "heatmap"
        } else {
            "mask"
        };
        let mut stored = Vec::new();
        for (label, png) in made {
            let sha = hex_sha256(&png);
            self.svc
                .blobs
                .put_bytes(self.job.org_id, &sha, png.clone())
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "pipeline: storing a heatmap failed");
                    StageError::Transient("the image store was unavailable".into())
                })?;
            stored.push((label, sha, png.len()));
        }
        let made = stored;
        let out = serde_json::json!({
            "kind": kind,
            "heatmaps": made.iter().map(|(l, sha, _)| serde_json::json!({"label": l, "sha256": sha})).collect::<Vec<_>>(),
        });
        self.hold().await;
        let txn = queue::begin(&self.svc.db).await?;
        queue::finish_stage(
            &txn,
            self.job.id,
            self.worker,
            Stage::Explaining,
            Stage::Retrieving,
            &out,
            t0.elapsed().as_millis() as i64,
            self.svc.cfg.lease(),
            None,
        )
        .await?;
        let at = app::ssr::now();
        for (label, sha, bytes) in made {
            artefact::ActiveModel {
                id: Set(Uuid::new_v4()),
                org_id: Set(self.job.org_id),
                case_id: Set(self.job.case_id),
                study_id: Set(self.study_id()?),
                job_id: Set(self.job.id),
                kind: Set(kind.into()),
                label: Set(label),
                media_type: Set("image/png".into()),
                blob_sha256: Set(sha),
                bytes: Set(bytes as i64),
                created_at: Set(at),
            }
            .insert(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(None)
    }

    // ---- retrieving and drafting ---------------------------------------

    /// The case's current findings: for each study, its latest completed
    /// analysis, and this job's for its own study. The report covers the
    /// whole case, so every study's job redrafts it from the same view.
    async fn case_findings(&self) -> StageResult<Vec<finding::Model>> {
        let study_id = self.study_id()?;
        let done: Vec<job::Model> = job::Entity::find()
            .filter(job::Column::CaseId.eq(self.job.case_id))
            .filter(job::Column::State.eq(JobState::Completed.as_str()))
            .order_by_asc(job::Column::FinishedMs)
            .all(&self.svc.db)
            .await?;
        let mut latest: HashMap<Uuid, Uuid> = HashMap::new();
        for j in done {
            if let Some(s) = j.study_id {
                latest.insert(s, j.id);
            }
        }
        latest.insert(study_id, self.job.id);
        let mut rows = finding::Entity::find()
            .filter(finding::Column::JobId.is_in(latest.into_values().collect::<Vec<_>>()))
            .all(&self.svc.db)
            .await?;
        rows.sort_by(|a, b| {
            b.positive
                .cmp(&a.positive)
                .then(b.probability.total_cmp(&a.probability))
                .then(a.label.cmp(&b.label))
        });
        Ok(rows)
    }

    async fn retrieving(&mut self, _t0: Instant) -> StageResult<Option<serde_json::Value>> {
        let plan = self.plan().await?;
        if plan.model.is_none() {
            return Ok(Some(serde_json::json!({ "skipped": plan.note })));
        }
        let rows = self.case_findings().await?;
        let (modality, body_part) = (
            filter_modality(&plan.modality),
            filter_body_part(&plan.body_part),
        );
        let text = evidence_query(&rows, &modality, &body_part);
        let knowledge = match self.svc.knowledge().await {
            Ok(k) => k,
            Err(why) => {
                tracing::warn!(reason = %why, "pipeline: no evidence retrieval");
                return Ok(Some(out_value(&StoredSources {
                    passages: Vec::new(),
                    note: Some(format!("No literature was retrieved: {why}.")),
                })));
            }
        };
        let q = evidence::Query {
            text: text.clone(),
            modality: Some(modality),
            body_part: Some(body_part),
            org: evidence::OrgId::parse(&self.job.org_id.to_string()).ok(),
            top_k: self.svc.evidence_top_k,
            ..Default::default()
        };
        let hits = tokio::task::spawn_blocking(move || knowledge.evidence.search(&q))
            .await
            .map_err(|_| StageError::Transient("the evidence search stopped".into()))?;
        let sources = match hits {
            Ok(hits) => StoredSources {
                note: hits
                    .is_empty()
                    .then(|| "Retrieval found no matching literature or guideline.".into()),
                passages: hits.into_iter().map(source_of).collect(),
            },
            Err(e) => {
                // The embedded index failing is not worth a retry storm: the
                // report is drafted without citations and says why.
                tracing::warn!(error = %e, "pipeline: evidence search failed");
                StoredSources {
                    passages: Vec::new(),
                    note: Some("No literature was retrieved: the evidence search failed.".into()),
                }
            }
        };
        let mut out = out_value(&sources);
        out["query"] = serde_json::Value::String(text);
        Ok(Some(out))
    }

    async fn drafting(&mut self, t0: Instant) -> StageResult<Option<serde_json::Value>> {
        let plan = self.plan().await?;
        if plan.model.is_none() {
            return Ok(Some(serde_json::json!({ "skipped": plan.note })));
        }
        let retrieved = queue::stage_output(&self.svc.db, self.job.id, Stage::Retrieving)
            .await?
            .ok_or_else(|| StageError::Transient("the retrieving stage left no record".into()))?;
        let sources: StoredSources = serde_json::from_value(retrieved)
            .map_err(|_| StageError::Permanent("the retrieval record is unreadable".into()))?;
        let existing = report::Entity::find()
            .filter(report::Column::CaseId.eq(self.job.case_id))
            .one(&self.svc.db)
            .await?;
        if let Some(why) = existing.as_ref().and_then(keep_reason) {
            return Ok(Some(serde_json::json!({ "report": "kept", "reason": why })));
        }
        let case = case::Entity::find_by_id(self.job.case_id)
            .one(&self.svc.db)
            .await?
            .ok_or(StageError::LeaseLost)?;
        let rows = self.case_findings().await?;
        let ctx = case_context(&case, &plan, &rows);
        let findings: Vec<reporting::Finding> = rows.iter().map(finding_of).collect();
        let passages: Vec<reporting::Passage> =
            sources.passages.iter().filter_map(passage_of).collect();

        let asks_llm = self.svc.drafter.llm().is_some();
        let allowed = asks_llm && self.svc.llm_breaker.allow();
        let report = reporting::draft_with(
            &ctx,
            &findings,
            &passages,
            &self.svc.drafter,
            reporting::DraftOptions {
                breaker_open: asks_llm && !allowed,
                ..Default::default()
            },
        )
        .await;
        if allowed {
            if report.llm_errors.iter().any(|e| e.is_transient()) {
                self.svc.llm_breaker.failure();
            } else {
                self.svc.llm_breaker.success();
            }
        }
        let writer = match report.writer {
            reporting::Writer::Llm => "llm",
            reporting::Writer::Builtin => "builtin",
        };
        let body = serde_json::to_string(&report)
            .map_err(|_| StageError::Permanent("the report could not be encoded".into()))?;
        let stored_sources = serde_json::to_string(&sources)
            .map_err(|_| StageError::Permanent("the sources could not be encoded".into()))?;
        let out = serde_json::json!({
            "writer": writer,
            "fallback": report.fallback,
            "citations": report.citations.iter().map(|c| &c.id).collect::<Vec<_>>(),
            "verification": report.verification,
        });

        self.hold().await;
        let txn = queue::begin(&self.svc.db).await?;
        queue::finish_stage(
            &txn,
            self.job.id,
            self.worker,
            Stage::Drafting,
            Stage::Completed,
            &out,
            t0.elapsed().as_millis() as i64,
            self.svc.cfg.lease(),
            None,
        )
        .await?;
        let at = app::ssr::now();
        let current = report::Entity::find()
            .filter(report::Column::CaseId.eq(self.job.case_id))
            .one(&txn)
            .await?;
        let revision = match current {
            // Signed or edited while we drafted: the person wins.
            Some(r) if keep_reason(&r).is_some() => {
                txn.commit().await?;
                return Ok(None);
            }
            Some(r) => {
                let revision = r.revision + 1;
                let mut am: report::ActiveModel = r.into();
                am.writer = Set(writer.into());
                am.body = Set(body);
                am.sources = Set(stored_sources);
                am.job_id = Set(Some(self.job.id));
                am.revision = Set(revision);
                am.updated_at = Set(at);
                am.update(&txn).await?;
                revision
            }
            None => {
                report::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    org_id: Set(self.job.org_id),
                    case_id: Set(self.job.case_id),
                    status: Set("draft".into()),
                    writer: Set(writer.into()),
                    body: Set(body),
                    sources: Set(stored_sources),
                    job_id: Set(Some(self.job.id)),
                    revision: Set(1),
                    created_at: Set(at),
                    updated_at: Set(at),
                    signed_by: Set(None),
                    signed_at: Set(None),
                }
                .insert(&txn)
                .await?;
                1
            }
        };
        append(
            &txn,
            Entry {
                org_id: Some(self.job.org_id),
                actor_id: None,
                action: "report.drafted",
                target_type: "case",
                target_id: Some(self.job.case_id.to_string()),
                details: serde_json::json!({
                    "job": self.job.id,
                    "writer": writer,
                    "revision": revision,
                    "model": report.model,
                    "prompt_version": report.prompt_version,
                    "fallback": report.fallback,
                }),
            },
        )
        .await?;
        txn.commit().await?;
        Ok(None)
    }
}

/// Why the drafting stage must leave the case's report alone: a person
/// signed it (changes are addenda) or edited it (their text wins; the new
/// findings are in the findings table).
fn keep_reason(r: &report::Model) -> Option<&'static str> {
    if r.status == "signed" {
        return Some("the case's report is signed; new results need an addendum");
    }
    let edited = serde_json::from_str::<serde_json::Value>(&r.body)
        .is_ok_and(|b| b.get("edited_by").is_some_and(|v| !v.is_null()));
    edited.then_some("a reader edited the draft; it is not redrafted")
}

/// The index's modality codes are lower case; CR and DX read alike.
fn filter_modality(m: &str) -> String {
    m.trim().to_ascii_lowercase()
}

/// The index's body parts: `head` for HEAD/BRAIN/SKULL, `chest` for
/// CHEST/THORAX/LUNG, as the models are chosen.
fn filter_body_part(b: &str) -> String {
    match b.trim().to_ascii_uppercase().as_str() {
        "HEAD" | "BRAIN" | "SKULL" => "head".into(),
        "CHEST" | "THORAX" | "LUNG" | "LUNGS" => "chest".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// The search text: what the models suggest, in the words guidelines use.
fn evidence_query(rows: &[finding::Model], modality: &str, body_part: &str) -> String {
    let mut terms: Vec<String> = rows
        .iter()
        .filter(|f| f.positive)
        .map(|f| reporting::display_term(&f.label))
        .collect();
    terms.dedup();
    let what = if terms.is_empty() {
        format!("normal {body_part} imaging, no acute finding")
    } else {
        terms.join(", ")
    };
    format!(
        "{what} on {} {body_part}: management and follow-up",
        modality.to_ascii_uppercase()
    )
}

fn source_of(h: evidence::Hit) -> SourceDto {
    SourceDto {
        source: h.source.as_str().into(),
        id: h.id,
        title: h.title,
        year: h.year,
        url: h.url,
        section: h.section,
        passage: h.passage,
        score: h.score,
        why_matched: h.why_matched,
    }
}

fn passage_of(s: &SourceDto) -> Option<reporting::Passage> {
    let source = match s.source.as_str() {
        "pubmed" => reporting::SourceKind::Literature,
        "guideline" => reporting::SourceKind::Guideline,
        "report" => reporting::SourceKind::OrgReport,
        _ => return None,
    };
    Some(reporting::Passage {
        id: s.id.clone(),
        source,
        title: s.title.clone(),
        year: s.year.and_then(|y| u16::try_from(y).ok()),
        url: s.url.clone(),
        text: s.passage.clone(),
    })
}

fn finding_of(f: &finding::Model) -> reporting::Finding {
    reporting::Finding {
        label: f.label.clone(),
        probability: f.probability as f32,
        threshold: f.threshold as f32,
        positive: f.positive,
        urgency: f.urgency.clone(),
        model: f.model.clone(),
        model_version: f.model_version.clone(),
        study_id: Some(f.study_id.to_string()),
    }
}

/// What a request form carries, never the patient's identity.
fn case_context(c: &case::Model, plan: &Plan, rows: &[finding::Model]) -> reporting::CaseContext {
    let mut models: Vec<reporting::ModelUse> = Vec::new();
    for f in rows {
        if !models
            .iter()
            .any(|m| m.model == f.model && m.model_version == f.model_version)
        {
            models.push(reporting::ModelUse {
                model: f.model.clone(),
                model_version: f.model_version.clone(),
                intended_use: f.intended_use.clone(),
            });
        }
    }
    reporting::CaseContext {
        age: c.age.and_then(|a| u16::try_from(a).ok()),
        sex: match c.sex.as_str() {
            "F" => Some(reporting::Sex::Female),
            "M" => Some(reporting::Sex::Male),
            "O" => Some(reporting::Sex::Other),
            _ => None,
        },
        history: Some(c.history.trim().to_owned()).filter(|h| !h.is_empty()),
        modality: plan.modality.clone(),
        body_part: filter_body_part(&plan.body_part),
        models,
    }
}

fn out_value<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Modality values (HU for CT) of one frame, as the models read them.
fn decode_image(path: &std::path::Path, kind: &str, frame: u32) -> Result<Image, String> {
    match kind {
        "raster" => {
            let img = image_grey(path)?;
            Ok(img)
        }
        _ => {
            let file = imaging::dicom::open(path)
                .map_err(|e| format!("the image could not be read: {e}"))?;
            let f = file
                .decode_frame(frame)
                .map_err(|e| format!("the pixel data could not be decoded: {e}"))?;
            let mut values = imaging::pixel::modality_values(&f);
            let (w, h) = (f.columns as usize, f.rows as usize);
            let spp = usize::from(f.samples_per_pixel.max(1));
            if spp > 1 {
                // Colour: the models read luminance.
                values = values
                    .chunks(spp)
                    .map(|c| {
                        0.299 * c[0]
                            + 0.587 * c.get(1).copied().unwrap_or(0.0)
                            + 0.114 * c.get(2).copied().unwrap_or(0.0)
                    })
                    .collect();
            }
            if f.photometric == imaging::dicom::Photometric::Monochrome1 {
                // Brighter means denser for the models, as in MONOCHROME2.
                let (lo, hi) = values
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                values.iter_mut().for_each(|v| *v = hi + lo - *v);
            }
            if values.len() != w * h {
                return Err("the pixel data does not match the image size".into());
            }
            Ok(Image {
                values,
                width: w,
                height: h,
            })
        }
    }
}

/// A stored raster (PNG after ingest) as grey values 0–255.
fn image_grey(path: &std::path::Path) -> Result<Image, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("the image could not be read: {e}"))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec
        .read_info()
        .map_err(|e| format!("the image could not be read: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("the image could not be decoded: {e}"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let ch = info.color_type.samples();
    let values = buf[..info.buffer_size()]
        .chunks(ch)
        .map(|c| match ch {
            1 | 2 => f32::from(c[0]),
            _ => 0.299 * f32::from(c[0]) + 0.587 * f32::from(c[1]) + 0.114 * f32::from(c[2]),
        })
        .collect();
    Ok(Image {
        values,
        width: w,
        height: h,
    })
}

/// Grad-CAM of `label` over the image, blended on the image itself (at the
/// network's input size, windowed to its own range), as PNG.
fn heatmap_overlay(model: &LoadedModel, img: &Image, label: &str) -> Result<Vec<u8>, String> {
    use inference::gradcam::CamMethod;
    use inference::preprocess::Plane;
    let plane = Plane {
        values: &img.values,
        width: img.width,
        height: img.height,
    };
    let map = model
        .explain(&plane, label, CamMethod::GradCam)
        .map_err(|e| format!("the heatmap could not be computed: {e}"))?;
    let base = resize_unit(img, map.width, map.height);
    map.overlay_png(&base, 0.5)
        .map_err(|e| format!("the heatmap could not be drawn: {e}"))
}

/// The image resized (nearest neighbour) to `w × h`, scaled to [0, 1] over
/// its 1st–99th percentile so the anatomy is visible under the overlay.
fn resize_unit(img: &Image, w: usize, h: usize) -> Vec<f32> {
    let mut sorted: Vec<f32> = img
        .values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    sorted.sort_by(f32::total_cmp);
    let pick = |q: f32| {
        sorted
            .get(((sorted.len().saturating_sub(1)) as f32 * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let (lo, hi) = (pick(0.01), pick(0.99));
    let span = (hi - lo).max(1e-6);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let sy = (y * img.height / h.max(1)).min(img.height.saturating_sub(1));
        for x in 0..w {
            let sx = (x * img.width / w.max(1)).min(img.width.saturating_sub(1));
            let v = img.values.get(sy * img.width + sx).copied().unwrap_or(0.0);
            out.push(((v - lo) / span).clamp(0.0, 1.0));
        }
    }
    out
}

/// Reads one volume per sequence (NIfTI file or DICOM series) into one
/// multi-channel volume; all sequences must share the grid.
fn build_volume(
    series: &[(String, Vec<PathBuf>)],
) -> Result<inference::preprocess::Volume, String> {
    let mut channels = Vec::with_capacity(series.len());
    let mut grid: Option<([usize; 3], [f32; 3])> = None;
    for (kind, paths) in series {
        let (shape, spacing, data) = if kind == "nifti" {
            let path = paths.first().ok_or("a sequence has no file")?;
            let v = imaging::nifti::open(path)
                .map_err(|e| format!("a sequence could not be read: {e}"))?;
            let [nx, ny, nz, _] = v.shape();
            let mut data = Vec::with_capacity(nx * ny * nz);
            v.for_each_slice(|_, t, values| {
                if t == 0 {
                    data.extend_from_slice(values);
                }
                Ok(())
            })
            .map_err(|e| format!("a sequence could not be read: {e}"))?;
            let p = v.header.pixdim;
            ([nz, ny, nx], [p[3] as f32, p[2] as f32, p[1] as f32], data)
        } else {
            let v = imaging::volume::build_volume(paths)
                .map_err(|e| format!("a sequence could not be read: {e}"))?;
            let [nx, ny, nz] = v.dims;
            (
                [nz, ny, nx],
                [
                    v.spacing[2] as f32,
                    v.spacing[1] as f32,
                    v.spacing[0] as f32,
                ],
                v.data,
            )
        };
        match grid {
            None => grid = Some((shape, spacing)),
            Some((s, _)) if s != shape => {
                return Err(format!(
                    "the sequences have different sizes ({s:?} and {shape:?}); the model needs them on one grid"
                ))
            }
            Some(_) => {}
        }
        channels.push(data);
    }
    let (shape, spacing) = grid.ok_or("no sequences")?;
    Ok(inference::preprocess::Volume {
        shape,
        channels,
        spacing: spacing.map(|s| if s.is_finite() && s > 0.0 { s } else { 1.0 }),
    })
}

/// The region in red over the last sequence (FLAIR in BraTS order) on the
/// axial slice where the region is largest, as PNG.
fn mask_overlay(volume: &inference::preprocess::Volume, mask: &[u8]) -> Result<Vec<u8>, String> {
    let [d, h, w] = volume.shape;
    let plane = h * w;
    if mask.len() != d * plane || volume.channels.iter().any(|c| c.len() != d * plane) {
        return Err("the mask does not match the volume".into());
    }
    let z = (0..d)
        .max_by_key(|&z| {
            mask[z * plane..(z + 1) * plane]
                .iter()
                .filter(|&&m| m == 1)
                .count()
        })
        .unwrap_or(0);
    let base = volume.channels.last().ok_or("no sequences")?;
    let slice = &base[z * plane..(z + 1) * plane];
    let hi = slice.iter().copied().fold(f32::MIN, f32::max).max(1e-6);
    let mut rgb = Vec::with_capacity(plane * 3);
    for (i, &v) in slice.iter().enumerate() {
        let g = (v.max(0.0) / hi * 255.0).clamp(0.0, 255.0);
        if mask[z * plane + i] == 1 {
            rgb.extend_from_slice(&[(0.5 * g + 127.0) as u8, (0.5 * g) as u8, (0.5 * g) as u8]);
        } else {
            rgb.extend_from_slice(&[g as u8, g as u8, g as u8]);
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(|e| e.to_string())?;
        wr.write_image_data(&rgb).map_err(|e| e.to_string())?;
    }
    Ok(out)
}
