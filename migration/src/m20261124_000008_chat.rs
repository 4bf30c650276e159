//! Case chat: messages (an increasing id, so a client resumes after the
//! last one it saw) and the notifications their @mentions create.

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
enum Messages {
    Table,
    Id,
    OrgId,
    CaseId,
    AuthorId,
    Body,
    FindingId,
    InstanceId,
    Frame,
    Mentions,
    CreatedAt,
    EditedAt,
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    OrgId,
    UserId,
    CaseId,
    MessageId,
    Kind,
    CreatedAt,
    ReadAt,
}

fn at(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Messages::Table)
                .col(
                    ColumnDef::new(Messages::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(Messages::OrgId).uuid().not_null())
                .col(ColumnDef::new(Messages::CaseId).uuid().not_null())
                .col(ColumnDef::new(Messages::AuthorId).uuid().not_null())
                .col(ColumnDef::new(Messages::Body).text().not_null())
                .col(ColumnDef::new(Messages::FindingId).uuid().null())
                .col(ColumnDef::new(Messages::InstanceId).uuid().null())
                .col(ColumnDef::new(Messages::Frame).integer().null())
                .col(ColumnDef::new(Messages::Mentions).text().not_null())
                .col(at(Messages::CreatedAt))
                .col(
                    ColumnDef::new(Messages::EditedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Messages::Table, Messages::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Messages::Table, Messages::CaseId)
                        .to(Cases::Table, Cases::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_messages_case_id")
                .table(Messages::Table)
                .col(Messages::CaseId)
                .col(Messages::Id)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Notifications::Table)
                .col(
                    ColumnDef::new(Notifications::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(Notifications::OrgId).uuid().not_null())
                .col(ColumnDef::new(Notifications::UserId).uuid().not_null())
                .col(ColumnDef::new(Notifications::CaseId).uuid().not_null())
                .col(
                    ColumnDef::new(Notifications::MessageId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Notifications::Kind)
                        .string_len(16)
                        .not_null(),
                )
                .col(at(Notifications::CreatedAt))
                .col(
                    ColumnDef::new(Notifications::ReadAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Notifications::Table, Notifications::MessageId)
                        .to(Messages::Table, Messages::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_notifications_user")
                .table(Notifications::Table)
                .col(Notifications::UserId)
                .col(Notifications::ReadAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Notifications::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Messages::Table).to_owned())
            .await
    }
}
