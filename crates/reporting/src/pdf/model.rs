//! What a report PDF shows: plain data, built by the server from the case, its
//! studies, the AI findings with their human decisions, the report text and the
//! signature. Serde-serialisable (PNG bytes travel as base64 strings) so the same
//! value can be stored, sent to a worker or snapshotted with a signed report.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A whole radiology report, ready to render with
/// [`render_report_pdf`](super::render_report_pdf).
///
/// Every optional part (studies, key images, findings, empty report sections,
/// the plain-language explanation, references, models, addenda) is simply left out
/// of the PDF when it is empty or `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportDocument {
    /// The organisation whose header stands on every page.
    pub organisation: Organisation,
    /// The patient's pseudonym (never real PHI: ingest de-identifies). Any Unicode.
    pub patient_pseudonym: String,
    /// The case title, e.g. "Head CT — suspected haemorrhage".
    pub case_title: String,
    /// The case's reference (its id or accession) shown beside the title.
    #[serde(default)]
    pub case_reference: Option<String>,
    /// The studies of the case, in the order to list them.
    #[serde(default)]
    pub studies: Vec<Study>,
    /// Key images with their overlays, in the order to show them.
    #[serde(default)]
    pub key_images: Vec<KeyImage>,
    /// AI findings (and findings added by a radiologist) with their decisions.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// The report text.
    #[serde(default)]
    pub sections: ReportSections,
    /// The explanation in plain language for the patient or referrer.
    #[serde(default)]
    pub plain_language: Option<String>,
    /// Numbered references; citations in the text (`[PMID:123]`,
    /// `[GL:fleischner-2017]`) that match a reference's `id` are printed as its
    /// number, `[n]`.
    #[serde(default)]
    pub references: Vec<Reference>,
    /// The model versions that produced the findings, with their intended use.
    #[serde(default)]
    pub models: Vec<ModelInfo>,
    /// `None` while the report is a draft: every page then carries a DRAFT watermark.
    #[serde(default)]
    pub signature: Option<Signature>,
    /// Addenda written after signing, oldest first.
    #[serde(default)]
    pub addenda: Vec<Addendum>,
    /// When this PDF was produced (printed in the footer of the first page).
    pub generated_at: DateTime<Utc>,
}

/// The organisation header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organisation {
    /// E.g. "St Elsewhere University Hospital — Department of Radiology".
    pub name: String,
    /// Postal address, telephone, etc.; one entry a line.
    #[serde(default)]
    pub address_lines: Vec<String>,
}

/// One imaging study of the case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Study {
    /// DICOM modality code or name, e.g. "CT", "MR", "CR".
    pub modality: String,
    /// E.g. "Head", "Chest".
    pub body_part: String,
    /// The study date.
    #[serde(default)]
    pub date: Option<NaiveDate>,
    /// The study description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A key image: the image, optionally its explanation overlay, a caption and a legend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyImage {
    /// The caption under the image, e.g. "Axial slice 23 of 40, brain window".
    pub caption: String,
    /// The image as PNG (8 or 16 bit, grey or colour).
    #[serde(with = "base64_bytes")]
    pub image_png: Vec<u8>,
    /// The Grad-CAM heatmap or segmentation mask already blended over the image, as
    /// PNG; shown beside the image.
    #[serde(default, with = "base64_bytes_opt")]
    pub overlay_png: Option<Vec<u8>>,
    /// The legend for the overlay, drawn as vector shapes under it.
    #[serde(default)]
    pub legend: Option<Legend>,
}

/// How to read an overlay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Legend {
    /// A continuous colour bar (Grad-CAM heatmaps).
    ColourBar {
        /// E.g. "Grad-CAM activation".
        title: String,
        /// The colour map the overlay used.
        colour_map: ColourMap,
        /// The label at the low end, e.g. "0.0" or "low".
        min_label: String,
        /// The label at the high end.
        max_label: String,
    },
    /// Discrete classes (segmentation masks).
    Classes {
        /// The classes with their colours.
        entries: Vec<LegendEntry>,
    },
}

/// One class of a mask legend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegendEntry {
    /// E.g. "Enhancing tumour".
    pub label: String,
    /// The class colour, sRGB.
    pub rgb: [u8; 3],
}

/// Colour maps an overlay can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColourMap {
    /// Blue → cyan → yellow → red (matplotlib / OpenCV "jet").
    Jet,
    /// Black → purple → orange → yellow (matplotlib "inferno").
    Inferno,
    /// Purple → teal → yellow (matplotlib "viridis").
    Viridis,
    /// Black → red → yellow → white.
    Hot,
}

