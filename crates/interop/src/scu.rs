//! C-ECHO and C-STORE to a remote node (a PACS, a modality, dcmtk's
//! storescp): how MedVision sends its results back.

use crate::dimse::{self, status};
use crate::{InteropError, Result};
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::open_file;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::client::{AsyncClientAssociation, ClientAssociationOptions};
use dicom_ul::pdu::{PDataValueType, PresentationContextResultReason};
use dicom_ul::Pdu;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A remote application entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub port: u16,
    pub ae_title: String,
}

impl Node {
    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// What each file's C-STORE came back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub file: PathBuf,
    pub status: u16,
}

impl Sent {
    pub fn ok(&self) -> bool {
        // Warnings (0xB000, 0x0107, 0x0116) still mean stored.
        self.status == status::SUCCESS
            || self.status == 0x0107
            || self.status == 0x0116
            || (self.status & 0xF000) == 0xB000
    }
}

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";

fn connect_err(node: &Node, e: impl std::fmt::Display) -> InteropError {
    InteropError::Connect {
        addr: format!("{}@{}", node.ae_title, node.addr()),
        reason: e.to_string(),
    }
}

async fn exchange(
    assoc: &mut AsyncClientAssociation<TcpStream>,
    pc: u8,
    command: Vec<u8>,
    dataset: Option<&[u8]>,
) -> Result<u16> {
    let proto = |e: dicom_ul::association::Error| InteropError::Protocol(e.to_string());
    assoc
        .send(&dimse::command_pdu(pc, command))
        .await
        .map_err(proto)?;
    if let Some(data) = dataset {
        let mut w = assoc.send_pdata(pc);
        w.write_all(data).await?;
        w.finish().await?;
    }
    let mut rsp = Vec::new();
    loop {
        match assoc.receive().await.map_err(proto)? {
            Pdu::PData { data } => {
                for v in data {
                    if v.value_type == PDataValueType::Command {
                        rsp.extend_from_slice(&v.data);
                        if v.is_last {
                            return dimse::response_status(&rsp);
                        }
                    }
                }
            }
            other => {
                return Err(InteropError::Protocol(format!(
                    "expected a response, got {}",
                    other.short_description()
                )))
            }
        }
    }
}

/// C-ECHO: is the node there and does it accept us?
pub async fn echo(node: &Node, calling_ae: &str, timeout: Duration) -> Result<()> {
    let mut assoc = ClientAssociationOptions::new()
        .calling_ae_title(calling_ae.to_owned())
        .called_ae_title(node.ae_title.clone())
        .with_presentation_context(dimse::VERIFICATION.to_owned(), vec![IMPLICIT_LE.to_owned()])
        .read_timeout(timeout)
        .write_timeout(timeout)
        .connection_timeout(timeout)
        .establish_async(node.addr())
        .await
        .map_err(|e| connect_err(node, e))?;
    let pc = assoc
        .presentation_contexts()
        .first()
        .map(|p| p.id)
        .ok_or_else(|| InteropError::Refused("no presentation context".into()))?;
    let code = exchange(&mut assoc, pc, dimse::echo_request(1)?, None).await?;
    let _ = assoc.release().await;
    if code == status::SUCCESS {
        Ok(())
    } else {
        Err(InteropError::Refused(format!("C-ECHO status 0x{code:04X}")))
    }
}

struct Outgoing {
    file: PathBuf,
    class: String,
    instance: String,
    ts: String,
    obj: dicom_object::DefaultDicomObject,
}

/// C-STORE of every file over one association. Each file gets its status;
/// an error is returned only when no association could be made.
pub async fn store(
    node: &Node,
    calling_ae: &str,
    files: &[PathBuf],
    timeout: Duration,
) -> Result<Vec<Sent>> {
    let mut outgoing = Vec::with_capacity(files.len());
    for f in files {
        let path = f.clone();
        let obj = tokio::task::spawn_blocking(move || open_file(&path))
            .await
            .map_err(|e| InteropError::Invalid(e.to_string()))?
            .map_err(|e| InteropError::Invalid(format!("{}: {e}", f.display())))?;
        let meta = obj.meta();
        outgoing.push(Outgoing {
            file: f.clone(),
            class: meta.media_storage_sop_class_uid().to_owned(),
            instance: meta.media_storage_sop_instance_uid().to_owned(),
            ts: meta.transfer_syntax().to_owned(),
            obj,
        });
    }
    // One proposal per (SOP class, transfer syntax); native data sets may
    // also go as Explicit or Implicit VR Little Endian.
    let mut proposals: Vec<(String, Vec<String>)> = Vec::new();
    for o in &outgoing {
        let native = TransferSyntaxRegistry.get(&o.ts).is_some_and(|t| {
            !t.is_encapsulated_pixel_data() && t.uid() != "1.2.840.10008.1.2.1.99"
        });
        let mut tss = vec![o.ts.clone()];
        if native {
            for t in [EXPLICIT_LE, IMPLICIT_LE] {
                if o.ts != t {
                    tss.push(t.to_owned());
                }
            }
        }
        if !proposals.iter().any(|(c, t)| *c == o.class && t[0] == o.ts) {
            proposals.push((o.class.clone(), tss));
        }
    }
    if proposals.len() > 128 {
        return Err(InteropError::Invalid(
            "more than 128 kinds of object in one send".into(),
        ));
    }
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(calling_ae.to_owned())
        .called_ae_title(node.ae_title.clone())
        .read_timeout(timeout)
        .write_timeout(timeout)
        .connection_timeout(timeout);
    for (class, tss) in &proposals {
        options = options.with_presentation_context(class.clone(), tss.clone());
    }
    let mut assoc = options
        .establish_async(node.addr())
        .await
        .map_err(|e| connect_err(node, e))?;
    let accepted: Vec<(u8, String, String)> = assoc
        .presentation_contexts()
        .iter()
        .filter(|p| p.reason == PresentationContextResultReason::Acceptance)
        .map(|p| {
            (
                p.id,
                p.abstract_syntax.trim_end_matches('\0').to_owned(),
                p.transfer_syntax.trim_end_matches('\0').to_owned(),
            )
        })
        .collect();
    let mut out = Vec::with_capacity(outgoing.len());
    for (i, o) in outgoing.iter().enumerate() {
        // The peer's choice for this class, preferring the file's own syntax.
        let chosen = accepted
            .iter()
            .filter(|(_, c, _)| *c == o.class)
            .min_by_key(|(_, _, t)| *t != o.ts);
        let Some((pc, _, ts)) = chosen else {
            out.push(Sent {
                file: o.file.clone(),
                status: status::SOP_CLASS_NOT_SUPPORTED,
            });
            continue;
        };
        let Some(target) = TransferSyntaxRegistry.get(ts) else {
            out.push(Sent {
                file: o.file.clone(),
                status: status::CANNOT_UNDERSTAND,
            });
            continue;
        };
        let mut data = Vec::new();
        if let Err(e) = o.obj.write_dataset_with_ts(&mut data, target) {
            tracing::warn!(error = %e, "could not encode an instance for sending");
            out.push(Sent {
                file: o.file.clone(),
                status: status::CANNOT_UNDERSTAND,
            });
            continue;
        }
        let id = u16::try_from(i % 65_535 + 1).unwrap_or(1);
        let cmd = dimse::store_request(id, &o.class, &o.instance)?;
        let code = exchange(&mut assoc, *pc, cmd, Some(&data)).await?;
        out.push(Sent {
            file: o.file.clone(),
            status: code,
        });
    }
    let _ = assoc.release().await;
    Ok(out)
}
