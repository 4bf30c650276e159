use sea_orm::entity::prelude::*;

/// One upload or import: the files it brought and the studies' jobs.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "batches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub case_id: Uuid,
    pub created_by: Uuid,
    /// `upload`, `import` or `dicom`.
    pub source: String,
    /// Files received, accepted or not.
    pub files: i32,
    /// `[{"file", "reason"}]` of the files ingest refused, as JSON.
    pub rejected: String,
    pub cancelled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
