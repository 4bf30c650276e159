use sea_orm::entity::prelude::*;

/// A study received over DICOM and the case it went into. The key is a
/// SHA-256 of the Study Instance UID as sent (before de-identification
/// remaps it), so a study sent again, or in parts, updates the same case
/// without MedVision keeping the original UID.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "received_studies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub study_key: String,
    pub case_id: Uuid,
    /// Calling AE title of the last sender.
    pub origin: String,
    pub instances: i32,
    pub handovers: i32,
    pub first_at: DateTimeUtc,
    pub last_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
