use sea_orm::entity::prelude::*;

/// A chat message on a case.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    /// Increasing: clients resume after the last id they saw.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: Uuid,
    pub case_id: Uuid,
    pub author_id: Uuid,
    /// As typed; rendered escaped.
    pub body: String,
    pub finding_id: Option<Uuid>,
    pub instance_id: Option<Uuid>,
    pub frame: Option<i32>,
    /// JSON array of the mentioned users' ids.
    pub mentions: String,
    pub created_at: DateTimeUtc,
    pub edited_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