/// One finding row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// E.g. "Intraparenchymal haemorrhage".
    pub label: String,
    /// Calibrated probability, 0..=1.
    pub probability: f64,
    /// The decision threshold in force, 0..=1.
    pub threshold: f64,
    /// Whether the finding is positive (after any human edit).
    pub positive: bool,
    /// Triage urgency.
    pub urgency: Urgency,
    /// What the radiologist decided.
    pub decision: Decision,
    /// Who decided (absent while pending).
    #[serde(default)]
    pub decided_by: Option<String>,
    /// The model name and version that produced it (absent for a finding a
    /// radiologist added).
    #[serde(default)]
    pub model: Option<String>,
}

/// Triage urgency (the same scale as the inference crate's triage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Routine,
    Priority,
    Urgent,
    Stat,
}

impl Urgency {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Urgency::Routine => "Routine",
            Urgency::Priority => "Priority",
            Urgency::Urgent => "Urgent",
            Urgency::Stat => "STAT",
        }
    }
}

/// The human decision on a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accepted,
    Rejected,
    Edited,
    /// Added by a radiologist (the AI missed it).
    Added,
    Pending,
}

impl Decision {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Decision::Accepted => "Accepted",
            Decision::Rejected => "Rejected",
            Decision::Edited => "Edited",
            Decision::Added => "Added",
            Decision::Pending => "Pending review",
        }
    }
}

/// The report's text sections; empty ones are left out. Text may carry inline
/// citations such as `[PMID:123]` or `[GL:fleischner-2017]`; blank lines separate
/// paragraphs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportSections {
    pub clinical_information: String,
    pub technique: String,
    pub findings: String,
    pub impression: String,
    pub recommendations: String,
}

/// A numbered reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// The citation key used in the text: `PMID:<digits>` for PubMed, `GL:<slug>`
    /// for a guideline.
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub year: Option<i32>,
    /// Journal or issuing body, e.g. "Radiology" or "Fleischner Society".
    pub source: String,
    /// Link; for a `PMID:` reference the PubMed address is used whatever this says.
    #[serde(default)]
    pub url: Option<String>,
}

impl Reference {
    /// The PubMed id, when this is a `PMID:` reference with a numeric id.
    pub fn pmid(&self) -> Option<&str> {
        let pmid = self.id.strip_prefix("PMID:")?.trim();
        (!pmid.is_empty() && pmid.bytes().all(|b| b.is_ascii_digit())).then_some(pmid)
    }

    /// The link printed and made clickable: `https://pubmed.ncbi.nlm.nih.gov/<pmid>/`
    /// for PubMed references, else `url`.
    pub fn link(&self) -> Option<String> {
        match self.pmid() {
            Some(pmid) => Some(format!("https://pubmed.ncbi.nlm.nih.gov/{pmid}/")),
            None => self.url.clone().filter(|u| !u.trim().is_empty()),
        }
    }
}

/// A model version that contributed findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    /// The pack's intended-use statement.
    pub intended_use: String,
    /// A demonstration pack (trained on synthetic phantoms): the PDF says it is not
    /// for clinical use.
    #[serde(default)]
    pub demo: bool,
}

/// The signature of a final report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub signed_by: String,
    /// E.g. "Consultant radiologist".
    pub role: String,
    pub signed_at: DateTime<Utc>,
}

/// An addendum to a signed report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Addendum {
    pub author: String,
    pub written_at: DateTime<Utc>,
    pub text: String,
}

mod base64_bytes {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

mod base64_bytes_opt {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmid_references_link_to_pubmed() {
        let r = Reference {
            id: "PMID:31234567".into(),
            title: "t".into(),
            year: Some(2019),
            source: "Radiology".into(),
            url: Some("https://example.org/other".into()),
        };
        assert_eq!(
            r.link().as_deref(),
            Some("https://pubmed.ncbi.nlm.nih.gov/31234567/")
        );
        let g = Reference {
            id: "GL:fleischner-2017".into(),
            url: Some("https://example.org/gl".into()),
            ..r.clone()
        };
        assert_eq!(g.pmid(), None);
        assert_eq!(g.link().as_deref(), Some("https://example.org/gl"));
        let bad = Reference {
            id: "PMID:12a".into(),
            url: None,
            ..r
        };
        assert_eq!(bad.link(), None);
    }

    #[test]
    fn key_images_serialise_png_as_base64() {
        let k = KeyImage {
            caption: "c".into(),
            image_png: vec![1, 2, 3],
            overlay_png: Some(vec![4]),
            legend: Some(Legend::ColourBar {
                title: "Grad-CAM".into(),
                colour_map: ColourMap::Jet,
                min_label: "0".into(),
                max_label: "1".into(),
            }),
        };
        let json = serde_json::to_string(&k).expect("serialise");
        assert!(json.contains("\"AQID\""), "{json}");
        let back: KeyImage = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, k);
    }
}
