//! De-identification on ingest: DICOM PS3.15 Annex E, Basic Application
//! Level Confidentiality Profile, with the Retain Longitudinal Temporal
//! Information with Modified Dates option and the Clean Descriptors option.
//!
//! [`PROFILE`] is Table E.1-1 (PS3.15 2013 edition, chapter E, as also
//! transcribed in KitwareMedical/dicom-anonymizer `dicomfields.py`): every
//! attribute with its basic-profile action. Compound actions (X/Z, X/D,
//! X/Z/D, Z/D) depend on the IOD's attribute type, which a generic ingest
//! does not know; we take the branch that keeps the attribute present but
//! without identity (Z, or D for a date/name that some IOD requires), which
//! is allowed for every type. X/Z/U* sequences (Referenced Image, Source
//! Image) are kept and their UIDs remapped by the recursion.
//!
//! Beyond the 2013 table, and in line with newer editions:
//! - every UI value outside the DICOM root `1.2.840.10008` is remapped,
//!   except the class-like UIDs listed in [`CLASS_UIDS`], so instance UIDs a
//!   vendor invented after 2013 do not survive;
//! - curve groups (50xx) and overlay data/comments (60xx,3000/4000) go;
//! - private tags go unless [`DeidConfig::keep_private_tags`].
//!
//! UIDs are remapped with HMAC-SHA256 under the organisation's key into
//! `2.25.<UUID as decimal>`: the same original maps to the same replacement
//! on every ingest (a re-sent study joins its case), and without the key
//! the mapping cannot be reversed or recomputed.

use dicom_core::dictionary::DataDictionary;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::{DeidChange, IdentityEntry};
use crate::{ImagingError, Result};

/// What to do with an image whose Burned In Annotation (0028,0301) is YES:
/// its pixels may show the patient's name, which header de-identification
/// cannot remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BurnedInPolicy {
    /// Refuse the file (and so its study).
    Refuse,
    /// Store it with [`crate::InstanceInfo::burned_in_annotation`] set, so the
    /// viewer can warn.
    Flag,
}

/// De-identification settings, one per organisation.
#[derive(Clone)]
pub struct DeidConfig {
    /// The organisation's secret for UID remapping and date offsets.
    pub key: [u8; 32],
    /// Retain Longitudinal Temporal Information with Modified Dates: dates
    /// are shifted by a per-patient offset instead of removed.
    pub retain_longitudinal_modified_dates: bool,
    /// Clean Descriptors: descriptions are kept after removing names, IDs
    /// and dates found in them, instead of removed.
    pub clean_descriptors: bool,
    /// Keep private (odd-group) attributes. Off by default: vendors put
    /// patient names in them.
    pub keep_private_tags: bool,
    pub burned_in: BurnedInPolicy,
    /// Return original→replacement identifiers in the report, for an admin
    /// who must be able to re-identify. Off by default; nothing keeps them
    /// otherwise.
    pub keep_identity_map: bool,
}

impl DeidConfig {
    /// The defaults: basic profile only, private tags removed, burned-in
    /// images refused, no identity map.
    pub fn new(key: [u8; 32]) -> Self {
        DeidConfig {
            key,
            retain_longitudinal_modified_dates: false,
            clean_descriptors: false,
            keep_private_tags: false,
            burned_in: BurnedInPolicy::Refuse,
            keep_identity_map: false,
        }
    }
}

impl std::fmt::Debug for DeidConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeidConfig")
            .field("key", &"<secret>")
            .field(
                "retain_longitudinal_modified_dates",
                &self.retain_longitudinal_modified_dates,
            )
            .field("clean_descriptors", &self.clean_descriptors)
            .field("keep_private_tags", &self.keep_private_tags)
            .field("burned_in", &self.burned_in)
            .field("keep_identity_map", &self.keep_identity_map)
            .finish()
    }
}

/// Table E.1-1 action codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace with a non-zero-length dummy value.
    D,
    /// Replace with a zero-length value.
    Z,
    /// Remove.
    X,
    /// Keep.
    K,
    /// Clean (only through the Clean Descriptors option).
    C,
    /// Replace the UID with a consistent new one.
    U,
    /// Z or D by IOD type.
    ZD,
    /// X or Z by IOD type.
    XZ,
    /// X or D by IOD type.
    XD,
    /// X, Z or D by IOD type.
    XZD,
    /// X, Z or replace the UIDs inside (sequences of references).
    XZU,
}

/// One row of Table E.1-1.
#[derive(Debug, Clone, Copy)]
pub struct ProfileEntry {
    pub tag: Tag,
    /// Basic profile action.
    pub basic: Action,
    /// The Clean Descriptors option column says C.
    pub clean_descriptor: bool,
    /// The attribute name as the standard writes it.
    pub name: &'static str,
}

const fn e(
    group: u16,
    element: u16,
    basic: Action,
    clean_descriptor: bool,
    name: &'static str,
) -> ProfileEntry {
    ProfileEntry {
        tag: Tag(group, element),
        basic,
        clean_descriptor,
        name,
    }
}

