use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "series")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub case_id: Uuid,
    pub study_id: Uuid,
    /// De-identified Series Instance UID.
    pub series_uid: String,
    pub number: Option<i32>,
    pub modality: String,
    pub body_part: Option<String>,
    pub description: Option<String>,
    /// `dicom`, `nifti` or `raster`.
    pub kind: String,
    pub rows: i32,
    pub columns: i32,
    pub transfer_syntax: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::study::Entity",
        from = "Column::StudyId",
        to = "super::study::Column::Id"
    )]
    Study,
    #[sea_orm(has_many = "super::instance::Entity")]
    Instance,
}

impl Related<super::study::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Study.def()
    }
}

impl Related<super::instance::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Instance.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
