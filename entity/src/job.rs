use sea_orm::entity::prelude::*;

/// A durable unit of pipeline work. `state` is the queue's view
/// (`queued|running|completed|failed|cancelled`), `stage` the pipeline's
/// (the stage running, next to run, or where it failed).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub case_id: Uuid,
    pub study_id: Option<Uuid>,
    pub batch_id: Option<Uuid>,
    /// `analyse`, or `noop` (measures the queue itself).
    pub kind: String,
    pub state: String,
    pub stage: String,
    pub attempts: i32,
    pub max_attempts: i32,
    /// Epoch ms before which the job is not claimed (retry backoff).
    pub run_after: i64,
    /// Worker id holding the lease while running.
    pub lease_owner: Option<String>,
    /// Epoch ms the lease expires unless the heartbeat extends it.
    pub lease_until: Option<i64>,
    /// Human-readable reason of the last failure.
    pub last_error: Option<String>,
    /// What the user should know about a completed job ("no model for …").
    pub note: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
