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
    OrgId,
    OwnerId,
    PatientRef,
    Age,
    Sex,
    Modality,
    BodyPart,
    Urgency,
    UrgencyRank,
    History,
    Status,
    CreatedAt,
    UpdatedAt,
    ClosedAt,
}

#[derive(DeriveIden)]
enum CaseMembers {
    Table,
    CaseId,
    UserId,
    AddedBy,
    AddedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Cases::Table)
                .col(ColumnDef::new(Cases::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Cases::OrgId).uuid().not_null())
                .col(ColumnDef::new(Cases::OwnerId).uuid().not_null())
                .col(ColumnDef::new(Cases::PatientRef).string_len(64).not_null())
                .col(ColumnDef::new(Cases::Age).integer().null())
                .col(ColumnDef::new(Cases::Sex).string_len(1).not_null())
                .col(ColumnDef::new(Cases::Modality).string_len(8).not_null())
                .col(ColumnDef::new(Cases::BodyPart).string_len(64).not_null())
                .col(ColumnDef::new(Cases::Urgency).string_len(8).not_null())
                .col(
                    ColumnDef::new(Cases::UrgencyRank)
                        .small_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(Cases::History).text().not_null())
                .col(ColumnDef::new(Cases::Status).string_len(8).not_null())
                .col(
                    ColumnDef::new(Cases::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Cases::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Cases::ClosedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Cases::Table, Cases::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Cases::Table, Cases::OwnerId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;
        // The worklist query: one organisation, most urgent first, newest first.
        m.create_index(
            Index::create()
                .name("idx_cases_worklist")
                .table(Cases::Table)
                .col(Cases::OrgId)
                .col(Cases::UrgencyRank)
                .col(Cases::CreatedAt)
                .col(Cases::Id)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(CaseMembers::Table)
                .col(ColumnDef::new(CaseMembers::CaseId).uuid().not_null())
                .col(ColumnDef::new(CaseMembers::UserId).uuid().not_null())
                .col(ColumnDef::new(CaseMembers::AddedBy).uuid().not_null())
                .col(
                    ColumnDef::new(CaseMembers::AddedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(CaseMembers::CaseId)
                        .col(CaseMembers::UserId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(CaseMembers::Table, CaseMembers::CaseId)
                        .to(Cases::Table, Cases::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(CaseMembers::Table, CaseMembers::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_case_members_user")
                .table(CaseMembers::Table)
                .col(CaseMembers::UserId)
                .col(CaseMembers::CaseId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(CaseMembers::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Cases::Table).to_owned())
            .await
    }
}
