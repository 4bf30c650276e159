//! The analysis pipeline as people see it: each study's job moving through
//! its stages, batches of uploads, and the models' findings. The queue
//! mechanics (claiming, leases, retries) live in the server's workers; this
//! is the data layer the pages and the REST API read, with the tenant checks.

use crate::error::AppError;
use crate::images::RejectedDto;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The queue's view of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// The pipeline's stages, in order; `Failed` is where a failure is shown
/// when the stage it happened in is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Uploaded,
    Decoding,
    Analysing,
    Explaining,
    Retrieving,
    Drafting,
    Completed,
    Failed,
}

macro_rules! wire_names {
    ($t:ty, { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s,)+ }
            }
        }
        impl std::str::FromStr for $t {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($s => Ok(Self::$v),)+ _ => Err(()) }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_names!(JobState, {
    Queued => "queued", Running => "running", Completed => "completed",
    Failed => "failed", Cancelled => "cancelled",
});

wire_names!(Stage, {
    Uploaded => "uploaded", Decoding => "decoding", Analysing => "analysing",
    Explaining => "explaining", Retrieving => "retrieving", Drafting => "drafting",
    Completed => "completed", Failed => "failed",
});

impl Stage {
    /// The stages a job of kind `analyse` runs, in order.
    pub const WORK: [Stage; 5] = [
        Stage::Decoding,
        Stage::Analysing,
        Stage::Explaining,
        Stage::Retrieving,
        Stage::Drafting,
    ];

    /// The stage after this one (`Completed` after the last).
    pub fn next(self) -> Stage {
        match self {
            Stage::Uploaded => Stage::Decoding,
            Stage::Decoding => Stage::Analysing,
            Stage::Analysing => Stage::Explaining,
            Stage::Explaining => Stage::Retrieving,
            Stage::Retrieving => Stage::Drafting,
            Stage::Drafting | Stage::Completed => Stage::Completed,
            Stage::Failed => Stage::Failed,
        }
    }

    /// What the case page says while a job is in this stage.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Uploaded => "Waiting",
            Stage::Decoding => "Decoding images",
            Stage::Analysing => "Running the model",
            Stage::Explaining => "Computing heatmaps",
            Stage::Retrieving => "Retrieving evidence",
            Stage::Drafting => "Drafting the report",
            Stage::Completed => "Done",
            Stage::Failed => "Failed",
        }
    }
}

/// One study's analysis, as `GET /api/v1/cases/{id}/jobs` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct JobDto {
    pub id: Uuid,
    pub study_id: Option<Uuid>,
    pub batch_id: Option<Uuid>,
    /// `queued|running|completed|failed|cancelled`
    pub state: String,
    /// `uploaded|decoding|analysing|explaining|retrieving|drafting|completed`
    /// (for a failed job: the stage it failed in).
    pub stage: String,
    pub attempts: i32,
    /// Why the job failed (or why its last attempt did), for people.
    pub error: Option<String>,
    /// What to know about a completed job, e.g. that no model applied.
    pub note: Option<String>,
    /// Study modality and description, for the lists.
    pub modality: Option<String>,
    pub description: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Milliseconds from the first claim to completion.
    pub duration_ms: Option<i64>,
}

/// One model output, as `GET /api/v1/cases/{id}/findings` lists it. Always
/// a suggestion: the page shows it with its model and version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FindingDto {
    pub id: Uuid,
    pub study_id: Uuid,
    /// `classification` or `segmentation`.
    pub kind: String,
    pub label: String,
    /// Calibrated probability.
    pub probability: f64,
    pub raw_probability: Option<f64>,
    pub threshold: f64,
    pub positive: bool,
    pub urgency: String,
    pub model: String,
    pub model_version: String,
    pub intended_use: String,
    /// Segmented volume, mL.
    pub volume_ml: Option<f64>,
    pub heatmap_url: Option<String>,
    /// A radiologist's current decision on this suggestion, if any.
    pub review: Option<crate::review::ReviewDto>,
}

/// Per-state job counts of a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BatchCounts {
    pub queued: u32,
    pub running: u32,
    pub completed: u32,
    pub failed: u32,
    pub cancelled: u32,
    /// Files ingest refused (they never became studies).
    pub rejected: u32,
}

