//! A Secondary Capture image (PS3.3 A.8.1) of a key image with MedVision's
//! heatmap or mask overlay burned in, marked as derived, so the PACS shows
//! where the model looked beside the original series.

use crate::{InteropError, Result};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use std::path::Path;

pub const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";

#[derive(Clone, Debug)]
pub struct KeyImage {
    pub sop_instance_uid: String,
    pub series_instance_uid: String,
    pub study_uid: String,
    pub patient_id: String,
    pub patient_sex: String,
    pub study_date: String,
    pub study_time: String,
    pub instance_number: u32,
    /// What the overlay is and which model made it, e.g. "Grad-CAM heatmap
    /// for intraparenchymal, AI suggestion (ich-demo 1.0.0)".
    pub derivation: String,
    pub rows: u16,
    pub columns: u16,
    /// Row-major RGB, 3 bytes per pixel.
    pub rgb: Vec<u8>,
    pub content_date: String,
    pub content_time: String,
}

fn s(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v.to_owned()))
}

fn us(tag: Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

impl KeyImage {
    pub fn to_object(&self) -> Result<InMemDicomObject> {
        let expected = usize::from(self.rows) * usize::from(self.columns) * 3;
        if self.rows == 0 || self.columns == 0 || self.rgb.len() != expected {
            return Err(InteropError::Invalid(format!(
                "key image is {}x{} but has {} bytes of RGB",
                self.rows,
                self.columns,
                self.rgb.len()
            )));
        }
        for uid in [
            &self.sop_instance_uid,
            &self.series_instance_uid,
            &self.study_uid,
        ] {
            if !crate::valid_uid(uid) {
                return Err(InteropError::Invalid("invalid UID".into()));
            }
        }
        let mut o = InMemDicomObject::new_empty();
        o.put(s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"));
        o.put(s(tags::SOP_CLASS_UID, VR::UI, SECONDARY_CAPTURE));
        o.put(s(tags::SOP_INSTANCE_UID, VR::UI, &self.sop_instance_uid));
        // General Image: derived, secondary.
        o.put(DataElement::new(
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::Strs(["DERIVED".to_owned(), "SECONDARY".to_owned()].into()),
        ));
        o.put(s(tags::CONTENT_DATE, VR::DA, &self.content_date));
        o.put(s(tags::CONTENT_TIME, VR::TM, &self.content_time));
        o.put(s(
            tags::DERIVATION_DESCRIPTION,
            VR::ST,
            &self.derivation.chars().take(1024).collect::<String>(),
        ));
        o.put(s(tags::BURNED_IN_ANNOTATION, VR::CS, "NO"));
        o.put(s(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"));
        o.put(s(
            tags::INSTANCE_NUMBER,
            VR::IS,
            &self.instance_number.to_string(),
        ));
        // Patient and General Study (type 2: present, possibly empty).
        o.put(s(tags::PATIENT_NAME, VR::PN, ""));
        o.put(s(
            tags::PATIENT_ID,
            VR::LO,
            &self.patient_id.chars().take(64).collect::<String>(),
        ));
        o.put(s(tags::PATIENT_BIRTH_DATE, VR::DA, ""));
        o.put(s(tags::PATIENT_SEX, VR::CS, &self.patient_sex));
        o.put(s(tags::STUDY_INSTANCE_UID, VR::UI, &self.study_uid));
        o.put(s(tags::STUDY_DATE, VR::DA, &self.study_date));
        o.put(s(tags::STUDY_TIME, VR::TM, &self.study_time));
        o.put(s(tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""));
        o.put(s(tags::STUDY_ID, VR::SH, ""));
        o.put(s(tags::ACCESSION_NUMBER, VR::SH, ""));
        // General Series, SC Equipment.
        o.put(s(tags::MODALITY, VR::CS, "OT"));
        o.put(s(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            &self.series_instance_uid,
        ));
        o.put(s(tags::SERIES_NUMBER, VR::IS, "9002"));
        o.put(s(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            "MedVision key images (AI overlay)",
        ));
        o.put(s(tags::CONVERSION_TYPE, VR::CS, "WSD"));
        o.put(s(tags::MANUFACTURER, VR::LO, "MedVision"));
        o.put(s(
            tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER,
            VR::LO,
            "MedVision",
        ));
        o.put(s(
            tags::SECONDARY_CAPTURE_DEVICE_SOFTWARE_VERSIONS,
            VR::LO,
            env!("CARGO_PKG_VERSION"),
        ));
        // Image Pixel: 8-bit RGB, pixel-interleaved.
        o.put(us(tags::SAMPLES_PER_PIXEL, 3));
        o.put(s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"));
        o.put(us(tags::PLANAR_CONFIGURATION, 0));
        o.put(us(tags::ROWS, self.rows));
        o.put(us(tags::COLUMNS, self.columns));
        o.put(us(tags::BITS_ALLOCATED, 8));
        o.put(us(tags::BITS_STORED, 8));
        o.put(us(tags::HIGH_BIT, 7));
        o.put(us(tags::PIXEL_REPRESENTATION, 0));
        let mut px = self.rgb.clone();
        if px.len() % 2 == 1 {
            px.push(0);
        }
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::from(px),
        ));
        Ok(o)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        crate::write_part10(
            self.to_object()?,
            SECONDARY_CAPTURE,
            &self.sop_instance_uid,
            path,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rgb: Vec<u8>) -> KeyImage {
        KeyImage {
            sop_instance_uid: "2.25.7".into(),
            series_instance_uid: "2.25.8".into(),
            study_uid: "2.25.9".into(),
            patient_id: "P".into(),
            patient_sex: "".into(),
            study_date: "".into(),
            study_time: "".into(),
            instance_number: 1,
            derivation: "Grad-CAM heatmap".into(),
            rows: 2,
            columns: 3,
            rgb,
            content_date: "20261124".into(),
            content_time: "101010".into(),
        }
    }

    #[test]
    fn pixels_must_fill_the_matrix() {
        assert!(key(vec![0; 18]).to_object().is_ok());
        assert!(key(vec![0; 17]).to_object().is_err());
    }

    #[test]
    fn the_written_image_reads_back_with_its_pixels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sc.dcm");
        let rgb: Vec<u8> = (0..18).collect();
        key(rgb.clone()).write(&p).expect("write");
        let f = imaging::dicom::open(&p).expect("open");
        let frame = f.decode_frame(0).expect("frame");
        assert_eq!(frame.data.to_le_bytes(), rgb);
    }
}
