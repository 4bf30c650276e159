use sea_orm::entity::prelude::*;

/// One model output for one study: a classifier label or a segmented region.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "findings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub case_id: Uuid,
    pub study_id: Uuid,
    pub job_id: Uuid,
    /// `classification` or `segmentation`.
    pub kind: String,
    pub label: String,
    /// Calibrated probability (for a region: the fraction of the study's
    /// voxels the model is confident about is not a probability, so 1.0
    /// when present and 0.0 when absent).
    pub probability: f64,
    pub raw_probability: Option<f64>,
    pub threshold: f64,
    pub positive: bool,
    pub urgency: String,
    pub model: String,
    pub model_version: String,
    pub intended_use: String,
    pub volume_ml: Option<f64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
