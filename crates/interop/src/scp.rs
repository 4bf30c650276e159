//! A C-STORE / C-ECHO service class provider.
//!
//! Each association is a tokio task; a semaphore bounds how many run at
//! once and a connection over the bound gets an A-ASSOCIATE-RJ (transient,
//! local limit exceeded) instead of a queue. dicom-ul reads PDUs in strict
//! mode, so a PDU declaring more than the negotiated maximum (a "2 GB"
//! length) is refused before anything is allocated; data sets are bounded
//! by `max_instance_bytes`; every read has a timeout, so a silent or slow
//! peer frees its slot.

use crate::dimse::{self, status, Request};
use crate::spool::Spool;
use crate::{InteropError, Result, STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES};
use dicom_ul::association::server::{AccessControl, ServerAssociationOptions};
use dicom_ul::association::Association;
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, PDataValueType,
    PresentationContextResultReason, UserIdentity,
};
use dicom_ul::Pdu;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// Which organisation a calling AE title stores into. The server keeps the
/// answer in memory: it is asked during association negotiation.
pub trait Gate: Send + Sync + 'static {
    /// The tenant (a folder-safe name) for this calling AE title, or `None`
    /// to reject the association.
    fn tenant(&self, calling_ae: &str) -> Option<String>;
}

#[derive(Clone, Debug)]
pub struct ScpConfig {
    /// This node's AE title; associations calling another are rejected.
    pub ae_title: String,
    /// Associations served at once.
    pub max_associations: usize,
    /// Largest PDU accepted (and announced).
    pub max_pdu_length: u32,
    /// Largest data set accepted in one C-STORE.
    pub max_instance_bytes: usize,
    /// Longest silence from a peer inside an association.
    pub timeout: Duration,
}

impl Default for ScpConfig {
    fn default() -> Self {
        Self {
            ae_title: "MEDVISION".into(),
            max_associations: 32,
            max_pdu_length: 64 * 1024,
            max_instance_bytes: 512 * 1024 * 1024,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Counters since start, for metrics and tests.
#[derive(Default, Debug)]
pub struct ScpStats {
    pub associations: AtomicU64,
    pub rejected: AtomicU64,
    pub stored: AtomicU64,
    pub failed: AtomicU64,
    pub echoes: AtomicU64,
}

pub struct Scp {
    cfg: ScpConfig,
    gate: Arc<dyn Gate>,
    spool: Arc<Spool>,
    slots: Arc<Semaphore>,
    pub stats: Arc<ScpStats>,
}

struct GateAccess(Arc<dyn Gate>);

impl AccessControl for GateAccess {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user: Option<&UserIdentity>,
    ) -> std::result::Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        match self.0.tenant(calling_ae_title.trim()) {
            Some(_) => Ok(()),
            None => Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized),
        }
    }
}

impl Scp {
    pub fn new(cfg: ScpConfig, gate: Arc<dyn Gate>, spool: Arc<Spool>) -> Self {
        let slots = Arc::new(Semaphore::new(cfg.max_associations.max(1)));
        Self {
            cfg,
            gate,
            spool,
            slots,
            stats: Arc::default(),
        }
    }

