//! Human review: a radiologist's decision on each AI finding (accept,
//! reject with a reason, edit) and the findings they add; addenda to signed
//! reports. Rows are only ever inserted: the latest decision is the current
//! one and the history stays.

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
}

#[derive(DeriveIden)]
enum FindingReviews {
    Table,
    Id,
    OrgId,
    CaseId,
    FindingId,
    StudyId,
    Decision,
    Label,
    Present,
    Location,
    Reason,
    ReviewerId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ReportAddenda {
    Table,
    Id,
    OrgId,
    CaseId,
    ReportId,
    AuthorId,
    Text,
    CreatedAt,
}

fn cascade(
    from: (impl IntoIden + 'static, impl IntoIden + 'static),
    to: (impl IntoIden + 'static, impl IntoIden + 'static),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(FindingReviews::Table)
                .col(
                    ColumnDef::new(FindingReviews::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(FindingReviews::OrgId).uuid().not_null())
                .col(ColumnDef::new(FindingReviews::CaseId).uuid().not_null())
                .col(ColumnDef::new(FindingReviews::FindingId).uuid().null())
                .col(ColumnDef::new(FindingReviews::StudyId).uuid().null())
                .col(
                    ColumnDef::new(FindingReviews::Decision)
                        .string_len(16)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(FindingReviews::Label)
                        .string_len(64)
                        .not_null(),
                )
                .col(ColumnDef::new(FindingReviews::Present).boolean().not_null())
                .col(ColumnDef::new(FindingReviews::Location).text().null())
                .col(ColumnDef::new(FindingReviews::Reason).text().null())
                .col(ColumnDef::new(FindingReviews::ReviewerId).uuid().not_null())
                .col(
                    ColumnDef::new(FindingReviews::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(&mut cascade(
                    (FindingReviews::Table, FindingReviews::OrgId),
                    (Organizations::Table, Organizations::Id),
                ))
                .foreign_key(&mut cascade(
                    (FindingReviews::Table, FindingReviews::CaseId),
                    (Cases::Table, Cases::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_finding_reviews_case")
                .table(FindingReviews::Table)
                .col(FindingReviews::CaseId)
                .col(FindingReviews::CreatedAt)
                .to_owned(),
        )
        .await?;
        // The latest decision per finding: every dashboard query asks it.
        m.create_index(
            Index::create()
                .name("idx_finding_reviews_finding")
                .table(FindingReviews::Table)
                .col(FindingReviews::FindingId)
                .col(FindingReviews::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ReportAddenda::Table)
                .col(
                    ColumnDef::new(ReportAddenda::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(ReportAddenda::OrgId).uuid().not_null())
                .col(ColumnDef::new(ReportAddenda::CaseId).uuid().not_null())
                .col(ColumnDef::new(ReportAddenda::ReportId).uuid().not_null())
                .col(ColumnDef::new(ReportAddenda::AuthorId).uuid().not_null())
                .col(ColumnDef::new(ReportAddenda::Text).text().not_null())
                .col(
                    ColumnDef::new(ReportAddenda::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(&mut cascade(
                    (ReportAddenda::Table, ReportAddenda::OrgId),
                    (Organizations::Table, Organizations::Id),
                ))
                .foreign_key(&mut cascade(
                    (ReportAddenda::Table, ReportAddenda::ReportId),
                    (Reports::Table, Reports::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_report_addenda_report")
                .table(ReportAddenda::Table)
                .col(ReportAddenda::ReportId)
                .col(ReportAddenda::CreatedAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ReportAddenda::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(FindingReviews::Table).to_owned())
            .await
    }
}
