//! A Comprehensive SR document (PS3.3 A.35.3) of a case's findings and its
//! signed report, so a PACS shows MedVision's result beside the images.
//!
//! Content tree:
//! ```text
//! CONTAINER (LN 18748-4 "Diagnostic Imaging Report")
//!  ├ CONTAINS TEXT (DCM 111001 "Algorithm Name") / (DCM 111003 "Algorithm Version")
//!  ├ CONTAINS CONTAINER (DCM 121070 "Findings")
//!  │   └ CONTAINS TEXT (DCM 121071 "Finding")            one per finding
//!  │        ├ HAS PROPERTIES NUM (99MEDVISION PROB "Calibrated probability")
//!  │        └ HAS PROPERTIES TEXT (99MEDVISION REVIEW "Radiologist decision")
//!  └ CONTAINS TEXT (DCM 121073 "Impression")               the report text
//! ```
//! The source images are referenced by UID in the Current Requested
//! Procedure Evidence Sequence.

use crate::{InteropError, Result};
use dicom_core::value::DataSetSequence;
use dicom_core::{dicom_value, DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use std::path::Path;

pub const COMPREHENSIVE_SR: &str = "1.2.840.10008.5.1.4.1.1.88.33";
const PRIVATE_SCHEME: &str = "99MEDVISION";

/// One source series and the instances in it, as stored.
#[derive(Clone, Debug)]
pub struct SeriesRef {
    pub series_uid: String,
    /// (SOP Class UID, SOP Instance UID).
    pub instances: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct Finding {
    /// "Intraparenchymal haemorrhage".
    pub label: String,
    /// Calibrated probability in [0, 1], when a model gave one.
    pub probability: Option<f64>,
    /// Who said so: "AI suggestion (ich-demo 1.0.0)" or "Radiologist".
    pub source: String,
    /// "accepted", "rejected: reason", "edited", "not reviewed".
    pub decision: String,
}

/// Who signed, and when (DICOM DT, e.g. `20261124093000`).
#[derive(Clone, Debug)]
pub struct Verifier {
    pub name: String,
    pub organisation: String,
    pub datetime: String,
}

#[derive(Clone, Debug)]
pub struct SrDocument {
    pub sop_instance_uid: String,
    pub series_instance_uid: String,
    /// The study the document belongs to (as stored, de-identified).
    pub study_uid: String,
    pub study_date: String,
    pub study_time: String,
    pub study_id: String,
    pub accession: String,
    pub patient_id: String,
    pub patient_name: String,
    pub patient_sex: String,
    pub series: Vec<SeriesRef>,
    pub algorithm: Option<(String, String)>,
    pub findings: Vec<Finding>,
    pub impression: String,
    pub verifier: Option<Verifier>,
    /// DICOM DA and TM of the document's content.
    pub content_date: String,
    pub content_time: String,
    pub institution: String,
}

fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(tags::CODE_VALUE, VR::SH, dicom_value!(Str, value)),
        DataElement::new(
            tags::CODING_SCHEME_DESIGNATOR,
            VR::SH,
            dicom_value!(Str, scheme),
        ),
        DataElement::new(tags::CODE_MEANING, VR::LO, dicom_value!(Str, meaning)),
    ])
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

fn s(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v.to_owned()))
}

/// DICOM text values are bounded and cannot carry every character; the
/// report keeps its full text in MedVision, the SR carries it within UT's
/// limit with control characters other than line breaks dropped.
fn clean(v: &str, max: usize) -> String {
    v.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\r')
        .take(max)
        .collect()
}

fn item(relationship: &str, value_type: &str, concept: InMemDicomObject) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    o.put(s(tags::RELATIONSHIP_TYPE, VR::CS, relationship));
    o.put(s(tags::VALUE_TYPE, VR::CS, value_type));
    o.put(seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![concept]));
    o
}

fn text(relationship: &str, concept: InMemDicomObject, value: &str) -> InMemDicomObject {
    let mut o = item(relationship, "TEXT", concept);
    o.put(s(tags::TEXT_VALUE, VR::UT, &clean(value, 65_000)));
    o
}

