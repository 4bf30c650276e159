use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "instances")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub case_id: Uuid,
    pub study_id: Uuid,
    pub series_id: Uuid,
    /// De-identified SOP Instance UID.
    pub sop_uid: String,
    /// `dicom`, `nifti` or `raster`.
    pub kind: String,
    pub instance_number: Option<i32>,
    /// Position along the series' slice normal, for sorting a volume.
    pub slice_location: Option<f64>,
    pub frames: i32,
    pub rows: i32,
    pub columns: i32,
    /// The stored (de-identified) bytes: content address in the blob store.
    pub blob_sha256: String,
    pub bytes: i64,
    /// `imaging::InstanceInfo` as JSON.
    pub info: String,
    /// The de-identified header in the DICOM JSON model (PS3.18 F.2).
    pub header: String,
    /// What de-identification changed, `[imaging::DeidChange]` as JSON.
    pub deid: String,
    pub burned_in: bool,
    /// The uploaded file's name inside its upload (never a patient name:
    /// shown to the uploader only, in the metadata panel).
    pub source_name: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::series::Entity",
        from = "Column::SeriesId",
        to = "super::series::Column::Id"
    )]
    Series,
}

impl Related<super::series::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Series.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