/// A batch page: every study's job, the refused files, progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BatchDto {
    pub id: Uuid,
    pub case_id: Uuid,
    /// `upload`, `import` or `dicom`.
    pub source: String,
    pub files: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub cancelled: bool,
    pub counts: BatchCounts,
    pub jobs: Vec<JobDto>,
    pub rejected: Vec<RejectedDto>,
    /// Studies finished per minute since the first one started.
    pub per_minute: Option<f64>,
    /// Seconds until the remaining studies are done at that pace.
    pub eta_seconds: Option<i64>,
}

impl BatchCounts {
    pub fn done(&self) -> bool {
        self.queued == 0 && self.running == 0
    }
}

/// Throughput and ETA from finished jobs' times (epoch ms).
pub fn pace(started: &[i64], finished: &[i64], remaining: u32) -> (Option<f64>, Option<i64>) {
    let (Some(first), Some(last)) = (started.iter().min(), finished.iter().max()) else {
        return (None, None);
    };
    let span_ms = (last - first).max(1) as f64;
    let per_minute = finished.len() as f64 * 60_000.0 / span_ms;
    let eta = (per_minute > 0.0).then(|| (f64::from(remaining) * 60.0 / per_minute).round() as i64);
    (Some(per_minute), eta.filter(|_| remaining > 0))
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::audit::ssr::{append, Entry};
    use crate::cases::ssr::find_visible;
    use crate::domain::Role;
    use crate::ssr::{now, write_txn, Actor};
    use entity::{artefact, batch, finding, job, study};
    use sea_orm::sea_query::Expr;
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
        DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    };
    use std::collections::HashMap;

    /// Milliseconds since the epoch: the queue's clock.
    pub fn now_ms() -> i64 {
        now().timestamp_millis()
    }

    /// What an upload or import hands to the queue.
    pub struct Enqueue<'a> {
        /// `upload`, `import` or `dicom`.
        pub source: &'a str,
        pub files: usize,
        pub max_attempts: i32,
    }

    /// Records a batch and one `analyse` job per study, inside the upload's
    /// transaction: the images and their jobs commit together or not at all.
    pub async fn enqueue_batch(
        txn: &DatabaseTransaction,
        actor: &Actor,
        case_id: Uuid,
        study_ids: &[Uuid],
        rejected: &[RejectedDto],
        e: &Enqueue<'_>,
    ) -> Result<(Uuid, Vec<Uuid>), AppError> {
        let at = now();
        let batch_id = Uuid::new_v4();
        batch::ActiveModel {
            id: Set(batch_id),
            org_id: Set(actor.org_id),
            case_id: Set(case_id),
            created_by: Set(actor.user_id),
            source: Set(e.source.to_owned()),
            files: Set(i32::try_from(e.files).unwrap_or(i32::MAX)),
            rejected: Set(serde_json::to_string(rejected).unwrap_or_else(|_| "[]".into())),
            cancelled_at: Set(None),
            created_at: Set(at),
        }
        .insert(txn)
        .await?;
        let mut jobs = Vec::with_capacity(study_ids.len());
        for &study_id in study_ids {
            let id = insert_job(
                txn,
                actor.org_id,
                case_id,
                Some(study_id),
                Some(batch_id),
                "analyse",
                e.max_attempts,
            )
            .await?;
            jobs.push(id);
        }
        Ok((batch_id, jobs))
    }

    /// A queued job, at the first stage.
    pub async fn insert_job<C: ConnectionTrait>(
        c: &C,
        org_id: Uuid,
        case_id: Uuid,
        study_id: Option<Uuid>,
        batch_id: Option<Uuid>,
        kind: &str,
        max_attempts: i32,
    ) -> Result<Uuid, AppError> {
        let id = Uuid::new_v4();
        let ms = now_ms();
        job::ActiveModel {
            id: Set(id),
            org_id: Set(org_id),
            case_id: Set(case_id),
            study_id: Set(study_id),
            batch_id: Set(batch_id),
            kind: Set(kind.to_owned()),
            state: Set(JobState::Queued.as_str().to_owned()),
            stage: Set(Stage::Uploaded.as_str().to_owned()),
            attempts: Set(0),
            max_attempts: Set(max_attempts.max(1)),
            run_after: Set(ms),
            lease_owner: Set(None),
            lease_until: Set(None),
            last_error: Set(None),
            note: Set(None),
            created_at: Set(now()),
            updated_ms: Set(ms),
            started_ms: Set(None),
            finished_ms: Set(None),
        }
        .insert(c)
        .await?;
        Ok(id)
    }

    fn job_dto(j: job::Model, studies: &HashMap<Uuid, study::Model>) -> JobDto {
        let s = j.study_id.and_then(|id| studies.get(&id));
        JobDto {
            id: j.id,
            study_id: j.study_id,
            batch_id: j.batch_id,
            state: j.state,
            stage: j.stage,
            attempts: j.attempts,
            error: j.last_error,
            note: j.note,
            modality: s.map(|s| s.modality.clone()),
            description: s.and_then(|s| s.description.clone()),
            created_at: j.created_at,
            duration_ms: j.started_ms.zip(j.finished_ms).map(|(a, b)| b - a),
        }
    }

    async fn studies_of<C: ConnectionTrait>(
        c: &C,
        jobs: &[job::Model],
    ) -> Result<HashMap<Uuid, study::Model>, AppError> {
        let ids: Vec<Uuid> = jobs.iter().filter_map(|j| j.study_id).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(study::Entity::find()
            .filter(study::Column::Id.is_in(ids))
            .all(c)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect())
    }

    /// The analysis jobs of a visible case, newest first.
    pub async fn case_jobs(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
    ) -> Result<Vec<JobDto>, AppError> {
        let case = find_visible(db, actor, case_id).await?;
        let jobs = job::Entity::find()
            .filter(job::Column::CaseId.eq(case.id))
            .filter(job::Column::Kind.eq("analyse"))
            .order_by_desc(job::Column::CreatedAt)
            .all(db)
            .await?;
        let studies = studies_of(db, &jobs).await?;
        Ok(jobs.into_iter().map(|j| job_dto(j, &studies)).collect())
    }

    /// The findings of a visible case: for each study, those of its most
    /// recent completed analysis.
    pub async fn case_findings(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
    ) -> Result<Vec<FindingDto>, AppError> {
        let case = find_visible(db, actor, case_id).await?;
        let done: Vec<job::Model> = job::Entity::find()
            .filter(job::Column::CaseId.eq(case.id))
            .filter(job::Column::State.eq(JobState::Completed.as_str()))
            .order_by_asc(job::Column::FinishedMs)
            .all(db)
            .await?;
        let mut latest: HashMap<Uuid, Uuid> = HashMap::new();
        for j in &done {
            if let Some(s) = j.study_id {
                latest.insert(s, j.id);
            }
        }
        let job_ids: Vec<Uuid> = latest.values().copied().collect();
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        let heatmaps: HashMap<(Uuid, String), Uuid> = artefact::Entity::find()
            .filter(artefact::Column::JobId.is_in(job_ids.clone()))
            .all(db)
            .await?
            .into_iter()
            .map(|a| ((a.job_id, a.label), a.id))
            .collect();
        let mut rows = finding::Entity::find()
            .filter(finding::Column::JobId.is_in(job_ids))
            .all(db)
            .await?;
        // Positive and most probable first: what a reader looks at first.
        rows.sort_by(|a, b| {
            b.positive
                .cmp(&a.positive)
                .then(b.probability.total_cmp(&a.probability))
                .then(a.label.cmp(&b.label))
        });
        let mut reviews = crate::review::ssr::latest_by_finding(db, case.id).await?;
        Ok(rows
            .into_iter()
            .map(|f| FindingDto {
                review: reviews.remove(&f.id),
                heatmap_url: heatmaps
                    .get(&(f.job_id, f.label.clone()))
                    .map(|id| format!("/api/v1/artefacts/{id}")),
                id: f.id,
                study_id: f.study_id,
                kind: f.kind,
                label: f.label,
                probability: f.probability,
                raw_probability: f.raw_probability,
                threshold: f.threshold,
                positive: f.positive,
                urgency: f.urgency,
                model: f.model,
                model_version: f.model_version,
                intended_use: f.intended_use,
                volume_ml: f.volume_ml,
            })
            .collect())
    }

    async fn visible_batch<C: ConnectionTrait>(
        c: &C,
        actor: &Actor,
        id: Uuid,
    ) -> Result<batch::Model, AppError> {
        let b = batch::Entity::find_by_id(id)
            .filter(batch::Column::OrgId.eq(actor.org_id))
            .one(c)
            .await?
            .ok_or(AppError::NotFound)?;
        find_visible(c, actor, b.case_id).await?;
        Ok(b)
    }

    /// A visible batch with its jobs, counts and pace.
    pub async fn batch(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
    ) -> Result<BatchDto, AppError> {
        let b = visible_batch(db, actor, id).await?;
        batch_dto(db, b).await
    }

    async fn batch_dto<C: ConnectionTrait>(c: &C, b: batch::Model) -> Result<BatchDto, AppError> {
        let jobs = job::Entity::find()
            .filter(job::Column::BatchId.eq(b.id))
            .order_by_asc(job::Column::CreatedAt)
            .all(c)
            .await?;
        let rejected: Vec<RejectedDto> = serde_json::from_str(&b.rejected).unwrap_or_default();
        let mut counts = BatchCounts {
            rejected: u32::try_from(rejected.len()).unwrap_or(u32::MAX),
            ..Default::default()
        };
        let (mut started, mut finished) = (Vec::new(), Vec::new());
        for j in &jobs {
            match j.state.parse::<JobState>() {
                Ok(JobState::Queued) => counts.queued += 1,
                Ok(JobState::Running) => counts.running += 1,
                Ok(JobState::Completed) => counts.completed += 1,
                Ok(JobState::Failed) => counts.failed += 1,
                Ok(JobState::Cancelled) | Err(()) => counts.cancelled += 1,
            }
            if let Some(s) = j.started_ms {
                started.push(s);
            }
            if let (Some(f), "completed") = (j.finished_ms, j.state.as_str()) {
                finished.push(f);
            }
        }
        let (per_minute, eta_seconds) = pace(&started, &finished, counts.queued + counts.running);
        let studies = studies_of(c, &jobs).await?;
        Ok(BatchDto {
            id: b.id,
            case_id: b.case_id,
            source: b.source,
            files: b.files,
            created_at: b.created_at,
            cancelled: b.cancelled_at.is_some(),
            counts,
            jobs: jobs.into_iter().map(|j| job_dto(j, &studies)).collect(),
            rejected,
            per_minute,
            eta_seconds,
        })
    }

    /// The batches of a visible case, newest first.
    pub async fn case_batches(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
    ) -> Result<Vec<BatchDto>, AppError> {
        let case = find_visible(db, actor, case_id).await?;
        let rows = batch::Entity::find()
            .filter(batch::Column::CaseId.eq(case.id))
            .order_by_desc(batch::Column::CreatedAt)
            .all(db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for b in rows {
            out.push(batch_dto(db, b).await?);
        }
        Ok(out)
    }

    /// Stops a batch: jobs not yet finished are cancelled (a worker in the
    /// middle of one loses its lease at its next step and discards the
    /// work); finished results stay.
    pub async fn cancel_batch(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
    ) -> Result<BatchDto, AppError> {
        let txn = write_txn(db).await?;
        let b = visible_batch(&txn, actor, id).await?;
        let ms = now_ms();
        let r = job::Entity::update_many()
            .col_expr(
                job::Column::State,
                Expr::value(JobState::Cancelled.as_str()),
            )
            .col_expr(job::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(job::Column::UpdatedMs, Expr::value(ms))
            .col_expr(job::Column::FinishedMs, Expr::value(ms))
            .filter(job::Column::BatchId.eq(b.id))
            .filter(
                job::Column::State.is_in([JobState::Queued.as_str(), JobState::Running.as_str()]),
            )
            .exec(&txn)
            .await?;
        let mut am: batch::ActiveModel = b.clone().into();
        am.cancelled_at = Set(Some(now()));
        let b = am.update(&txn).await?;
        append(
            &txn,
            Entry::by(actor, "batch.cancel", "batch", b.id)
                .details(serde_json::json!({ "cancelled_jobs": r.rows_affected })),
        )
        .await?;
        let dto = batch_dto(&txn, b).await?;
        txn.commit().await?;
        Ok(dto)
    }

    /// Queues the failed (and cancelled) jobs of a batch again, from the
    /// stage they stopped in, with a fresh set of attempts.
    pub async fn retry_batch(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
    ) -> Result<BatchDto, AppError> {
        let txn = write_txn(db).await?;
        let b = visible_batch(&txn, actor, id).await?;
        let r = requeue(&txn, job::Column::BatchId.eq(b.id)).await?;
        let mut am: batch::ActiveModel = b.clone().into();
        am.cancelled_at = Set(None);
        let b = am.update(&txn).await?;
        append(
            &txn,
            Entry::by(actor, "batch.retry", "batch", b.id)
                .details(serde_json::json!({ "requeued_jobs": r })),
        )
        .await?;
        let dto = batch_dto(&txn, b).await?;
        txn.commit().await?;
        Ok(dto)
    }

    async fn requeue(
        txn: &DatabaseTransaction,
        which: sea_orm::sea_query::SimpleExpr,
    ) -> Result<u64, AppError> {
        let ms = now_ms();
        Ok(job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(JobState::Queued.as_str()))
            .col_expr(job::Column::Attempts, Expr::value(0))
            .col_expr(job::Column::RunAfter, Expr::value(ms))
            .col_expr(job::Column::UpdatedMs, Expr::value(ms))
            .col_expr(job::Column::FinishedMs, Expr::value(Option::<i64>::None))
            .col_expr(job::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .filter(which)
            .filter(
                job::Column::State.is_in([JobState::Failed.as_str(), JobState::Cancelled.as_str()]),
            )
            .exec(txn)
            .await?
            .rows_affected)
    }

    /// The dead letters of the admin's organisation: jobs that failed for
    /// good, newest first.
    pub async fn failed_jobs(
        db: &DatabaseConnection,
        actor: &Actor,
    ) -> Result<Vec<JobDto>, AppError> {
        actor.require_role(Role::Admin)?;
        let jobs = job::Entity::find()
            .filter(job::Column::OrgId.eq(actor.org_id))
            .filter(job::Column::State.eq(JobState::Failed.as_str()))
            .order_by_desc(job::Column::UpdatedMs)
            .all(db)
            .await?;
        let studies = studies_of(db, &jobs).await?;
        Ok(jobs.into_iter().map(|j| job_dto(j, &studies)).collect())
    }

    /// An admin re-runs one failed job.
    pub async fn retry_job(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
    ) -> Result<JobDto, AppError> {
        actor.require_role(Role::Admin)?;
        let txn = write_txn(db).await?;
        let j = job::Entity::find_by_id(id)
            .filter(job::Column::OrgId.eq(actor.org_id))
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound)?;
        if requeue(&txn, job::Column::Id.eq(j.id)).await? == 0 {
            return Err(AppError::Conflict(
                "Only a failed or cancelled job can be run again.".into(),
            ));
        }
        append(&txn, Entry::by(actor, "job.retry", "job", j.id)).await?;
        let j = job::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound)?;
        let studies = studies_of(&txn, std::slice::from_ref(&j)).await?;
        txn.commit().await?;
        Ok(job_dto(j, &studies))
    }

    /// An artefact of a visible case.
    pub async fn artefact(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
    ) -> Result<artefact::Model, AppError> {
        let a = artefact::Entity::find_by_id(id)
            .filter(artefact::Column::OrgId.eq(actor.org_id))
            .one(db)
            .await?
            .ok_or(AppError::NotFound)?;
        find_visible(db, actor, a.case_id).await?;
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_advance_in_order_and_round_trip() {
        let mut s = Stage::Uploaded;
        let mut seen = vec![s];
        while s != Stage::Completed {
            s = s.next();
            seen.push(s);
        }
        assert_eq!(
            seen.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            [
                "uploaded",
                "decoding",
                "analysing",
                "explaining",
                "retrieving",
                "drafting",
                "completed"
            ]
        );
        for s in seen {
            assert_eq!(s.as_str().parse::<Stage>(), Ok(s));
        }
        assert!("deciding".parse::<Stage>().is_err());
    }

    #[test]
    fn pace_from_finished_jobs() {
        // Two studies done one minute after the first started, three left.
        let (per_min, eta) = pace(&[0, 1_000], &[30_000, 60_000], 3);
        assert!((per_min.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(eta, Some(90));
        assert_eq!(pace(&[0], &[], 3), (None, None));
        assert_eq!(pace(&[0], &[60_000], 0).1, None);
    }
}

// ---- server functions and pages ------------------------------------------

#[server(prefix = "/sfn", endpoint = "case_jobs", input = server_fn::codec::GetUrl)]
pub async fn case_jobs(id: String) -> Result<Vec<JobDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
            ssr::case_jobs(&state()?.db, &require_user()?, id).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "case_findings", input = server_fn::codec::GetUrl)]
