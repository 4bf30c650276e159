//! Domain inputs of drafting. The server maps its database rows into these.

use serde::{Deserialize, Serialize};

/// Patient sex as recorded on the case (DICOM PatientSex M / F / O).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Female,
    Male,
    Other,
}

impl Sex {
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
            Sex::Other => "other",
        }
    }
}

/// What a model pack says it is for (`intended_use` in `model.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelUse {
    pub model: String,
    pub model_version: String,
    pub intended_use: String,
}

impl ModelUse {
    /// Demo packs say so in their intended use ("demonstration model ... not for clinical use").
    pub fn is_demo(&self) -> bool {
        let t = self.intended_use.to_lowercase();
        t.contains("demonstration")
            || t.contains("synthetic")
            || t.contains("not for clinical use")
            || t.contains("demo ")
    }
}

/// The case as the report needs it: no identifiers, only what a request form carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseContext {
    pub age: Option<u16>,
    pub sex: Option<Sex>,
    /// Clinical question / history from the referring doctor.
    pub history: Option<String>,
    /// DICOM modality code or name ("CR", "DX", "CT", "MR").
    pub modality: String,
    /// Body part examined ("chest", "head", "brain").
    pub body_part: String,
    /// Intended use of every model that produced a finding on this case.
    #[serde(default)]
    pub models: Vec<ModelUse>,
}

impl CaseContext {
    /// True when any model that contributed is a demonstration model.
    pub fn uses_demo_model(&self) -> bool {
        self.models.iter().any(ModelUse::is_demo)
    }
}

/// One calibrated model output for one label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Model label ("Effusion", "subdural", "enhancing tumour").
    pub label: String,
    /// Calibrated probability in [0, 1].
    pub probability: f32,
    /// Operating threshold of the model pack for this label.
    pub threshold: f32,
    /// `probability >= threshold`, as decided by the pipeline.
    pub positive: bool,
    /// Triage urgency ("critical", "urgent", "routine").
    pub urgency: String,
    pub model: String,
    pub model_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_id: Option<String>,
}

/// Where a retrieved passage comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Literature,
    Guideline,
    OrgReport,
}

/// A passage retrieval returned for this case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// "PMID:12345678" or "GL:fleischner-2017-solid".
    pub id: String,
    pub source: SourceKind,
    pub title: String,
    pub year: Option<u16>,
    pub url: Option<String>,
    pub text: String,
}

/// A PNG image for a vision-capable model.
#[derive(Debug, Clone, PartialEq)]
pub struct PngImage {
    /// What the image is ("key image", "Grad-CAM overlay for Effusion").
    pub caption: String,
    pub png: Vec<u8>,
}

/// The key image and its Grad-CAM overlay, sent to models that accept images.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyImages {
    pub key_image: PngImage,
    pub overlay: Option<PngImage>,
}
