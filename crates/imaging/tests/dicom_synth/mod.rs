//! Synthetic DICOM written with dicom-object, for tests that need geometry
//! or values chosen on purpose (the real corpus covers the codecs).
#![allow(dead_code)]

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};

pub struct CtSlice<'a> {
    pub series_uid: &'a str,
    pub sop_uid: &'a str,
    pub position: [f64; 3],
    pub orientation: [f64; 6],
    pub rows: u16,
    pub columns: u16,
    pub pixel_spacing: [f64; 2],
    pub stored: Vec<i16>,
    pub slope: f64,
    pub intercept: f64,
    pub photometric: &'a str,
    pub window: Option<(f64, f64)>,
}

impl Default for CtSlice<'_> {
    fn default() -> Self {
        CtSlice {
            series_uid: "1.2.826.0.1.3680043.2.1125.9.1",
            sop_uid: "1.2.826.0.1.3680043.2.1125.9.1.1",
            position: [0.0; 3],
            orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            rows: 4,
            columns: 4,
            pixel_spacing: [1.0, 1.0],
            stored: vec![0; 16],
            slope: 1.0,
            intercept: -1024.0,
            photometric: "MONOCHROME2",
            window: None,
        }
    }
}

fn ds(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|v| format!("{v}")).collect())
}

pub fn ct_slice(s: &CtSlice) -> FileDicomObject<InMemDicomObject> {
    let mut obj = InMemDicomObject::new_empty();
    let put = |obj: &mut InMemDicomObject, tag, vr, value: PrimitiveValue| {
        obj.put(DataElement::new(tag, vr, value));
    };
    put(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::CT_IMAGE_STORAGE.into(),
    );
    put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, s.sop_uid.into());
    put(
        &mut obj,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        "1.2.826.0.1.3680043.2.1125.9".into(),
    );
    put(
        &mut obj,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        s.series_uid.into(),
    );
    put(&mut obj, tags::MODALITY, VR::CS, "CT".into());
    put(
        &mut obj,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        ds(&s.position),
    );
    put(
        &mut obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        ds(&s.orientation),
    );
    put(&mut obj, tags::PIXEL_SPACING, VR::DS, ds(&s.pixel_spacing));
    put(&mut obj, tags::SAMPLES_PER_PIXEL, VR::US, 1u16.into());
    put(
        &mut obj,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        s.photometric.into(),
    );
    put(&mut obj, tags::ROWS, VR::US, s.rows.into());
    put(&mut obj, tags::COLUMNS, VR::US, s.columns.into());
    put(&mut obj, tags::BITS_ALLOCATED, VR::US, 16u16.into());
    put(&mut obj, tags::BITS_STORED, VR::US, 16u16.into());
    put(&mut obj, tags::HIGH_BIT, VR::US, 15u16.into());
    put(&mut obj, tags::PIXEL_REPRESENTATION, VR::US, 1u16.into());
    put(&mut obj, tags::RESCALE_SLOPE, VR::DS, ds(&[s.slope]));
    put(
        &mut obj,
        tags::RESCALE_INTERCEPT,
        VR::DS,
        ds(&[s.intercept]),
    );
    if let Some((c, w)) = s.window {
        put(&mut obj, tags::WINDOW_CENTER, VR::DS, ds(&[c]));
        put(&mut obj, tags::WINDOW_WIDTH, VR::DS, ds(&[w]));
    }
    put(
        &mut obj,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(s.stored.iter().map(|&v| v as u16).collect()),
    );
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .expect("meta")
}

pub fn to_bytes(obj: &FileDicomObject<InMemDicomObject>) -> Vec<u8> {
    let mut out = Vec::new();
    obj.write_all(&mut out).expect("write");
    out
}
