use sea_orm::entity::prelude::*;

/// A reader's decision on an AI finding (`finding_id` set) or a finding
/// the reader added (`finding_id` empty). Inserted, never updated: the
/// latest row per finding is the current decision.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "finding_reviews")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub case_id: Uuid,
    pub finding_id: Option<Uuid>,
    pub study_id: Option<Uuid>,
    /// `accepted`, `rejected`, `edited` or `added`.
    pub decision: String,
    /// The label as the reader confirms it (the AI's, or their edit).
    pub label: String,
    /// The reader's call: is the finding present? The ground truth for
    /// model performance.
    pub present: bool,
    pub location: Option<String>,
    pub reason: Option<String>,
    pub reviewer_id: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