/// PS3.15 Table E.1-1, sorted by tag. The repeating-group rows (curve
/// data 50xx, overlay data and comments 60xx) are rules in
/// [`is_repeating_group_removal`].
#[rustfmt::skip]
pub static PROFILE: &[ProfileEntry] = &[
    e(0x0000, 0x1000, Action::X, false, "Affected SOP Instance UID"),
    e(0x0000, 0x1001, Action::U, false, "Requested SOP Instance UID"),
    e(0x0002, 0x0003, Action::U, false, "Media Storage SOP Instance UID"),
    e(0x0004, 0x1511, Action::U, false, "Referenced SOP Instance UID in File"),
    e(0x0008, 0x0014, Action::U, false, "Instance Creator UID"),
    e(0x0008, 0x0018, Action::U, false, "SOP Instance UID"),
    e(0x0008, 0x0020, Action::Z, false, "Study Date"),
    e(0x0008, 0x0021, Action::XD, false, "Series Date"),
    e(0x0008, 0x0022, Action::XZ, false, "Acquisition Date"),
    e(0x0008, 0x0023, Action::ZD, false, "Content Date"),
    e(0x0008, 0x0024, Action::X, false, "Overlay Date"),
    e(0x0008, 0x0025, Action::X, false, "Curve Date"),
    e(0x0008, 0x002A, Action::XD, false, "Acquisition DateTime"),
    e(0x0008, 0x0030, Action::Z, false, "Study Time"),
    e(0x0008, 0x0031, Action::XD, false, "Series Time"),
    e(0x0008, 0x0032, Action::XZ, false, "Acquisition Time"),
    e(0x0008, 0x0033, Action::ZD, false, "Content Time"),
    e(0x0008, 0x0034, Action::X, false, "Overlay Time"),
    e(0x0008, 0x0035, Action::X, false, "Curve Time"),
    e(0x0008, 0x0050, Action::Z, false, "Accession Number"),
    e(0x0008, 0x0058, Action::U, false, "Failed SOP Instance UID List"),
    e(0x0008, 0x0080, Action::XZD, false, "Institution Name"),
    e(0x0008, 0x0081, Action::X, false, "Institution Address"),
    e(0x0008, 0x0082, Action::XZD, false, "Institution Code Sequence"),
    e(0x0008, 0x0090, Action::Z, false, "Referring Physician's Name"),
    e(0x0008, 0x0092, Action::X, false, "Referring Physician's Address"),
    e(0x0008, 0x0094, Action::X, false, "Referring Physician's Telephone Numbers"),
    e(0x0008, 0x0096, Action::X, false, "Referring Physician's Identification Sequence"),
    e(0x0008, 0x010D, Action::U, false, "Context Group Extension Creator UID"),
    e(0x0008, 0x0201, Action::X, false, "Timezone Offset From UTC"),
    e(0x0008, 0x1010, Action::XZD, false, "Station Name"),
    e(0x0008, 0x1030, Action::X, true, "Study Description"),
    e(0x0008, 0x103E, Action::X, true, "Series Description"),
    e(0x0008, 0x1040, Action::X, false, "Institutional Department Name"),
    e(0x0008, 0x1048, Action::X, false, "Physician(s) of Record"),
    e(0x0008, 0x1049, Action::X, false, "Physician(s) of Record Identification Sequence"),
    e(0x0008, 0x1050, Action::X, false, "Performing Physicians' Name"),
    e(0x0008, 0x1052, Action::X, false, "Performing Physician Identification Sequence"),
    e(0x0008, 0x1060, Action::X, false, "Name of Physician(s) Reading Study"),
    e(0x0008, 0x1062, Action::X, false, "Physician(s) Reading Study Identification Sequence"),
    e(0x0008, 0x1070, Action::XZD, false, "Operators' Name"),
    e(0x0008, 0x1072, Action::XD, false, "Operators' Identification Sequence"),
    e(0x0008, 0x1080, Action::X, true, "Admitting Diagnoses Description"),
    e(0x0008, 0x1084, Action::X, false, "Admitting Diagnoses Code Sequence"),
    e(0x0008, 0x1110, Action::XZ, false, "Referenced Study Sequence"),
    e(0x0008, 0x1111, Action::XZD, false, "Referenced Performed Procedure Step Sequence"),
    e(0x0008, 0x1120, Action::X, false, "Referenced Patient Sequence"),
    e(0x0008, 0x1140, Action::XZU, false, "Referenced Image Sequence"),
    e(0x0008, 0x1155, Action::U, false, "Referenced SOP Instance UID"),
    e(0x0008, 0x1195, Action::U, false, "Transaction UID"),
    e(0x0008, 0x2111, Action::X, true, "Derivation Description"),
    e(0x0008, 0x2112, Action::XZU, false, "Source Image Sequence"),
    e(0x0008, 0x3010, Action::U, false, "Irradiation Event UID"),
    e(0x0008, 0x4000, Action::X, false, "Identifying Comments"),
    e(0x0008, 0x9123, Action::U, false, "Creator Version UID"),
    e(0x0010, 0x0010, Action::Z, false, "Patient's Name"),
    e(0x0010, 0x0020, Action::Z, false, "Patient ID"),
    e(0x0010, 0x0021, Action::X, false, "Issuer of Patient ID"),
    e(0x0010, 0x0030, Action::Z, false, "Patient's Birth Date"),
    e(0x0010, 0x0032, Action::X, false, "Patient's Birth Time"),
    e(0x0010, 0x0040, Action::Z, false, "Patient's Sex"),
    e(0x0010, 0x0050, Action::X, false, "Patient's Insurance Plan Code Sequence"),
    e(0x0010, 0x0101, Action::X, false, "Patient's Primary Language Code Sequence"),
    e(0x0010, 0x0102, Action::X, false, "Patient's Primary Language Modifier Code Sequence"),
    e(0x0010, 0x1000, Action::X, false, "Other Patient IDs"),
    e(0x0010, 0x1001, Action::X, false, "Other Patient Names"),
    e(0x0010, 0x1002, Action::X, false, "Other Patient IDs Sequence"),
    e(0x0010, 0x1005, Action::X, false, "Patient's Birth Name"),
    e(0x0010, 0x1010, Action::X, false, "Patient's Age"),
    e(0x0010, 0x1020, Action::X, false, "Patient's Size"),
    e(0x0010, 0x1030, Action::X, false, "Patient's Weight"),
    e(0x0010, 0x1040, Action::X, false, "Patient Address"),
    e(0x0010, 0x1050, Action::X, false, "Insurance Plan Identification"),
    e(0x0010, 0x1060, Action::X, false, "Patient's Mother's Birth Name"),
    e(0x0010, 0x1080, Action::X, false, "Military Rank"),
    e(0x0010, 0x1081, Action::X, false, "Branch of Service"),
    e(0x0010, 0x1090, Action::X, false, "Medical Record Locator"),
    e(0x0010, 0x2000, Action::X, false, "Medical Alerts"),
    e(0x0010, 0x2110, Action::X, false, "Allergies"),
    e(0x0010, 0x2150, Action::X, false, "Country of Residence"),
    e(0x0010, 0x2152, Action::X, false, "Region of Residence"),
    e(0x0010, 0x2154, Action::X, false, "Patient's Telephone Numbers"),
    e(0x0010, 0x2160, Action::X, false, "Ethnic Group"),
    e(0x0010, 0x2180, Action::X, false, "Occupation"),
    e(0x0010, 0x21A0, Action::X, false, "Smoking Status"),
    e(0x0010, 0x21B0, Action::X, true, "Additional Patient's History"),
    e(0x0010, 0x21C0, Action::X, false, "Pregnancy Status"),
    e(0x0010, 0x21D0, Action::X, false, "Last Menstrual Date"),
    e(0x0010, 0x21F0, Action::X, false, "Patient's Religious Preference"),
    e(0x0010, 0x2203, Action::XZ, false, "Patient Sex Neutered"),
    e(0x0010, 0x2297, Action::X, false, "Responsible Person"),
    e(0x0010, 0x2299, Action::X, false, "Responsible Organization"),
    e(0x0010, 0x4000, Action::X, true, "Patient Comments"),
    e(0x0018, 0x0010, Action::ZD, true, "Contrast Bolus Agent"),
    e(0x0018, 0x1000, Action::XZD, false, "Device Serial Number"),
    e(0x0018, 0x1002, Action::U, false, "Device UID"),
    e(0x0018, 0x1004, Action::X, false, "Plate ID"),
    e(0x0018, 0x1005, Action::X, false, "Generator ID"),
    e(0x0018, 0x1007, Action::X, false, "Cassette ID"),
    e(0x0018, 0x1008, Action::X, false, "Gantry ID"),
    e(0x0018, 0x1030, Action::XD, true, "Protocol Name"),
    e(0x0018, 0x1400, Action::XD, true, "Acquisition Device Processing Description"),
    e(0x0018, 0x4000, Action::X, true, "Acquisition Comments"),
    e(0x0018, 0x700A, Action::XD, false, "Detector ID"),
    e(0x0018, 0x9424, Action::X, true, "Acquisition Protocol Description"),
    e(0x0018, 0xA003, Action::X, true, "Contribution Description"),
    e(0x0020, 0x000D, Action::U, false, "Study Instance UID"),
    e(0x0020, 0x000E, Action::U, false, "Series Instance UID"),
    e(0x0020, 0x0010, Action::Z, false, "Study ID"),
    e(0x0020, 0x0052, Action::U, false, "Frame of Reference UID"),
    e(0x0020, 0x0200, Action::U, false, "Synchronization Frame of Reference UID"),
    e(0x0020, 0x3401, Action::X, false, "Modifying Device ID"),
    e(0x0020, 0x3404, Action::X, false, "Modifying Device Manufacturer"),
    e(0x0020, 0x3406, Action::X, true, "Modified Image Description"),
    e(0x0020, 0x4000, Action::X, true, "Image Comments"),
    e(0x0020, 0x9158, Action::X, true, "Frame Comments"),
    e(0x0020, 0x9161, Action::U, false, "Concatenation UID"),
    e(0x0020, 0x9164, Action::U, false, "Dimension Organization UID"),
    e(0x0028, 0x1199, Action::U, false, "Palette Color Lookup Table UID"),
    e(0x0028, 0x1214, Action::U, false, "Large Palette Color Lookup Table UID"),
    e(0x0028, 0x4000, Action::X, true, "Image Presentation Comments"),
    e(0x0032, 0x0012, Action::X, false, "Study ID Issuer"),
    e(0x0032, 0x1020, Action::X, false, "Scheduled Study Location"),
    e(0x0032, 0x1021, Action::X, false, "Scheduled Study Location AE Title"),
    e(0x0032, 0x1030, Action::X, true, "Reason for Study"),
    e(0x0032, 0x1032, Action::X, false, "Requesting Physician"),
    e(0x0032, 0x1033, Action::X, false, "Requesting Service"),
    e(0x0032, 0x1060, Action::XZ, true, "Requested Procedure Description"),
    e(0x0032, 0x1070, Action::X, true, "Requested Contrast Agent"),
    e(0x0032, 0x4000, Action::X, true, "Study Comments"),
    e(0x0038, 0x0004, Action::X, false, "Referenced Patient Alias Sequence"),
    e(0x0038, 0x0010, Action::X, false, "Admission ID"),
    e(0x0038, 0x0011, Action::X, false, "Issuer of Admission ID"),
    e(0x0038, 0x001E, Action::X, false, "Scheduled Patient Institution Residence"),
    e(0x0038, 0x0020, Action::X, false, "Admitting Date"),
    e(0x0038, 0x0021, Action::X, false, "Admitting Time"),
    e(0x0038, 0x0040, Action::X, true, "Discharge Diagnosis Description"),
    e(0x0038, 0x0050, Action::X, false, "Special Needs"),
    e(0x0038, 0x0060, Action::X, false, "Service Episode ID"),
    e(0x0038, 0x0061, Action::X, false, "Issuer of Service Episode ID"),
    e(0x0038, 0x0062, Action::X, true, "Service Episode Description"),
    e(0x0038, 0x0300, Action::X, false, "Current Patient Location"),
    e(0x0038, 0x0400, Action::X, false, "Patient's Institution Residence"),
    e(0x0038, 0x0500, Action::X, false, "Patient State"),
    e(0x0038, 0x4000, Action::X, true, "Visit Comments"),
    e(0x0040, 0x0001, Action::X, false, "Scheduled Station AE Title"),
    e(0x0040, 0x0002, Action::X, false, "Scheduled Procedure Step Start Date"),
    e(0x0040, 0x0003, Action::X, false, "Scheduled Procedure Step Start Time"),
    e(0x0040, 0x0004, Action::X, false, "Scheduled Procedure Step End Date"),
    e(0x0040, 0x0005, Action::X, false, "Scheduled Procedure Step End Time"),
    e(0x0040, 0x0006, Action::X, false, "Scheduled Performing Physician Name"),
    e(0x0040, 0x0007, Action::X, true, "Scheduled Procedure Step Description"),
    e(0x0040, 0x000B, Action::X, false, "Scheduled Performing Physician Identification Sequence"),
    e(0x0040, 0x0010, Action::X, false, "Scheduled Station Name"),
    e(0x0040, 0x0011, Action::X, false, "Scheduled Procedure Step Location"),
    e(0x0040, 0x0012, Action::X, false, "Pre-Medication"),
    e(0x0040, 0x0241, Action::X, false, "Performed Station AE Title"),
    e(0x0040, 0x0242, Action::X, false, "Performed Station Name"),
    e(0x0040, 0x0243, Action::X, false, "Performed Location"),
    e(0x0040, 0x0244, Action::X, false, "Performed Procedure Step Start Date"),
    e(0x0040, 0x0245, Action::X, false, "Performed Procedure Step Start Time"),
    e(0x0040, 0x0250, Action::X, false, "Performed Procedure Step End Date"),
    e(0x0040, 0x0251, Action::X, false, "Performed Procedure Step End Time"),
    e(0x0040, 0x0253, Action::X, false, "Performed Procedure Step ID"),
    e(0x0040, 0x0254, Action::X, true, "Performed Procedure Step Description"),
    e(0x0040, 0x0275, Action::X, false, "Request Attributes Sequence"),
    e(0x0040, 0x0280, Action::X, true, "Comments on the Performed Procedure Step"),
    e(0x0040, 0x0555, Action::X, false, "Acquisition Context Sequence"),
    e(0x0040, 0x1001, Action::X, false, "Requested Procedure ID"),
    e(0x0040, 0x1004, Action::X, false, "Patient Transport Arrangements"),
    e(0x0040, 0x1005, Action::X, false, "Requested Procedure Location"),
    e(0x0040, 0x1010, Action::X, false, "Names of Intended Recipient of Results"),
    e(0x0040, 0x1011, Action::X, false, "Intended Recipients of Results Identification Sequence"),
    e(0x0040, 0x1101, Action::D, false, "Person Identification Code Sequence"),
    e(0x0040, 0x1102, Action::X, false, "Person Address"),
    e(0x0040, 0x1103, Action::X, false, "Person Telephone Numbers"),
    e(0x0040, 0x1400, Action::X, true, "Requested Procedure Comments"),
    e(0x0040, 0x2001, Action::X, true, "Reason for the Imaging Service Request"),
    e(0x0040, 0x2008, Action::X, false, "Order Entered By"),
    e(0x0040, 0x2009, Action::X, false, "Order Enterer Location"),
    e(0x0040, 0x2010, Action::X, false, "Order Callback Phone Number"),
    e(0x0040, 0x2016, Action::Z, false, "Placer Order Number / Imaging Service Request"),
    e(0x0040, 0x2017, Action::Z, false, "Filler Order Number / Imaging Service Request"),
    e(0x0040, 0x2400, Action::X, true, "Imaging Service Request Comments"),
    e(0x0040, 0x3001, Action::X, false, "Confidentiality Constraint on Patient Data Description"),
    e(0x0040, 0x4023, Action::U, false, "Referenced General Purpose Scheduled Procedure Step Transaction UID"),
    e(0x0040, 0x4025, Action::X, false, "Scheduled Station Name Code Sequence"),
    e(0x0040, 0x4027, Action::X, false, "Scheduled Station Geographic Location Code Sequence"),
    e(0x0040, 0x4028, Action::X, false, "Performed Station Name Code Sequence"),
    e(0x0040, 0x4030, Action::X, false, "Performed Station Geographic Location Code Sequence"),
    e(0x0040, 0x4034, Action::X, false, "Scheduled Human Performers Sequence"),
    e(0x0040, 0x4035, Action::X, false, "Actual Human Performers Sequence"),
    e(0x0040, 0x4036, Action::X, false, "Human Performers Organization"),
    e(0x0040, 0x4037, Action::X, false, "Human Performers Name"),
    e(0x0040, 0xA027, Action::X, false, "Verifying Organization"),
    e(0x0040, 0xA073, Action::D, false, "Verifying Observer Sequence"),
    e(0x0040, 0xA075, Action::D, false, "Verifying Observer Name"),
    e(0x0040, 0xA078, Action::X, false, "Author Observer Sequence"),
    e(0x0040, 0xA07A, Action::X, false, "Participant Sequence"),
    e(0x0040, 0xA07C, Action::X, false, "Custodial Organization Sequence"),
    e(0x0040, 0xA088, Action::Z, false, "Verifying Observer Identification Code Sequence"),
    e(0x0040, 0xA123, Action::D, false, "Person Name"),
    e(0x0040, 0xA124, Action::U, false, "UID"),
    e(0x0040, 0xA730, Action::X, false, "Content Sequence"),
    e(0x0040, 0xDB0C, Action::U, false, "Template Extension Organization UID"),
    e(0x0040, 0xDB0D, Action::U, false, "Template Extension Creator UID"),
    e(0x0070, 0x0001, Action::D, false, "Graphic Annotation Sequence"),
    e(0x0070, 0x0084, Action::Z, false, "Content Creator's Name"),
    e(0x0070, 0x0086, Action::X, false, "Content Creator's Identification Code Sequence"),
    e(0x0070, 0x031A, Action::U, false, "Fiducial UID"),
    e(0x0088, 0x0140, Action::U, false, "Storage Media File-set UID"),
    e(0x0088, 0x0200, Action::X, false, "Icon Image Sequence"),
    e(0x0088, 0x0904, Action::X, false, "Topic Title"),
    e(0x0088, 0x0906, Action::X, false, "Topic Subject"),
    e(0x0088, 0x0910, Action::X, false, "Topic Author"),
    e(0x0088, 0x0912, Action::X, false, "Topic Keywords"),
    e(0x0400, 0x0100, Action::X, false, "Digital Signature UID"),
    e(0x0400, 0x0402, Action::X, false, "Referenced Digital Signature Sequence"),
    e(0x0400, 0x0403, Action::X, false, "Referenced SOP Instance MAC Sequence"),
    e(0x0400, 0x0404, Action::X, false, "MAC"),
    e(0x0400, 0x0550, Action::X, false, "Modified Attributes Sequence"),
    e(0x0400, 0x0561, Action::X, false, "Original Attributes Sequence"),
    e(0x2030, 0x0020, Action::X, false, "Text String"),
    e(0x3006, 0x0024, Action::U, false, "Referenced Frame of Reference UID"),
    e(0x3006, 0x00C2, Action::U, false, "Related Frame of Reference UID"),
    e(0x300A, 0x0013, Action::U, false, "Dose Reference UID"),
    e(0x300E, 0x0008, Action::XZ, false, "Reviewer Name"),
    e(0x4000, 0x0010, Action::X, false, "Arbitrary"),
    e(0x4000, 0x4000, Action::X, false, "Text Comments"),
    e(0x4008, 0x0042, Action::X, false, "Results ID Issuer"),
    e(0x4008, 0x0102, Action::X, false, "Interpretation Recorder"),
    e(0x4008, 0x010A, Action::X, false, "Interpretation Transcriber"),
    e(0x4008, 0x010B, Action::X, false, "Interpretation Text"),
    e(0x4008, 0x010C, Action::X, false, "Interpretation Author"),
    e(0x4008, 0x0111, Action::X, false, "Interpretation Approver Sequence"),
    e(0x4008, 0x0114, Action::X, false, "Physician Approving Interpretation"),
    e(0x4008, 0x0115, Action::X, false, "Interpretation Diagnosis Description"),
    e(0x4008, 0x0118, Action::X, false, "Results Distribution List Sequence"),
    e(0x4008, 0x0119, Action::X, false, "Distribution Name"),
    e(0x4008, 0x011A, Action::X, false, "Distribution Address"),
    e(0x4008, 0x0202, Action::X, false, "Interpretation ID Issuer"),
    e(0x4008, 0x0300, Action::X, false, "Impressions"),
    e(0x4008, 0x4000, Action::X, false, "Results Comments"),
    e(0xFFFA, 0xFFFA, Action::X, false, "Digital Signatures Sequence"),
    e(0xFFFC, 0xFFFC, Action::X, false, "Data Set Trailing Padding"),
];

