use sea_orm::entity::prelude::*;

/// A finished stage of a job; its presence is what makes re-running the
/// stage a no-op.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_stages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub stage: String,
    /// The stage's output, JSON.
    pub output: String,
    /// Wall time of the stage in ms.
    pub ms: i64,
    pub worker: String,
    pub finished_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