pub async fn case_findings(id: String) -> Result<Vec<FindingDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
            ssr::case_findings(&state()?.db, &require_user()?, id).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "get_batch", input = server_fn::codec::GetUrl)]
pub async fn get_batch(id: String) -> Result<BatchDto, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
            ssr::batch(&state()?.db, &require_user()?, id).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "cancel_batch")]
pub async fn cancel_batch(id: String) -> Result<BatchDto, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
            ssr::cancel_batch(&state()?.db, &require_user()?, id).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "retry_batch")]
pub async fn retry_batch(id: String) -> Result<BatchDto, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
            ssr::retry_batch(&state()?.db, &require_user()?, id).await
        }
        .await,
    )
}

/// Re-reads on every server-sent event of `url` (in the browser only).
fn live(url: String, tick: RwSignal<u32>) {
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        use wasm_bindgen::closure::Closure;
        use wasm_bindgen::JsCast;
        let Ok(es) = web_sys::EventSource::new(&url) else {
            return;
        };
        let cb = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| tick.update(|n| *n += 1));
        for name in ["job", "resync"] {
            let _ = es.add_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
        }
        cb.forget();
        let es = send_wrapper::SendWrapper::new(es);
        on_cleanup(move || es.close());
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (url, tick);
}

/// "CT Head routine": one text node, never an empty one (an empty text
/// node does not exist in the parsed HTML, and hydration then misses it).
fn study_label(modality: Option<&str>, description: Option<&str>) -> String {
    let s = format!("{} {}", modality.unwrap_or(""), description.unwrap_or(""));
    match s.trim() {
        "" => "—".to_owned(),
        t => t.to_owned(),
    }
}