/// UIDs that name a class, a syntax or a coding scheme, not an instance:
/// kept even outside the DICOM root (a vendor's private SOP class).
const CLASS_UIDS: &[Tag] = &[
    Tag(0x0002, 0x0002), // Media Storage SOP Class UID
    Tag(0x0002, 0x0010), // Transfer Syntax UID
    Tag(0x0002, 0x0012), // Implementation Class UID
    Tag(0x0004, 0x1510), // Referenced SOP Class UID in File
    Tag(0x0004, 0x1512), // Referenced Transfer Syntax UID in File
    Tag(0x0008, 0x0016), // SOP Class UID
    Tag(0x0008, 0x001A), // Related General SOP Class UID
    Tag(0x0008, 0x001B), // Original Specialized SOP Class UID
    Tag(0x0008, 0x0062), // SOP Classes in Study
    Tag(0x0008, 0x010C), // Coding Scheme UID
    Tag(0x0008, 0x1150), // Referenced SOP Class UID
    Tag(0x0040, 0xE031), // Repository Unique ID
];

/// Looks up a table row.
pub fn profile_entry(tag: Tag) -> Option<&'static ProfileEntry> {
    PROFILE
        .binary_search_by_key(&tag, |p| p.tag)
        .ok()
        .and_then(|i| PROFILE.get(i))
}

