use sea_orm::entity::prelude::*;

/// A file the pipeline produced (heatmap overlay, mask), in the blob store.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "artefacts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub case_id: Uuid,
    pub study_id: Uuid,
    pub job_id: Uuid,
    /// `heatmap` or `mask`.
    pub kind: String,
    /// The finding label it belongs to.
    pub label: String,
    pub media_type: String,
    pub blob_sha256: String,
    pub bytes: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