fn state_badge(state: &str) -> impl IntoView {
    view! { <span class=format!("status job-{state}")>{state.to_owned()}</span> }
}

/// The stage strip: done stages ticked, the current one highlighted.
#[component]
fn Stages(stage: String, state: String) -> impl IntoView {
    let current: Option<Stage> = stage.parse().ok();
    view! {
        <ol class="stages">
            {Stage::WORK.iter().map(|s| {
                let class = match current {
                    _ if state == "completed" => "done",
                    Some(c) if *s < c => "done",
                    Some(c) if *s == c && state == "failed" => "failed",
                    Some(c) if *s == c && state == "running" => "current",
                    _ => "todo",
                };
                view! { <li class=class title=s.label()>{s.as_str()}</li> }
            }).collect_view()}
        </ol>
    }
}

fn pct(p: f64) -> String {
    format!("{:.1} %", p * 100.0)
}

/// A reader's decision on one AI finding, and the form to make or change it.
#[component]
fn ReviewCell(
    case_id: Uuid,
    finding: FindingDto,
    reader: bool,
    action: ServerAction<crate::review::ReviewFinding>,
) -> impl IntoView {
    let current = finding.review.clone().map(|r| {
        let what = match r.decision.as_str() {
            "accepted" => "Accepted".to_owned(),
            "rejected" => format!("Rejected: {}", r.reason.clone().unwrap_or_default()),
            _ => format!(
                "Edited: {} {}",
                r.label,
                if r.present { "present" } else { "absent" }
            ),
        };
        view! {
            <span class=format!("badge review-{}", r.decision)>{what}</span>
            <div class="muted small">{r.reviewer.clone()}</div>
        }
    });
    view! {
        {current}
        {reader.then(|| view! {
            <details class="review">
                <summary>{if finding.review.is_some() { "Change" } else { "Review" }}</summary>
                <ActionForm action attr:class="stack">
                    <crate::ui::CsrfField/>
                    <input type="hidden" name="case_id" value=case_id.to_string()/>
                    <input type="hidden" name="finding_id" value=finding.id.to_string()/>
                    <select name="decision">
                        <option value="accept">"Accept"</option>
                        <option value="reject">"Reject"</option>
                        <option value="edit">"Edit"</option>
                    </select>
                    <input name="reason" placeholder="Reason (required to reject)" maxlength="2000"/>
                    <input name="label" placeholder=format!("Label (edit; now {})", finding.label) maxlength="64"/>
                    <select name="present">
                        <option value="present" selected=finding.positive>"present"</option>
                        <option value="absent" selected=!finding.positive>"absent"</option>
                    </select>
                    <button type="submit">"Record"</button>
                    <crate::ui::FieldErr value=action.value() name="reason"/>
                    <crate::ui::FieldErr value=action.value() name="label"/>
                    <crate::ui::FormError value=action.value()/>
                </ActionForm>
            </details>
        })}
    }
}

