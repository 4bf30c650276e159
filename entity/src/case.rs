use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub owner_id: Uuid,
    pub patient_ref: String,
    pub age: Option<i32>,
    pub sex: String,
    pub modality: String,
    pub body_part: String,
    /// The urgency a person set.
    pub urgency: String,
    /// The higher of the human and the AI urgency (0 routine, 1 priority,
    /// 2 urgent, 3 stat): the worklist sorts by it in SQL.
    pub urgency_rank: i16,
    /// The highest urgency of the models' findings, once any model ran.
    pub ai_urgency: Option<String>,
    pub history: String,
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub closed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id"
    )]
    Organization,
    #[sea_orm(has_many = "super::case_member::Entity")]
    CaseMember,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::OwnerId",
        to = "super::user::Column::Id"
    )]
    Owner,
}

/// The case's owner, so lists fetch owner names in the same query.
impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Owner.def()
    }
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl Related<super::case_member::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CaseMember.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