fn probability(p: f64) -> InMemDicomObject {
    let mut o = item(
        "HAS PROPERTIES",
        "NUM",
        code("PROB", PRIVATE_SCHEME, "Calibrated probability"),
    );
    let mut mv = InMemDicomObject::new_empty();
    mv.put(s(
        tags::NUMERIC_VALUE,
        VR::DS,
        &format!("{:.4}", p.clamp(0.0, 1.0)),
    ));
    mv.put(seq(
        tags::MEASUREMENT_UNITS_CODE_SEQUENCE,
        vec![code("1", "UCUM", "no units")],
    ));
    o.put(seq(tags::MEASURED_VALUE_SEQUENCE, vec![mv]));
    o
}

impl SrDocument {
    fn check(&self) -> Result<()> {
        for (what, uid) in [
            ("SOP Instance UID", &self.sop_instance_uid),
            ("Series Instance UID", &self.series_instance_uid),
            ("Study Instance UID", &self.study_uid),
        ] {
            if !crate::valid_uid(uid) {
                return Err(InteropError::Invalid(format!("invalid {what}")));
            }
        }
        Ok(())
    }

    /// The document as a data set.
    pub fn to_object(&self) -> Result<InMemDicomObject> {
        self.check()?;
        let mut o = InMemDicomObject::new_empty();
        // SOP Common
        o.put(s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"));
        o.put(s(tags::SOP_CLASS_UID, VR::UI, COMPREHENSIVE_SR));
        o.put(s(tags::SOP_INSTANCE_UID, VR::UI, &self.sop_instance_uid));
        o.put(s(tags::INSTANCE_CREATION_DATE, VR::DA, &self.content_date));
        o.put(s(tags::INSTANCE_CREATION_TIME, VR::TM, &self.content_time));
        let mut scheme = InMemDicomObject::new_empty();
        scheme.put(s(tags::CODING_SCHEME_DESIGNATOR, VR::SH, PRIVATE_SCHEME));
        scheme.put(s(tags::CODING_SCHEME_NAME, VR::ST, "MedVision codes"));
        scheme.put(s(
            tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
            VR::ST,
            "MedVision",
        ));
        o.put(seq(
            tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE,
            vec![scheme],
        ));
        // Patient (type 2: present even when empty)
        o.put(s(
            tags::PATIENT_NAME,
            VR::PN,
            &clean(&self.patient_name, 64),
        ));
        o.put(s(tags::PATIENT_ID, VR::LO, &clean(&self.patient_id, 64)));
        o.put(s(tags::PATIENT_BIRTH_DATE, VR::DA, ""));
        o.put(s(tags::PATIENT_SEX, VR::CS, &self.patient_sex));
        // General Study
        o.put(s(tags::STUDY_INSTANCE_UID, VR::UI, &self.study_uid));
        o.put(s(tags::STUDY_DATE, VR::DA, &self.study_date));
        o.put(s(tags::STUDY_TIME, VR::TM, &self.study_time));
        o.put(s(tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""));
        o.put(s(tags::STUDY_ID, VR::SH, &clean(&self.study_id, 16)));
        o.put(s(
            tags::ACCESSION_NUMBER,
            VR::SH,
            &clean(&self.accession, 16),
        ));
        // SR Document Series
        o.put(s(tags::MODALITY, VR::CS, "SR"));
        o.put(s(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            &self.series_instance_uid,
        ));
        o.put(s(tags::SERIES_NUMBER, VR::IS, "9001"));
        o.put(s(tags::SERIES_DESCRIPTION, VR::LO, "MedVision report"));
        o.put(seq(
            tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
            vec![],
        ));
        // General Equipment
        o.put(s(tags::MANUFACTURER, VR::LO, "MedVision"));
        o.put(s(
            tags::INSTITUTION_NAME,
            VR::LO,
            &clean(&self.institution, 64),
        ));
        o.put(s(
            tags::SOFTWARE_VERSIONS,
            VR::LO,
            env!("CARGO_PKG_VERSION"),
        ));
        // SR Document General
        o.put(s(tags::INSTANCE_NUMBER, VR::IS, "1"));
        o.put(s(tags::CONTENT_DATE, VR::DA, &self.content_date));
        o.put(s(tags::CONTENT_TIME, VR::TM, &self.content_time));
        o.put(s(tags::COMPLETION_FLAG, VR::CS, "COMPLETE"));
        match &self.verifier {
            Some(v) => {
                o.put(s(tags::VERIFICATION_FLAG, VR::CS, "VERIFIED"));
                let mut obs = InMemDicomObject::new_empty();
                obs.put(s(
                    tags::VERIFYING_OBSERVER_NAME,
                    VR::PN,
                    &clean(&v.name, 64),
                ));
                obs.put(seq(
                    tags::VERIFYING_OBSERVER_IDENTIFICATION_CODE_SEQUENCE,
                    vec![],
                ));
                obs.put(s(
                    tags::VERIFYING_ORGANIZATION,
                    VR::LO,
                    &clean(&v.organisation, 64),
                ));
                obs.put(s(tags::VERIFICATION_DATE_TIME, VR::DT, &v.datetime));
                o.put(seq(tags::VERIFYING_OBSERVER_SEQUENCE, vec![obs]));
            }
            None => {
                o.put(s(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"));
            }
        }
        o.put(seq(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]));
        let series: Vec<InMemDicomObject> = self
            .series
            .iter()
            .map(|sr| {
                let refs = sr
                    .instances
                    .iter()
                    .map(|(class, inst)| {
                        InMemDicomObject::from_element_iter([
                            s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, class),
                            s(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, inst),
                        ])
                    })
                    .collect();
                let mut x = InMemDicomObject::new_empty();
                x.put(s(tags::SERIES_INSTANCE_UID, VR::UI, &sr.series_uid));
                x.put(seq(tags::REFERENCED_SOP_SEQUENCE, refs));
                x
            })
            .collect();
        if !series.is_empty() {
            let mut study = InMemDicomObject::new_empty();
            study.put(s(tags::STUDY_INSTANCE_UID, VR::UI, &self.study_uid));
            study.put(seq(tags::REFERENCED_SERIES_SEQUENCE, series));
            o.put(seq(
                tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
                vec![study],
            ));
        }
        // SR Document Content: the root container.
        o.put(s(tags::VALUE_TYPE, VR::CS, "CONTAINER"));
        o.put(seq(
            tags::CONCEPT_NAME_CODE_SEQUENCE,
            vec![code("18748-4", "LN", "Diagnostic Imaging Report")],
        ));
        o.put(s(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"));
        let mut root = Vec::new();
        if let Some((name, version)) = &self.algorithm {
            root.push(text(
                "CONTAINS",
                code("111001", "DCM", "Algorithm Name"),
                name,
            ));
            root.push(text(
                "CONTAINS",
                code("111003", "DCM", "Algorithm Version"),
                version,
            ));
        }
        let findings: Vec<InMemDicomObject> = self
            .findings
            .iter()
            .map(|f| {
                let mut t = text("CONTAINS", code("121071", "DCM", "Finding"), &f.label);
                let mut props = Vec::new();
                if let Some(p) = f.probability {
                    props.push(probability(p));
                }
                props.push(text(
                    "HAS PROPERTIES",
                    code("SOURCE", PRIVATE_SCHEME, "Source of finding"),
                    &f.source,
                ));
                props.push(text(
                    "HAS PROPERTIES",
                    code("REVIEW", PRIVATE_SCHEME, "Radiologist decision"),
                    &f.decision,
                ));
                t.put(seq(tags::CONTENT_SEQUENCE, props));
                t
            })
            .collect();
        let mut container = item("CONTAINS", "CONTAINER", code("121070", "DCM", "Findings"));
        container.put(s(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"));
        if !findings.is_empty() {
            container.put(seq(tags::CONTENT_SEQUENCE, findings));
        }
        root.push(container);
        if !self.impression.trim().is_empty() {
            root.push(text(
                "CONTAINS",
                code("121073", "DCM", "Impression"),
                &self.impression,
            ));
        }
        o.put(seq(tags::CONTENT_SEQUENCE, root));
        Ok(o)
    }

    /// Writes the document as a Part 10 file (Explicit VR Little Endian).
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::write_part10(
            self.to_object()?,
            COMPREHENSIVE_SR,
            &self.sop_instance_uid,
            path,
        )
    }
}