/// The case page's analysis: each study's progress, live, and the models'
/// findings, labelled as suggestions with the model and its version.
#[component]
pub fn AnalysisPanel(case_id: Uuid) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    live(format!("/api/v1/cases/{case_id}/events"), tick);
    let jobs = Resource::new(move || tick.get(), move |_| case_jobs(case_id.to_string()));
    let review = ServerAction::<crate::review::ReviewFinding>::new();
    let add = ServerAction::<crate::review::AddFinding>::new();
    let findings = Resource::new(
        move || (tick.get(), review.version().get()),
        move |_| case_findings(case_id.to_string()),
    );
    let reviews = Resource::new(
        move || (tick.get(), add.version().get()),
        move |_| crate::review::case_reviews(case_id.to_string()),
    );
    let session = expect_context::<crate::ui::SessionResource>();
    let reader = move || {
        session
            .get()
            .and_then(|r| r.ok())
            .and_then(|s| s.user)
            .is_some_and(|u| u.role == crate::domain::Role::Radiologist)
    };
    view! {
        <section class="card" id="analysis">
            <h2>"AI analysis"</h2>
            <p class="disclaimer">"AI output is a suggestion for a qualified reader, never a diagnosis."</p>
            <Transition fallback=|| view! { <p>"Loading analysis…"</p> }>
                {move || jobs.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="muted">"No analysis yet: upload images to start one."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="table jobs">
                            <thead><tr><th>"Study"</th><th>"State"</th><th>"Progress"</th><th>"Details"</th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|j| view! {
                                    <tr data-job=j.id.to_string() data-state=j.state.clone()>
                                        <td>{study_label(j.modality.as_deref(), j.description.as_deref())}</td>
                                        <td>{state_badge(&j.state)}</td>
                                        <td><Stages stage=j.stage.clone() state=j.state.clone()/></td>
                                        <td>
                                            {j.error.clone().map(|e| view! { <span class="error">{format!("Failed while {}: {e}", j.stage)}</span> })}
                                            {j.note.clone().map(|n| view! { <span class="muted">{n}</span> })}
                                            {j.batch_id.map(|b| view! { <a class="batch-link" href=format!("/batches/{b}")>"batch"</a> })}
                                        </td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                })}
            </Transition>
            <Transition fallback=|| ()>
                {move || findings.get().and_then(|r| r.ok()).filter(|f| !f.is_empty()).map(|list| view! {
                    <h3>"Findings (AI suggestions)"</h3>
                    <table class="table findings">
                        <thead><tr><th>"Finding"</th><th>"Probability"</th><th>"Threshold"</th><th>"Suggests"</th><th>"Urgency"</th><th>"Model"</th><th>"Heatmap"</th><th>"Reader"</th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|f| view! {
                                <tr class:positive=f.positive data-finding=f.id.to_string()>
                                    <td>{f.label.clone()}{f.volume_ml.map(|v| format!(" ({v:.1} mL)"))}</td>
                                    <td>{pct(f.probability)}</td>
                                    <td>{pct(f.threshold)}</td>
                                    <td>{if f.positive { "present" } else { "not suggested" }}</td>
                                    <td><span class=format!("badge urgency-{}", f.urgency)>{f.urgency.clone()}</span></td>
                                    <td>{f.model.clone()}" "<span class="mono">{f.model_version.clone()}</span>
                                        <div class="muted small">{f.intended_use.clone()}</div></td>
                                    <td>{f.heatmap_url.clone().map(|u| view! {
                                        <a href=u.clone() target="_blank"><img class="heatmap" src=u.clone() alt=format!("Grad-CAM heatmap for {}", f.label)/></a>
                                    })}</td>
                                    <td><ReviewCell case_id finding=f.clone() reader=reader() action=review/></td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                })}
            </Transition>
            <Transition fallback=|| ()>
                {move || reviews.get().and_then(|r| r.ok()).map(|list| {
                    let added: Vec<_> = list.into_iter().filter(|r| r.decision == "added").collect();
                    view! {
                        {(!added.is_empty()).then(|| view! {
                            <h3>"Findings added by readers"</h3>
                            <ul class="added-findings">
                                {added.into_iter().map(|r| view! {
                                    <li>{r.label.clone()}{r.location.clone().map(|l| format!(" ({l})"))}
                                        <span class="muted small">" · "{r.reviewer.clone()}</span></li>
                                }).collect_view()}
                            </ul>
                        })}
                        {reader().then(|| view! {
                            <ActionForm action=add attr:class="inline add-finding">
                                <crate::ui::CsrfField/>
                                <input type="hidden" name="case_id" value=case_id.to_string()/>
                                <input name="label" placeholder="Finding the models missed" maxlength="64" required/>
                                <input name="location" placeholder="Location (optional)" maxlength="200"/>
                                <button type="submit">"Add finding"</button>
                                <crate::ui::FieldErr value=add.value() name="label"/>
                                <crate::ui::FormError value=add.value()/>
                            </ActionForm>
                        })}
                    }
                })}
            </Transition>
            <crate::report::ReportPanel case_id tick/>
        </section>
    }
}

