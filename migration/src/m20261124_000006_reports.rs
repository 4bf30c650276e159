//! Draft and signed reports: one per case, written by the pipeline's
//! drafting stage (LLM or built-in writer) and later signed by a person.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Cases {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Reports {
    Table,
    Id,
    OrgId,
    CaseId,
    Status,
    Writer,
    Body,
    Sources,
    JobId,
    Revision,
    CreatedAt,
    UpdatedAt,
    SignedBy,
    SignedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Reports::Table)
                .col(ColumnDef::new(Reports::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Reports::OrgId).uuid().not_null())
                .col(ColumnDef::new(Reports::CaseId).uuid().not_null())
                .col(ColumnDef::new(Reports::Status).string_len(16).not_null())
                .col(ColumnDef::new(Reports::Writer).string_len(16).not_null())
                .col(ColumnDef::new(Reports::Body).text().not_null())
                .col(ColumnDef::new(Reports::Sources).text().not_null())
                .col(ColumnDef::new(Reports::JobId).uuid().null())
                .col(ColumnDef::new(Reports::Revision).integer().not_null())
                .col(
                    ColumnDef::new(Reports::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Reports::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(Reports::SignedBy).uuid().null())
                .col(
                    ColumnDef::new(Reports::SignedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Reports::Table, Reports::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Reports::Table, Reports::CaseId)
                        .to(Cases::Table, Cases::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // One report per case: concurrent drafts of two studies upsert it.
        m.create_index(
            Index::create()
                .name("idx_reports_case")
                .table(Reports::Table)
                .col(Reports::CaseId)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Reports::Table).to_owned())
            .await
    }
}
