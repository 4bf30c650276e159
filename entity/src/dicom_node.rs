use sea_orm::entity::prelude::*;

/// A remote DICOM application entity an organisation trusts: a `source`
/// (modality or PACS allowed to send to MedVision's SCP, identified by its
/// calling AE title) or a `destination` (a PACS MedVision sends results to).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "dicom_nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub ae_title: String,
    /// `source` or `destination`.
    pub kind: String,
    pub host: String,
    pub port: i32,
    /// Cases opened from this source are owned by this user; sends to this
    /// destination are recorded in the audit log under them when automatic.
    pub owner_id: Uuid,
    /// Destinations only: send the SR when a report is signed.
    pub send_on_sign: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