    /// Accepts associations until `shutdown` turns true; associations in
    /// progress finish on their own (or time out).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let (socket, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "DICOM listener accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            if *shutdown.borrow() {
                return;
            }
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, "DICOM association refused: connection limit reached");
                tokio::spawn(refuse_busy(socket));
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.association(socket, peer).await {
                    tracing::info!(%peer, error = %e, "DICOM association ended");
                }
                drop(permit);
            });
        }
    }

    async fn association(&self, socket: TcpStream, peer: SocketAddr) -> Result<()> {
        let _ = socket.set_nodelay(true);
        let mut options = ServerAssociationOptions::new()
            .ae_access_control(GateAccess(self.gate.clone()))
            .ae_title(self.cfg.ae_title.clone())
            .max_pdu_length(self.cfg.max_pdu_length)
            .strict(true)
            .read_timeout(self.cfg.timeout)
            .write_timeout(self.cfg.timeout)
            .with_abstract_syntax(dimse::VERIFICATION);
        for c in STORAGE_SOP_CLASSES {
            options = options.with_abstract_syntax(*c);
        }
        for ts in TRANSFER_SYNTAXES {
            options = options.with_transfer_syntax(*ts);
        }
        let mut assoc = match options.establish_async(socket).await {
            Ok(a) => a,
            Err(e) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(InteropError::Refused(e.to_string()));
            }
        };
        let calling = assoc.peer_ae_title().trim().to_owned();
        let Some(tenant) = self.gate.tenant(&calling) else {
            let _ = assoc.abort().await;
            return Err(InteropError::Refused(format!(
                "{calling} no longer allowed"
            )));
        };
        self.stats.associations.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%peer, calling_ae = %calling, "DICOM association accepted");
        let contexts: Vec<(u8, String)> = assoc
            .presentation_contexts()
            .iter()
            .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
            .map(|pc| (pc.id, pc.transfer_syntax.trim_end_matches('\0').to_owned()))
            .collect();

        let mut command: Vec<u8> = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        let mut pending: Option<(u16, String, String, u8)> = None;
        let mut oversize = false;
        loop {
            let pdu = match assoc.receive().await {
                Ok(p) => p,
                Err(e) => return Err(InteropError::Protocol(e.to_string())),
            };
            match pdu {
                Pdu::PData { data: values } => {
                    for v in values {
                        match v.value_type {
                            PDataValueType::Command => {
                                if command.len() + v.data.len() > 64 * 1024 {
                                    let _ = assoc.abort().await;
                                    return Err(InteropError::Protocol("oversized command".into()));
                                }
                                command.extend_from_slice(&v.data);
                                if !v.is_last {
                                    continue;
                                }
                                let req = dimse::parse_request(&command);
                                command.clear();
                                match req {
                                    Ok(Request::Echo { message_id }) => {
                                        self.stats.echoes.fetch_add(1, Ordering::Relaxed);
                                        let rsp = dimse::echo_response(message_id)?;
                                        send_command(&mut assoc, v.presentation_context_id, rsp)
                                            .await?;
                                    }
                                    Ok(Request::Store {
                                        message_id,
                                        sop_class,
                                        sop_instance,
                                    }) => {
                                        data.clear();
                                        oversize = false;
                                        pending = Some((
                                            message_id,
                                            sop_class,
                                            sop_instance,
                                            v.presentation_context_id,
                                        ));
                                    }
                                    Ok(Request::Other { command_field, .. }) => {
                                        let _ = assoc.abort().await;
                                        return Err(InteropError::Protocol(format!(
                                            "unsupported DIMSE command 0x{command_field:04X}"
                                        )));
                                    }
                                    Err(e) => {
                                        let _ = assoc.abort().await;
                                        return Err(e);
                                    }
                                }
                            }
                            PDataValueType::Data => {
                                let Some((message_id, class, instance, pc)) = pending.clone()
                                else {
                                    let _ = assoc.abort().await;
                                    return Err(InteropError::Protocol(
                                        "data without a C-STORE request".into(),
                                    ));
                                };
                                if !oversize {
                                    if data.len() + v.data.len() > self.cfg.max_instance_bytes {
                                        oversize = true;
                                        data = Vec::new();
                                    } else {
                                        data.extend_from_slice(&v.data);
                                    }
                                }
                                if !v.is_last {
                                    continue;
                                }
                                pending = None;
                                let code = if oversize {
                                    tracing::warn!(calling_ae = %calling, "instance over the size limit refused");
                                    status::OUT_OF_RESOURCES
                                } else {
                                    self.store(
                                        &tenant,
                                        &calling,
                                        &contexts,
                                        pc,
                                        &class,
                                        &instance,
                                        std::mem::take(&mut data),
                                    )
                                    .await
                                };
                                if code == status::SUCCESS {
                                    self.stats.stored.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                                }
                                let rsp =
                                    dimse::store_response(message_id, &class, &instance, code)?;
                                send_command(&mut assoc, pc, rsp).await?;
                            }
                        }
                    }
                }
                Pdu::ReleaseRQ => {
                    let _ = assoc.send(&Pdu::ReleaseRP).await;
                    return Ok(());
                }
                Pdu::AbortRQ { .. } => return Ok(()),
                other => {
                    let _ = assoc.abort().await;
                    return Err(InteropError::Protocol(format!(
                        "unexpected {}",
                        other.short_description()
                    )));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn store(
        &self,
        tenant: &str,
        calling: &str,
        contexts: &[(u8, String)],
        pc: u8,
        class: &str,
        instance: &str,
        data: Vec<u8>,
    ) -> u16 {
        let Some(ts) = contexts
            .iter()
            .find(|(id, _)| *id == pc)
            .map(|(_, ts)| ts.clone())
        else {
            return status::CANNOT_UNDERSTAND;
        };
        if !STORAGE_SOP_CLASSES.contains(&class) {
            return status::SOP_CLASS_NOT_SUPPORTED;
        }
        let spool = self.spool.clone();
        let (tenant, calling, class, instance) = (
            tenant.to_owned(),
            calling.to_owned(),
            class.to_owned(),
            instance.to_owned(),
        );
        let r = tokio::task::spawn_blocking(move || {
            spool.store(&tenant, &calling, &ts, &class, &instance, &data)
        })
        .await;
        match r {
            Ok(Ok(())) => status::SUCCESS,
            Ok(Err(refusal)) => {
                tracing::warn!(reason = %refusal.reason, "DICOM instance refused");
                refusal.status
            }
            Err(_) => status::OUT_OF_RESOURCES,
        }
    }
}

async fn send_command(
    assoc: &mut dicom_ul::association::server::AsyncServerAssociation<TcpStream>,
    pc: u8,
    bytes: Vec<u8>,
) -> Result<()> {
    assoc
        .send(&dimse::command_pdu(pc, bytes))
        .await
        .map_err(|e| InteropError::Protocol(e.to_string()))
}

/// A-ASSOCIATE-RJ: transient, service provider (presentation), local limit
/// exceeded (PS3.8 §9.3.4): the sender should try again later.
async fn refuse_busy(mut socket: TcpStream) {
    let mut buf = Vec::new();
    let rj = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    if dicom_ul::pdu::write_pdu(&mut buf, &rj).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.write_all(&buf)).await;
    }
    let _ = socket.shutdown().await;
}
