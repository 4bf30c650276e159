//! An organisation's operating points: the threshold an admin chose for a
//! model's label after looking at its sensitivity/specificity trade-off on
//! the organisation's confirmed cases. The pipeline applies it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OrgThresholds {
    Table,
    OrgId,
    Model,
    Label,
    PositiveAt,
    SetBy,
    SetAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(OrgThresholds::Table)
                .col(ColumnDef::new(OrgThresholds::OrgId).uuid().not_null())
                .col(
                    ColumnDef::new(OrgThresholds::Model)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(OrgThresholds::Label)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(OrgThresholds::PositiveAt)
                        .double()
                        .not_null(),
                )
                .col(ColumnDef::new(OrgThresholds::SetBy).uuid().not_null())
                .col(
                    ColumnDef::new(OrgThresholds::SetAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(OrgThresholds::OrgId)
                        .col(OrgThresholds::Model)
                        .col(OrgThresholds::Label),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(OrgThresholds::Table, OrgThresholds::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(OrgThresholds::Table).to_owned())
            .await
    }
}
