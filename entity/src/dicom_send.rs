use sea_orm::entity::prelude::*;

/// One case's results for one destination: `queued`, `sending`, `sent`
/// or `failed` (attempts exhausted), with the last error.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "dicom_sends")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub case_id: Uuid,
    pub node_id: Uuid,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub requested_by: Uuid,
    pub created_at: DateTimeUtc,
    pub next_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