/// Curve groups (50xx,eeee) and Overlay Data / Overlay Comments
/// (60xx,3000 / 60xx,4000): the table's repeating-group rows, action X.
pub fn is_repeating_group_removal(tag: Tag) -> bool {
    let g = tag.group() & 0xFF00;
    g == 0x5000 || (g == 0x6000 && (tag.element() == 0x3000 || tag.element() == 0x4000))
}

/// What de-identifying one file did.
#[derive(Debug, Clone, Default)]
pub struct DeidOutcome {
    pub changes: Vec<DeidChange>,
    /// Burned In Annotation was YES and the policy was to flag.
    pub burned_in: bool,
    /// Filled only when [`DeidConfig::keep_identity_map`] is on.
    pub identity_map: Vec<IdentityEntry>,
}

/// De-identifies `obj` in place (dataset and file meta).
pub fn deidentify(obj: &mut DefaultDicomObject, cfg: &DeidConfig) -> Result<DeidOutcome> {
    let mut out = DeidOutcome::default();
    if burned_in(obj) {
        match cfg.burned_in {
            BurnedInPolicy::Refuse => return Err(ImagingError::BurnedInAnnotation),
            BurnedInPolicy::Flag => out.burned_in = true,
        }
    }
    let ctx = Context {
        cfg,
        date_offset_days: patient_date_offset(obj, &cfg.key),
        identifiers: identifying_words(obj),
    };
    if cfg.keep_identity_map {
        for tag in [Tag(0x0010, 0x0010), Tag(0x0010, 0x0020)] {
            if let Some(v) = text(obj, tag) {
                out.identity_map.push(IdentityEntry {
                    tag: tag_text(tag),
                    original: v,
                    replacement: String::new(),
                });
            }
        }
    }
    deid_dataset(obj, &ctx, &mut out, 0)?;
    add_deid_records(obj, cfg)?;
    let sop = text(obj, Tag(0x0008, 0x0018)).ok_or_else(|| ImagingError::Deidentification {
        detail: "the file has no SOP Instance UID".into(),
    })?;
    // update_meta recomputes the group length the edits change.
    obj.update_meta(|meta| {
        meta.media_storage_sop_instance_uid = sop;
        meta.source_application_entity_title = None;
        meta.sending_application_entity_title = None;
        meta.receiving_application_entity_title = None;
        meta.private_information_creator_uid = None;
        meta.private_information = None;
    });
    Ok(out)
}

