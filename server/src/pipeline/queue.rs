//! The durable job queue in the application database.
//!
//! Why not apalis: its SQL storages bring their own tables and migration
//! history, and the case page, the batch page and the admin's dead-letter
//! list read the same rows the workers lease; one table under sea-orm's
//! migrations, on both databases, keeps that a plain query.
//!
//! Claiming is one `UPDATE … RETURNING` statement: on PostgreSQL its
//! sub-select takes `FOR UPDATE SKIP LOCKED`, so any number of workers claim
//! disjoint jobs without waiting on each other; on SQLite the statement runs
//! under the database's single writer lock. A claim is a lease: the worker
//! extends it with heartbeats, and a job whose lease ran out (its worker
//! died) is claimed again. Every stage commits its side effects in one
//! transaction with a guarded update of the job (`lease_owner` still us,
//! state still running) and its stage record, so a worker that lost its
//! lease can never commit, and a stage that committed is never run again.

use app::pipeline::ssr::now_ms;
use app::pipeline::{JobState, Stage};
use entity::{job, job_stage};
use rand::Rng;
use sea_orm::{ColumnTrait, Value};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, Statement, TransactionTrait,
};
use std::time::Duration;
use uuid::Uuid;

/// How failures are retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub multiplier: f64,
    pub cap: Duration,
}