/// A batch: every study's state, the refused files, pace, cancel and retry.
#[component]
pub fn BatchPage() -> impl IntoView {
    use crate::ui::{CsrfField, Problem};
    use leptos_router::hooks::use_params_map;
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let tick = RwSignal::new(0u32);
    let cancel = ServerAction::<CancelBatch>::new();
    let retry = ServerAction::<RetryBatch>::new();
    Effect::new(move |_| {
        let raw = id.get();
        if Uuid::parse_str(&raw).is_ok() {
            live(format!("/api/v1/batches/{raw}/events"), tick);
        }
    });
    let batch = Resource::new(
        move || {
            (
                id.get(),
                tick.get(),
                cancel.version().get(),
                retry.version().get(),
            )
        },
        |(id, _, _, _)| get_batch(id),
    );
    view! {
        <Suspense fallback=|| view! { <p>"Loading batch…"</p> }>
            {move || batch.get().map(|r| match r {
                Err(e) => view! { <Problem error=e/> }.into_any(),
                Ok(b) => {
                    let c = b.counts.clone();
                    let total = b.jobs.len();
                    view! {
                        <section class="card">
                            <div class="row spread">
                                <h1>"Batch "<span class="mono small">{b.id.to_string()}</span></h1>
                                <div class="row">
                                    <a class="button" href=format!("/cases/{}", b.case_id)>"Back to the case"</a>
                                    {(!c.done()).then(|| view! {
                                        <ActionForm action=cancel attr:class="inline">
                                            <CsrfField/>
                                            <input type="hidden" name="id" value=b.id.to_string()/>
                                            <button type="submit">"Cancel batch"</button>
                                        </ActionForm>
                                    })}
                                    {(c.failed + c.cancelled > 0).then(|| view! {
                                        <ActionForm action=retry attr:class="inline">
                                            <CsrfField/>
                                            <input type="hidden" name="id" value=b.id.to_string()/>
                                            <button type="submit">"Retry failed"</button>
                                        </ActionForm>
                                    })}
                                </div>
                            </div>
                            <dl class="facts">
                                <dt>"Source"</dt><dd>{b.source.clone()}" · "{b.files}" file(s) · "{crate::ui::when(&b.created_at)}</dd>
                                <dt>"Studies"</dt><dd>{format!("{} completed, {} running, {} queued, {} failed, {} cancelled of {total}", c.completed, c.running, c.queued, c.failed, c.cancelled)}</dd>
                                <dt>"Refused files"</dt><dd>{c.rejected}</dd>
                                <dt>"Pace"</dt><dd>{b.per_minute.map(|p| format!("{p:.1} studies per minute")).unwrap_or_else(|| "not measured yet".into())}
                                    {b.eta_seconds.map(|s| format!(" · about {} left", human_secs(s)))}</dd>
                            </dl>
                            {b.cancelled.then(|| view! { <p class="muted">"This batch was cancelled; finished studies keep their results."</p> })}
                            <table class="table jobs">
                                <thead><tr><th>"Study"</th><th>"State"</th><th>"Progress"</th><th>"Details"</th></tr></thead>
                                <tbody>
                                    {b.jobs.clone().into_iter().map(|j| view! {
                                        <tr data-state=j.state.clone()>
                                            <td>{study_label(j.modality.as_deref(), j.description.as_deref())}</td>
                                            <td>{state_badge(&j.state)}</td>
                                            <td><Stages stage=j.stage.clone() state=j.state.clone()/></td>
                                            <td>{j.error.clone().map(|e| view! { <span class="error">{format!("Failed while {}: {e}", j.stage)}</span> })}
                                                {j.note.clone().map(|n| view! { <span class="muted">{n}</span> })}
                                                {j.duration_ms.map(|ms| format!(" {:.1} s", ms as f64 / 1000.0))}</td>
                                        </tr>
                                    }).collect_view()}
                                    {b.rejected.clone().into_iter().map(|r| view! {
                                        <tr data-state="refused">
                                            <td class="mono">{r.file.clone()}</td>
                                            <td>{state_badge("refused")}</td>
                                            <td></td>
                                            <td class="error">{r.reason.clone()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </section>
                    }.into_any()
                }
            })}
        </Suspense>
    }
}

fn human_secs(s: i64) -> String {
    match s {
        s if s < 90 => format!("{s} s"),
        s if s < 5400 => format!("{} min", (s + 30) / 60),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}