struct Context<'a> {
    cfg: &'a DeidConfig,
    date_offset_days: i64,
    identifiers: Vec<String>,
}

/// Sequences nest a few levels in real files; deeper is an attack on the
/// stack, not an image.
const MAX_DEPTH: u32 = 32;

fn deid_dataset(
    obj: &mut InMemDicomObject,
    ctx: &Context,
    out: &mut DeidOutcome,
    depth: u32,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(ImagingError::Deidentification {
            detail: "sequences are nested too deeply".into(),
        });
    }
    let tags: Vec<Tag> = obj.tags().collect();
    for tag in tags {
        deid_element(obj, tag, ctx, out, depth)?;
    }
    Ok(())
}

fn deid_element(
    obj: &mut InMemDicomObject,
    tag: Tag,
    ctx: &Context,
    out: &mut DeidOutcome,
    depth: u32,
) -> Result<()> {
    let cfg = ctx.cfg;
    if tag.group() % 2 == 1 {
        if !cfg.keep_private_tags {
            obj.remove_element(tag);
            out.changes.push(change(tag, "private_removed"));
            return Ok(());
        }
        return recurse_if_sequence(obj, tag, ctx, out, depth);
    }
    if is_repeating_group_removal(tag) {
        obj.remove_element(tag);
        out.changes.push(change(tag, "removed"));
        return Ok(());
    }
    let Some(vr) = obj.get(tag).map(|e| e.vr()) else {
        return Ok(());
    };
    let Some(entry) = profile_entry(tag) else {
        if vr == VR::UI && !CLASS_UIDS.contains(&tag) {
            return remap_uids(obj, tag, ctx, out);
        }
        return recurse_if_sequence(obj, tag, ctx, out, depth);
    };
    let is_date = matches!(vr, VR::DA | VR::DT | VR::TM);
    if cfg.retain_longitudinal_modified_dates && is_date {
        return shift_dates(obj, tag, vr, ctx, out);
    }
    if cfg.clean_descriptors && entry.clean_descriptor && is_text(vr) {
        return clean(obj, tag, vr, ctx, out);
    }
    match entry.basic {
        Action::X => {
            obj.remove_element(tag);
            out.changes.push(change(tag, "removed"));
        }
        Action::Z | Action::ZD | Action::XZ | Action::XZD => {
            obj.put(empty_element(tag, vr));
            out.changes.push(change(tag, "emptied"));
        }
        Action::D | Action::XD => {
            if vr == VR::UI {
                return remap_uids(obj, tag, ctx, out);
            }
            obj.put(dummy_element(tag, vr));
            out.changes.push(change(tag, "replaced"));
        }
        Action::U => return remap_uids(obj, tag, ctx, out),
        Action::XZU | Action::K | Action::C => {
            return recurse_if_sequence(obj, tag, ctx, out, depth)
        }
    }
    Ok(())
}

