//! Schema migrations. Each migration describes the schema as it was written,
//! with its own identifiers, and never imports today's entities, so old
//! migrations keep compiling while the entities move on.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_accounts;
mod m20261123_000002_cases;
mod m20261123_000003_audit;
mod m20261124_000004_imaging;
mod m20261124_000005_pipeline;
mod m20261124_000006_reports;
mod m20261124_000007_review;
mod m20261124_000008_chat;
mod m20261124_000009_thresholds;
mod m20261124_000010_dicom;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_accounts::Migration),
            Box::new(m20261123_000002_cases::Migration),
            Box::new(m20261123_000003_audit::Migration),
            Box::new(m20261124_000004_imaging::Migration),
            Box::new(m20261124_000005_pipeline::Migration),
            Box::new(m20261124_000006_reports::Migration),
            Box::new(m20261124_000007_review::Migration),
            Box::new(m20261124_000008_chat::Migration),
            Box::new(m20261124_000009_thresholds::Migration),
            Box::new(m20261124_000010_dicom::Migration),
        ]
    }
}