impl RetryPolicy {
    /// Exponential backoff with "full jitter" (AWS architecture blog): a
    /// random delay between half and all of `initial * multiplier^(n-1)`,
    /// capped, so retries of many jobs failing together spread out.
    pub fn delay(&self, attempt: i32) -> Duration {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(attempt.saturating_sub(1).max(0));
        let base = (self.initial.as_secs_f64() * exp).min(self.cap.as_secs_f64());
        let jittered = base * rand::thread_rng().gen_range(0.5..=1.0);
        Duration::from_secs_f64(jittered)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the job's lease was lost (cancelled, or taken over by another worker)")]
    LeaseLost,
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn pg(db: &impl ConnectionTrait) -> bool {
    db.get_database_backend() == DatabaseBackend::Postgres
}

/// `$1, $2, …` on PostgreSQL, `?` on SQLite.
fn sql(db: &impl ConnectionTrait, text: &str, values: Vec<Value>) -> Statement {
    let text = if pg(db) {
        let mut out = String::with_capacity(text.len() + 8);
        let mut n = 0;
        for c in text.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        out
    } else {
        text.to_owned()
    };
    Statement::from_sql_and_values(db.get_database_backend(), text, values)
}

/// Claims up to `n` runnable jobs for `worker`: queued ones whose backoff
/// has passed, and running ones whose lease expired. The attempt counter
/// counts claims, so a job whose worker keeps dying is given up eventually.
pub async fn claim(
    db: &DatabaseConnection,
    worker: &str,
    n: usize,
    lease: Duration,
) -> Result<Vec<job::Model>, QueueError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let until = now + lease.as_millis() as i64;
    let lock = if pg(db) {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let text = format!(
        "UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?, \
         attempts = attempts + 1, updated_ms = ?, started_ms = COALESCE(started_ms, ?), \
         stage = CASE WHEN stage = 'uploaded' THEN 'decoding' ELSE stage END \
         WHERE id IN (SELECT id FROM jobs WHERE (state = 'queued' AND run_after <= ?) \
         OR (state = 'running' AND lease_until < ?) ORDER BY run_after, created_at LIMIT ?{lock}) \
         RETURNING id"
    );
    let rows = db
        .query_all(sql(
            db,
            &text,
            vec![
                worker.into(),
                until.into(),
                now.into(),
                now.into(),
                now.into(),
                now.into(),
                (n as i64).into(),
            ],
        ))
        .await?;
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| r.try_get_by_index::<Uuid>(0))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(job::Entity::find()
        .filter(job::Column::Id.is_in(ids))
        .filter(job::Column::LeaseOwner.eq(worker))
        .all(db)
        .await?)
}

/// Extends the lease; false when it is no longer ours.
pub async fn heartbeat(
    db: &DatabaseConnection,
    job: Uuid,
    worker: &str,
    lease: Duration,
) -> Result<bool, QueueError> {
    let until = now_ms() + lease.as_millis() as i64;
    let r = db
        .execute(sql(
            db,
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
            vec![until.into(), job.into(), worker.into()],
        ))
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The recorded output of a finished stage, if it finished.
pub async fn stage_output(
    db: &impl ConnectionTrait,
    job: Uuid,
    stage: Stage,
) -> Result<Option<serde_json::Value>, QueueError> {
    Ok(
        job_stage::Entity::find_by_id((job, stage.as_str().to_owned()))
            .one(db)
            .await?
            .map(|s| serde_json::from_str(&s.output).unwrap_or(serde_json::Value::Null)),
    )
}

/// A write transaction; on SQLite it takes the write lock up front (see
/// `app::ssr::write_txn`).
pub async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, QueueError> {
    let txn = db.begin().await?;
    if !pg(&txn) {
        txn.execute_unprepared("UPDATE jobs SET attempts = attempts WHERE 1 = 0")
            .await?;
    }
    Ok(txn)
}

/// Inside a stage's transaction: records the stage as done and moves the
/// job to `next`, only if the lease is still `worker`'s. Call it first in
/// the transaction; on `LeaseLost` roll back.
#[allow(clippy::too_many_arguments)]
pub async fn finish_stage(
    txn: &DatabaseTransaction,
    job: Uuid,
    worker: &str,
    stage: Stage,
    next: Stage,
    output: &serde_json::Value,
    ms: i64,
    lease: Duration,
    note: Option<&str>,
) -> Result<(), QueueError> {
    let now = now_ms();
    let done = next == Stage::Completed;
    let state = if done {
        JobState::Completed
    } else {
        JobState::Running
    };
    let r = txn
        .execute(sql(
            txn,
            "UPDATE jobs SET stage = ?, state = ?, updated_ms = ?, lease_until = ?, \
             finished_ms = ?, lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END, \
             note = COALESCE(?, note) \
             WHERE id = ? AND lease_owner = ? AND state = 'running'",
            vec![
                next.as_str().into(),
                state.as_str().into(),
                now.into(),
                (now + lease.as_millis() as i64).into(),
                done.then_some(now).into(),
                done.into(),
                note.map(str::to_owned).into(),
                job.into(),
                worker.into(),
            ],
        ))
        .await?;
    if r.rows_affected() != 1 {
        return Err(QueueError::LeaseLost);
    }
    txn.execute(sql(
        txn,
        "INSERT INTO job_stages (job_id, stage, output, ms, worker, finished_at) VALUES (?, ?, ?, ?, ?, ?)",
        vec![
            job.into(),
            stage.as_str().into(),
            output.to_string().into(),
            ms.into(),
            worker.into(),
            app::ssr::now().into(),
        ],
    ))
    .await?;
    notify(txn).await?;
    Ok(())
}

/// Wakes listeners on other processes (PostgreSQL LISTEN/NOTIFY); delivered
/// when the transaction commits.
pub async fn notify(c: &impl ConnectionTrait) -> Result<(), DbErr> {
    if pg(c) {
        c.execute_unprepared("SELECT pg_notify('medvision_jobs', '')")
            .await?;
    }
    Ok(())
}

/// What to do with a failed attempt.
pub enum Failure<'a> {
    /// Worth trying again (I/O, a busy database, an unreachable service).
    Transient(&'a str),
    /// Trying again would fail the same way (a corrupt image).
    Permanent(&'a str),
}

/// Records a failed attempt: queued again after a backoff while attempts
/// remain and the failure is transient, otherwise failed for good (the
/// dead-letter state an admin can re-run). The stage stays where it failed.
pub async fn fail(
    db: &DatabaseConnection,
    job: &job::Model,
    worker: &str,
    failure: Failure<'_>,
    retry: &RetryPolicy,
) -> Result<JobState, QueueError> {
    let now = now_ms();
    let (reason, retry_at) = match failure {
        Failure::Transient(r) if job.attempts < job.max_attempts => {
            (r, Some(now + retry.delay(job.attempts).as_millis() as i64))
        }
        Failure::Transient(r) | Failure::Permanent(r) => (r, None),
    };
    let reason: String = reason.chars().take(2000).collect();
    let (state, run_after, finished) = match retry_at {
        Some(t) => (JobState::Queued, t, None),
        None => (JobState::Failed, now, Some(now)),
    };
    let r = db
        .execute(sql(
            db,
            "UPDATE jobs SET state = ?, run_after = ?, last_error = ?, lease_owner = NULL, \
             lease_until = NULL, updated_ms = ?, finished_ms = ? \
             WHERE id = ? AND lease_owner = ? AND state = 'running'",
            vec![
                state.as_str().into(),
                run_after.into(),
                reason.into(),
                now.into(),
                finished.into(),
                job.id.into(),
                worker.into(),
            ],
        ))
        .await?;
    if r.rows_affected() != 1 {
        return Err(QueueError::LeaseLost);
    }
    notify(db).await?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stops_at_the_cap() {
        let p = RetryPolicy {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            cap: Duration::from_secs(60),
        };
        for attempt in 1..=10 {
            let full = (2f64.powi(attempt - 1)).min(60.0);
            for _ in 0..50 {
                let d = p.delay(attempt).as_secs_f64();
                assert!(
                    d >= full * 0.5 - 1e-9 && d <= full + 1e-9,
                    "attempt {attempt}: {d}"
                );
            }
        }
    }
}