fn change(tag: Tag, action: &str) -> DeidChange {
    DeidChange {
        tag: tag_text(tag),
        keyword: if tag.group() % 2 == 1 {
            String::new()
        } else {
            StandardDataDictionary
                .by_tag(tag)
                .map(|e| e.alias.to_string())
                .unwrap_or_default()
        },
        action: action.into(),
    }
}

/// `"(0010,0010)"`.
pub fn tag_text(tag: Tag) -> String {
    format!("({:04X},{:04X})", tag.group(), tag.element())
}

fn is_text(vr: VR) -> bool {
    matches!(vr, VR::LO | VR::LT | VR::SH | VR::ST | VR::UT | VR::UC)
}

fn empty_element(tag: Tag, vr: VR) -> dicom_object::mem::InMemElement {
    if vr == VR::SQ {
        DataElement::new(
            tag,
            VR::SQ,
            DataSetSequence::new(Vec::new(), Length::UNDEFINED),
        )
    } else {
        DataElement::new(tag, vr, PrimitiveValue::Empty)
    }
}

/// A dummy that satisfies the VR and carries nothing of the original.
fn dummy_element(tag: Tag, vr: VR) -> dicom_object::mem::InMemElement {
    let text = match vr {
        VR::SQ => return empty_element(tag, vr),
        VR::DA => "19000101",
        VR::TM => "000000",
        VR::DT => "19000101000000",
        VR::AS => "000D",
        VR::IS | VR::DS => "0",
        VR::AE | VR::CS | VR::LO | VR::LT | VR::PN | VR::SH | VR::ST | VR::UC | VR::UT => {
            "ANONYMIZED"
        }
        _ => return empty_element(tag, vr),
    };
    DataElement::new(tag, vr, PrimitiveValue::from(text))
}

