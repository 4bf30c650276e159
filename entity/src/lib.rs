//! sea-orm entities of MedVision, one module per table.
//!
//! These are plain table mappings. Column values that have a domain meaning
//! (roles, modalities, urgencies, …) are stored as text and parsed into the
//! domain types of `app` at the data-layer boundary, so an invalid value in
//! the database surfaces as an error instead of a silently wrong enum.

pub mod api_token;
pub mod artefact;
pub mod audit_log;
pub mod batch;
pub mod case;
pub mod case_member;
pub mod dicom_node;
pub mod dicom_send;
pub mod finding;
pub mod finding_review;
pub mod instance;
pub mod job;
pub mod job_stage;
pub mod message;
pub mod notification;
pub mod org_threshold;
pub mod organization;
pub mod received_study;
pub mod report;
pub mod report_addendum;
pub mod series;
pub mod study;
pub mod user;

pub mod prelude {
    pub use super::api_token::Entity as ApiToken;
    pub use super::audit_log::Entity as AuditLog;
    pub use super::case::Entity as Case;
    pub use super::case_member::Entity as CaseMember;
    pub use super::organization::Entity as Organization;
    pub use super::user::Entity as User;
}
