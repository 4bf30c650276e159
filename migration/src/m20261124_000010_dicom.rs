//! DICOM networking: the remote application entities an organisation
//! trusts (modalities and PACS that send to MedVision, PACS it sends results
//! to), and which case each study received over the network went into.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Cases {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum DicomNodes {
    Table,
    Id,
    OrgId,
    AeTitle,
    Kind,
    Host,
    Port,
    OwnerId,
    SendOnSign,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ReceivedStudies {
    Table,
    OrgId,
    StudyKey,
    CaseId,
    Origin,
    Instances,
    Handovers,
    FirstAt,
    LastAt,
}

/// The outbox of results for destinations: queued when a report is signed
/// (destinations with `send_on_sign`) or on request, sent with retries by
/// the server, each attempt's outcome kept.
#[derive(DeriveIden)]
enum DicomSends {
    Table,
    Id,
    OrgId,
    CaseId,
    NodeId,
    State,
    Attempts,
    LastError,
    RequestedBy,
    CreatedAt,
    NextAt,
    SentAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DicomNodes::Table)
                .col(
                    ColumnDef::new(DicomNodes::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(DicomNodes::OrgId).uuid().not_null())
                .col(
                    ColumnDef::new(DicomNodes::AeTitle)
                        .string_len(16)
                        .not_null(),
                )
                .col(ColumnDef::new(DicomNodes::Kind).string_len(16).not_null())
                .col(ColumnDef::new(DicomNodes::Host).string_len(255).not_null())
                .col(ColumnDef::new(DicomNodes::Port).integer().not_null())
                .col(ColumnDef::new(DicomNodes::OwnerId).uuid().not_null())
                .col(ColumnDef::new(DicomNodes::SendOnSign).boolean().not_null())
                .col(
                    ColumnDef::new(DicomNodes::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(DicomNodes::Table, DicomNodes::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(DicomNodes::Table, DicomNodes::OwnerId)
                        .to(Users::Table, Users::Id),
                )
                .to_owned(),
        )
        .await?;
        // A calling AE title names one organisation: the SCP decides the
        // tenant by it alone.
        m.create_index(
            Index::create()
                .name("ux_dicom_nodes_ae_kind")
                .table(DicomNodes::Table)
                .col(DicomNodes::AeTitle)
                .col(DicomNodes::Kind)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ReceivedStudies::Table)
                .col(ColumnDef::new(ReceivedStudies::OrgId).uuid().not_null())
                .col(
                    ColumnDef::new(ReceivedStudies::StudyKey)
                        .string_len(64)
                        .not_null(),
                )
                .col(ColumnDef::new(ReceivedStudies::CaseId).uuid().not_null())
                .col(
                    ColumnDef::new(ReceivedStudies::Origin)
                        .string_len(16)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ReceivedStudies::Instances)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ReceivedStudies::Handovers)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ReceivedStudies::FirstAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ReceivedStudies::LastAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(ReceivedStudies::OrgId)
                        .col(ReceivedStudies::StudyKey),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ReceivedStudies::Table, ReceivedStudies::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ReceivedStudies::Table, ReceivedStudies::CaseId)
                        .to(Cases::Table, Cases::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DicomSends::Table)
                .col(
                    ColumnDef::new(DicomSends::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(DicomSends::OrgId).uuid().not_null())
                .col(ColumnDef::new(DicomSends::CaseId).uuid().not_null())
                .col(ColumnDef::new(DicomSends::NodeId).uuid().not_null())
                .col(ColumnDef::new(DicomSends::State).string_len(16).not_null())
                .col(ColumnDef::new(DicomSends::Attempts).integer().not_null())
                .col(ColumnDef::new(DicomSends::LastError).text())
                .col(ColumnDef::new(DicomSends::RequestedBy).uuid().not_null())
                .col(
                    ColumnDef::new(DicomSends::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DicomSends::NextAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(DicomSends::SentAt).timestamp_with_time_zone())
                .foreign_key(
                    ForeignKey::create()
                        .from(DicomSends::Table, DicomSends::CaseId)
                        .to(Cases::Table, Cases::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(DicomSends::Table, DicomSends::NodeId)
                        .to(DicomNodes::Table, DicomNodes::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_dicom_sends_due")
                .table(DicomSends::Table)
                .col(DicomSends::State)
                .col(DicomSends::NextAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(DicomSends::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(ReceivedStudies::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(DicomNodes::Table).to_owned())
            .await
    }
}