fn recurse_if_sequence(
    obj: &mut InMemDicomObject,
    tag: Tag,
    ctx: &Context,
    out: &mut DeidOutcome,
    depth: u32,
) -> Result<()> {
    let is_seq = obj
        .get(tag)
        .is_some_and(|e| matches!(e.value(), Value::Sequence(_)));
    if !is_seq {
        return Ok(());
    }
    let Some(elem) = obj.take(tag) else {
        return Ok(());
    };
    let vr = elem.vr();
    let Some(items) = elem.into_value().into_items() else {
        return Ok(());
    };
    let mut items: Vec<InMemDicomObject> = items.into_iter().collect();
    for item in &mut items {
        deid_dataset(item, ctx, out, depth + 1)?;
    }
    // Lengths changed: undefined lengths let the writer recompute nothing.
    obj.put(DataElement::new(
        tag,
        vr,
        DataSetSequence::new(items, Length::UNDEFINED),
    ));
    Ok(())
}

fn remap_uids(
    obj: &mut InMemDicomObject,
    tag: Tag,
    ctx: &Context,
    out: &mut DeidOutcome,
) -> Result<()> {
    let Some(original) = text(obj, tag) else {
        return Ok(());
    };
    let mapped: Vec<String> = original
        .split('\\')
        .map(|uid| remap_uid(&ctx.cfg.key, uid.trim_end_matches(['\0', ' '])))
        .collect();
    let joined = mapped.join("\\");
    if ctx.cfg.keep_identity_map {
        out.identity_map.push(IdentityEntry {
            tag: tag_text(tag),
            original: original.clone(),
            replacement: joined.clone(),
        });
    }
    obj.put(DataElement::new(tag, VR::UI, PrimitiveValue::from(joined)));
    out.changes.push(change(tag, "uid_remapped"));
    Ok(())
}

/// `2.25.<decimal>` of a UUID (version 8, RFC 9562 "custom") built from
/// HMAC-SHA256(key, uid): stable per key, unlinkable without it.
pub fn remap_uid(key: &[u8; 32], uid: &str) -> String {
    if uid.is_empty() {
        return String::new();
    }
    let digest = keyed_hash(key, b"uid", uid.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(bytes))
}

/// HMAC-SHA256 over a domain label and a message, so UID remapping and
/// date offsets never share outputs.
pub fn keyed_hash(key: &[u8; 32], domain: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; 32 bytes cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    mac.update(domain);
    mac.update(&[0]);
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.get(tag)?;
    let s = e.to_str().ok()?;
    let s = s.trim_end_matches(['\0', ' ']).to_string();
    (!s.is_empty()).then_some(s)
}

fn burned_in(obj: &InMemDicomObject) -> bool {
    text(obj, Tag(0x0028, 0x0301)).is_some_and(|v| v.trim().eq_ignore_ascii_case("YES"))
}

/// Days every date of one patient moves back: 1 to 10 years, from the
/// patient's identity under the key, so all of a patient's studies keep
/// their intervals and a re-sent study shifts the same way.
fn patient_date_offset(obj: &InMemDicomObject, key: &[u8; 32]) -> i64 {
    let mut who = String::new();
    for tag in [
        Tag(0x0010, 0x0020),
        Tag(0x0010, 0x0010),
        Tag(0x0010, 0x0030),
    ] {
        who.push_str(&text(obj, tag).unwrap_or_default());
        who.push('\0');
    }
    let h = keyed_hash(key, b"date-offset", who.as_bytes());
    let n = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    -(365 + (n % 3288) as i64)
}

fn shift_dates(
    obj: &mut InMemDicomObject,
    tag: Tag,
    vr: VR,
    ctx: &Context,
    out: &mut DeidOutcome,
) -> Result<()> {
    // Whole-day shifts leave times of day as they are.
    if vr == VR::TM {
        return Ok(());
    }
    let Some(original) = text(obj, tag) else {
        return Ok(());
    };
    let shifted: Vec<String> = original
        .split('\\')
        .map(|v| shift_date_value(v.trim(), ctx.date_offset_days))
        .collect();
    obj.put(DataElement::new(
        tag,
        vr,
        PrimitiveValue::from(shifted.join("\\")),
    ));
    out.changes.push(change(tag, "date_shifted"));
    Ok(())
}

/// Shifts the `YYYYMMDD` at the start of a DA or DT value; anything else
/// (a partial or malformed date) becomes empty rather than kept.
fn shift_date_value(v: &str, days: i64) -> String {
    let parse = |s: &str| s.parse::<i64>().ok();
    let (Some(y), Some(m), Some(d)) = (
        v.get(0..4).and_then(parse),
        v.get(4..6).and_then(parse),
        v.get(6..8).and_then(parse),
    ) else {
        return String::new();
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return String::new();
    }
    let (ny, nm, nd) = civil_from_days(days_from_civil(y, m, d) + days);
    format!("{ny:04}{nm:02}{nd:02}{}", v.get(8..).unwrap_or(""))
}

