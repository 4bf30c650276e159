//! DIMSE command sets (PS3.7 §9.3, §E): the few commands a storage node
//! sends and answers. Command sets are always Implicit VR Little Endian.

use crate::{InteropError, Result};
use dicom_core::{dicom_value, DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// PS3.7 Annex C status codes this node uses.
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    /// Refused: out of resources (a full disk, an instance over the size limit).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: data set does not match SOP class.
    pub const DATASET_MISMATCH: u16 = 0xA900;
    /// Error: cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Refused: SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
}

const C_STORE_RQ: u16 = 0x0001;
const C_STORE_RSP: u16 = 0x8001;
const C_ECHO_RQ: u16 = 0x0030;
const C_ECHO_RSP: u16 = 0x8030;
const NO_DATA_SET: u16 = 0x0101;

/// A request this node understands, or the field of one it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Echo {
        message_id: u16,
    },
    Store {
        message_id: u16,
        sop_class: String,
        sop_instance: String,
    },
    Other {
        command_field: u16,
        message_id: u16,
    },
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag, what: &str) -> Result<String> {
    let v = obj
        .element(tag)
        .map_err(|_| InteropError::Protocol(format!("command without {what}")))?
        .to_str()
        .map_err(|_| InteropError::Protocol(format!("unreadable {what}")))?;
    Ok(v.trim_end_matches(['\0', ' ']).to_owned())
}

fn u16_of(obj: &InMemDicomObject, tag: dicom_core::Tag, what: &str) -> Result<u16> {
    obj.element(tag)
        .map_err(|_| InteropError::Protocol(format!("command without {what}")))?
        .to_int::<u16>()
        .map_err(|_| InteropError::Protocol(format!("unreadable {what}")))
}

fn decode(bytes: &[u8]) -> Result<InMemDicomObject> {
    InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| InteropError::Protocol(format!("unreadable command set: {e}")))
}

fn encode(obj: &InMemDicomObject) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(160);
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| InteropError::Protocol(format!("encoding a command set: {e}")))?;
    Ok(out)
}

pub fn parse_request(bytes: &[u8]) -> Result<Request> {
    let obj = decode(bytes)?;
    let field = u16_of(&obj, tags::COMMAND_FIELD, "Command Field")?;
    let message_id = u16_of(&obj, tags::MESSAGE_ID, "Message ID")?;
    Ok(match field {
        C_ECHO_RQ => Request::Echo { message_id },
        C_STORE_RQ => Request::Store {
            message_id,
            sop_class: text(&obj, tags::AFFECTED_SOP_CLASS_UID, "Affected SOP Class UID")?,
            sop_instance: text(
                &obj,
                tags::AFFECTED_SOP_INSTANCE_UID,
                "Affected SOP Instance UID",
            )?,
        },
        other => Request::Other {
            command_field: other,
            message_id,
        },
    })
}

pub fn echo_response(message_id: u16) -> Result<Vec<u8>> {
    encode(&InMemDicomObject::command_from_element_iter([
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            dicom_value!(Str, VERIFICATION),
        ),
        DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [C_ECHO_RSP])),
        DataElement::new(
            tags::MESSAGE_ID_BEING_RESPONDED_TO,
            VR::US,
            dicom_value!(U16, [message_id]),
        ),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            dicom_value!(U16, [NO_DATA_SET]),
        ),
        DataElement::new(tags::STATUS, VR::US, dicom_value!(U16, [status::SUCCESS])),
    ]))
}

pub fn store_response(
    message_id: u16,
    sop_class: &str,
    sop_instance: &str,
    code: u16,
) -> Result<Vec<u8>> {
    encode(&InMemDicomObject::command_from_element_iter([
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            dicom_value!(Str, sop_class),
        ),
        DataElement::new(
            tags::COMMAND_FIELD,
            VR::US,
            dicom_value!(U16, [C_STORE_RSP]),
        ),
        DataElement::new(
            tags::MESSAGE_ID_BEING_RESPONDED_TO,
            VR::US,
            dicom_value!(U16, [message_id]),
        ),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            dicom_value!(U16, [NO_DATA_SET]),
        ),
        DataElement::new(tags::STATUS, VR::US, dicom_value!(U16, [code])),
        DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            dicom_value!(Str, sop_instance),
        ),
    ]))
}

pub fn store_request(message_id: u16, sop_class: &str, sop_instance: &str) -> Result<Vec<u8>> {
    encode(&InMemDicomObject::command_from_element_iter([
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            dicom_value!(Str, sop_class),
        ),
        DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [C_STORE_RQ])),
        DataElement::new(tags::MESSAGE_ID, VR::US, dicom_value!(U16, [message_id])),
        // Medium priority.
        DataElement::new(tags::PRIORITY, VR::US, dicom_value!(U16, [0x0000])),
        // Any value other than 0x0101 announces a data set.
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            dicom_value!(U16, [0x0000]),
        ),
        DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            dicom_value!(Str, sop_instance),
        ),
    ]))
}

pub fn echo_request(message_id: u16) -> Result<Vec<u8>> {
    encode(&InMemDicomObject::command_from_element_iter([
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            dicom_value!(Str, VERIFICATION),
        ),
        DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [C_ECHO_RQ])),
        DataElement::new(tags::MESSAGE_ID, VR::US, dicom_value!(U16, [message_id])),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            dicom_value!(U16, [NO_DATA_SET]),
        ),
    ]))
}

/// One P-DATA-TF PDU carrying a whole command set.
pub fn command_pdu(presentation_context_id: u8, command: Vec<u8>) -> dicom_ul::Pdu {
    dicom_ul::Pdu::PData {
        data: vec![dicom_ul::pdu::PDataValue {
            presentation_context_id,
            value_type: dicom_ul::pdu::PDataValueType::Command,
            is_last: true,
            data: command,
        }],
    }
}

/// The Status of a response command set.
pub fn response_status(bytes: &[u8]) -> Result<u16> {
    u16_of(&decode(bytes)?, tags::STATUS, "Status")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_request_round_trips_and_responses_carry_their_status() {
        let rq = store_request(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4").expect("encode");
        assert_eq!(
            parse_request(&rq).expect("parse"),
            Request::Store {
                message_id: 7,
                sop_class: "1.2.840.10008.5.1.4.1.1.2".into(),
                sop_instance: "1.2.3.4".into()
            }
        );
        let rsp = store_response(
            7,
            "1.2.840.10008.5.1.4.1.1.2",
            "1.2.3.4",
            status::OUT_OF_RESOURCES,
        )
        .expect("encode");
        assert_eq!(response_status(&rsp).expect("status"), 0xA700);
        // The group length (0000,0000) is first and counts the rest.
        let len = u32::from_le_bytes([rsp[8], rsp[9], rsp[10], rsp[11]]) as usize;
        assert_eq!(len, rsp.len() - 12);
    }

    #[test]
    fn garbage_is_a_protocol_error_not_a_panic() {
        assert!(parse_request(&[0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        assert!(parse_request(&[]).is_err());
    }
}
