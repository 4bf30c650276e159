use sea_orm::entity::prelude::*;

/// A case's report: the latest AI draft until a person signs it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub case_id: Uuid,
    /// `draft` or `signed`.
    pub status: String,
    /// `llm` or `builtin`.
    pub writer: String,
    /// The drafted report as JSON (sections, citations, verification,
    /// explanation, model and prompt versions, fallback).
    pub body: String,
    /// The retrieved passages the draft could cite, as JSON (the case
    /// page's Literature panel).
    pub sources: String,
    /// The job whose drafting stage wrote it last.
    pub job_id: Option<Uuid>,
    /// 1 for the first draft, +1 per redraft.
    pub revision: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub signed_by: Option<Uuid>,
    pub signed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