/// Howard Hinnant's days-from-civil (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Words that identify the patient or staff, gathered before anything is
/// removed, for cleaning descriptions.
fn identifying_words(obj: &InMemDicomObject) -> Vec<String> {
    const SOURCES: &[Tag] = &[
        Tag(0x0010, 0x0010), // Patient's Name
        Tag(0x0010, 0x0020), // Patient ID
        Tag(0x0010, 0x1000), // Other Patient IDs
        Tag(0x0010, 0x1001), // Other Patient Names
        Tag(0x0010, 0x1005), // Patient's Birth Name
        Tag(0x0010, 0x1060), // Patient's Mother's Birth Name
        Tag(0x0008, 0x0050), // Accession Number
        Tag(0x0008, 0x0090), // Referring Physician's Name
        Tag(0x0008, 0x1050), // Performing Physicians' Name
        Tag(0x0008, 0x1060), // Name of Physician(s) Reading Study
        Tag(0x0008, 0x1070), // Operators' Name
        Tag(0x0008, 0x0080), // Institution Name
    ];
    let mut words: Vec<String> = SOURCES
        .iter()
        .filter_map(|&t| text(obj, t))
        .flat_map(|v| {
            v.split(|c: char| c == '^' || c == '\\' || c == '=' || c.is_whitespace() || c == ',')
                .map(|w| {
                    w.trim_matches(|c: char| !c.is_alphanumeric())
                        .to_lowercase()
                })
                .filter(|w| w.chars().count() >= 2)
                .collect::<Vec<_>>()
        })
        .collect();
    words.sort();
    words.dedup();
    words
}

/// Clean Descriptors: drops every word that is one of the patient's or
/// staff's names or identifiers, and every word holding five or more digits
/// (dates, phone numbers, record numbers). A heuristic, as the option
/// itself is: the standard leaves the method to the implementation.
pub fn clean_text(text: &str, identifiers: &[String]) -> String {
    text.split_whitespace()
        .filter(|w| {
            let bare = w
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase();
            let digits = w.chars().filter(char::is_ascii_digit).count();
            digits < 5 && !identifiers.contains(&bare)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn clean(
    obj: &mut InMemDicomObject,
    tag: Tag,
    vr: VR,
    ctx: &Context,
    out: &mut DeidOutcome,
) -> Result<()> {
    let Some(original) = text(obj, tag) else {
        return Ok(());
    };
    let cleaned = clean_text(&original, &ctx.identifiers);
    if cleaned != original {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(cleaned)));
        out.changes.push(change(tag, "cleaned"));
    }
    Ok(())
}

/// Patient Identity Removed, De-identification Method and its code
/// sequence (PS3.16 CID 7050 codes), and Longitudinal Temporal Information
/// Modified.
fn add_deid_records(obj: &mut InMemDicomObject, cfg: &DeidConfig) -> Result<()> {
    let mut methods = vec!["PS3.15 E.1 Basic Application Level Confidentiality Profile"];
    let mut codes = vec![("113100", "Basic Application Confidentiality Profile")];
    if cfg.retain_longitudinal_modified_dates {
        methods.push("Retain Longitudinal Temporal Information Modified Dates");
        codes.push((
            "113107",
            "Retain Longitudinal Temporal Information Modified Dates Option",
        ));
    }
    if cfg.clean_descriptors {
        methods.push("Clean Descriptors");
        codes.push(("113105", "Clean Descriptors Option"));
    }
    if cfg.keep_private_tags {
        methods.push("Private attributes retained");
    }
    obj.put(DataElement::new(
        Tag(0x0012, 0x0062),
        VR::CS,
        PrimitiveValue::from("YES"),
    ));
    let method_values: Vec<String> = methods
        .iter()
        .map(|m| m.chars().take(64).collect())
        .collect();
    obj.put(DataElement::new(
        Tag(0x0012, 0x0063),
        VR::LO,
        PrimitiveValue::Strs(method_values.into()),
    ));
    let items: Vec<InMemDicomObject> = codes
        .into_iter()
        .map(|(value, meaning)| {
            InMemDicomObject::from_element_iter([
                DataElement::new(Tag(0x0008, 0x0100), VR::SH, PrimitiveValue::from(value)),
                DataElement::new(Tag(0x0008, 0x0102), VR::SH, PrimitiveValue::from("DCM")),
                DataElement::new(Tag(0x0008, 0x0104), VR::LO, PrimitiveValue::from(meaning)),
            ])
        })
        .collect();
    obj.put(DataElement::new(
        Tag(0x0012, 0x0064),
        VR::SQ,
        DataSetSequence::new(items, Length::UNDEFINED),
    ));
    let temporal = if cfg.retain_longitudinal_modified_dates {
        "MODIFIED"
    } else {
        "REMOVED"
    };
    obj.put(DataElement::new(
        Tag(0x0028, 0x0303),
        VR::CS,
        PrimitiveValue::from(temporal),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(PROFILE.windows(2).all(|w| w[0].tag < w[1].tag));
        assert!(PROFILE.len() > 240);
        assert_eq!(
            profile_entry(Tag(0x0010, 0x0010)).map(|e| e.basic),
            Some(Action::Z)
        );
    }

    #[test]
    fn uid_remap_is_stable_keyed_and_valid() {
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        let a = remap_uid(&k1, "1.2.3.4");
        assert_eq!(a, remap_uid(&k1, "1.2.3.4"));
        assert_ne!(a, remap_uid(&k2, "1.2.3.4"));
        assert_ne!(a, remap_uid(&k1, "1.2.3.5"));
        assert!(a.starts_with("2.25.") && a.len() <= 64);
        assert!(a[5..].chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn dates_shift_across_months_and_leap_years() {
        assert_eq!(shift_date_value("20240301", -1), "20240229");
        assert_eq!(shift_date_value("20230301120000", -1), "20230228120000");
        assert_eq!(shift_date_value("2023", -1), "");
        assert_eq!(
            civil_from_days(days_from_civil(1999, 12, 31) + 1),
            (2000, 1, 1)
        );
    }

    #[test]
    fn cleaning_drops_names_and_numbers() {
        let ids = vec!["doe".to_string(), "12345678".to_string()];
        assert_eq!(
            clean_text("CT head Doe, 12345678 follow-up 2021-01-02", &ids),
            "CT head follow-up"
        );
    }
}
