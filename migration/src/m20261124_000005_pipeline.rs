//! The analysis pipeline: batches of uploads, durable jobs with leases, the
//! recorded output of each stage, findings and their artefacts. The AI's
//! urgency is kept beside the human one on the case.

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
    Urgency,
    UrgencyRank,
    AiUrgency,
}

#[derive(DeriveIden)]
enum Studies {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Batches {
    Table,
    Id,
    OrgId,
    CaseId,
    CreatedBy,
    Source,
    Files,
    Rejected,
    CancelledAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    OrgId,
    CaseId,
    StudyId,
    BatchId,
    Kind,
    State,
    Stage,
    Attempts,
    MaxAttempts,
    RunAfter,
    LeaseOwner,
    LeaseUntil,
    LastError,
    Note,
    CreatedAt,
    UpdatedMs,
    StartedMs,
    FinishedMs,
}

#[derive(DeriveIden)]
enum JobStages {
    Table,
    JobId,
    Stage,
    Output,
    Ms,
    Worker,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Findings {
    Table,
    Id,
    OrgId,
    CaseId,
    StudyId,
    JobId,
    Kind,
    Label,
    Probability,
    RawProbability,
    Threshold,
    Positive,
    Urgency,
    Model,
    ModelVersion,
    IntendedUse,
    VolumeMl,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Artefacts {
    Table,
    Id,
    OrgId,
    CaseId,
    StudyId,
    JobId,
    Kind,
    Label,
    MediaType,
    BlobSha256,
    Bytes,
    CreatedAt,
}

fn at(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn uuid(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).uuid().not_null().to_owned()
}

fn org_fk(
    from: impl IntoIden + 'static,
    table: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from_tbl(table)
        .from_col(from)
        .to(Organizations::Table, Organizations::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // "priority" joins the human scale between routine and urgent, so the
        // models' four levels and the radiologists' share one ranking.
        m.get_connection()
            .execute_unprepared(
                "UPDATE cases SET urgency_rank = urgency_rank + 1 WHERE urgency_rank > 0",
            )
            .await?;
        m.alter_table(
            Table::alter()
                .table(Cases::Table)
                .add_column(ColumnDef::new(Cases::AiUrgency).string_len(16).null())
                .to_owned(),
        )
        .await?;
        let _ = (Cases::Id, Cases::Urgency, Cases::UrgencyRank);

        m.create_table(
            Table::create()
                .table(Batches::Table)
                .col(uuid(Batches::Id).primary_key())
                .col(uuid(Batches::OrgId))
                .col(uuid(Batches::CaseId))
                .col(uuid(Batches::CreatedBy))
                .col(ColumnDef::new(Batches::Source).string_len(16).not_null())
                .col(ColumnDef::new(Batches::Files).integer().not_null())
                .col(ColumnDef::new(Batches::Rejected).text().not_null())
                .col(
                    ColumnDef::new(Batches::CancelledAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(at(Batches::CreatedAt))
                .foreign_key(&mut org_fk(Batches::OrgId, Batches::Table))
                .foreign_key(
                    ForeignKey::create()
                        .from(Batches::Table, Batches::CaseId)
                        .to(Cases::Table, Cases::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_batches_case")
                .table(Batches::Table)
                .col(Batches::CaseId)
                .col(Batches::CreatedAt)
                .to_owned(),
        )
        .await?;

        // Times the queue compares (run_after, lease_until, updated_ms) are
        // epoch milliseconds: one representation that sorts and compares the
        // same on SQLite and PostgreSQL.
        m.create_table(
            Table::create()
                .table(Jobs::Table)
                .col(uuid(Jobs::Id).primary_key())
                .col(uuid(Jobs::OrgId))
                .col(uuid(Jobs::CaseId))
                .col(ColumnDef::new(Jobs::StudyId).uuid().null())
                .col(ColumnDef::new(Jobs::BatchId).uuid().null())
                .col(ColumnDef::new(Jobs::Kind).string_len(16).not_null())
                .col(ColumnDef::new(Jobs::State).string_len(16).not_null())
                .col(ColumnDef::new(Jobs::Stage).string_len(16).not_null())
                .col(ColumnDef::new(Jobs::Attempts).integer().not_null())
                .col(ColumnDef::new(Jobs::MaxAttempts).integer().not_null())
                .col(ColumnDef::new(Jobs::RunAfter).big_integer().not_null())
                .col(ColumnDef::new(Jobs::LeaseOwner).string_len(64).null())
                .col(ColumnDef::new(Jobs::LeaseUntil).big_integer().null())
                .col(ColumnDef::new(Jobs::LastError).text().null())
                .col(ColumnDef::new(Jobs::Note).text().null())
                .col(at(Jobs::CreatedAt))
                .col(ColumnDef::new(Jobs::UpdatedMs).big_integer().not_null())
                .col(ColumnDef::new(Jobs::StartedMs).big_integer().null())
                .col(ColumnDef::new(Jobs::FinishedMs).big_integer().null())
                .foreign_key(&mut org_fk(Jobs::OrgId, Jobs::Table))
                .foreign_key(
                    ForeignKey::create()
                        .from(Jobs::Table, Jobs::CaseId)
                        .to(Cases::Table, Cases::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Jobs::Table, Jobs::StudyId)
                        .to(Studies::Table, Studies::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Jobs::Table, Jobs::BatchId)
                        .to(Batches::Table, Batches::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            ("idx_jobs_claim", vec![Jobs::State, Jobs::RunAfter]),
            ("idx_jobs_case", vec![Jobs::CaseId, Jobs::CreatedAt]),
            ("idx_jobs_batch", vec![Jobs::BatchId]),
            ("idx_jobs_updated", vec![Jobs::UpdatedMs]),
        ] {
            let mut idx = Index::create();
            idx.name(name).table(Jobs::Table);
            for c in cols {
                idx.col(c);
            }
            m.create_index(idx.to_owned()).await?;
        }

        // One row per finished stage of a job: the idempotency record. A
        // stage's side effects commit in the same transaction as its row.
        m.create_table(
            Table::create()
                .table(JobStages::Table)
                .col(uuid(JobStages::JobId))
                .col(ColumnDef::new(JobStages::Stage).string_len(16).not_null())
                .col(ColumnDef::new(JobStages::Output).text().not_null())
                .col(ColumnDef::new(JobStages::Ms).big_integer().not_null())
                .col(ColumnDef::new(JobStages::Worker).string_len(64).not_null())
                .col(at(JobStages::FinishedAt))
                .primary_key(Index::create().col(JobStages::JobId).col(JobStages::Stage))
                .foreign_key(
                    ForeignKey::create()
                        .from(JobStages::Table, JobStages::JobId)
                        .to(Jobs::Table, Jobs::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Artefacts::Table)
                .col(uuid(Artefacts::Id).primary_key())
                .col(uuid(Artefacts::OrgId))
                .col(uuid(Artefacts::CaseId))
                .col(uuid(Artefacts::StudyId))
                .col(uuid(Artefacts::JobId))
                .col(ColumnDef::new(Artefacts::Kind).string_len(16).not_null())
                .col(ColumnDef::new(Artefacts::Label).string_len(64).not_null())
                .col(
                    ColumnDef::new(Artefacts::MediaType)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Artefacts::BlobSha256)
                        .string_len(64)
                        .not_null(),
                )
                .col(ColumnDef::new(Artefacts::Bytes).big_integer().not_null())
                .col(at(Artefacts::CreatedAt))
                .foreign_key(&mut org_fk(Artefacts::OrgId, Artefacts::Table))
                .foreign_key(
                    ForeignKey::create()
                        .from(Artefacts::Table, Artefacts::JobId)
                        .to(Jobs::Table, Jobs::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_artefacts_job_kind_label")
                .table(Artefacts::Table)
                .col(Artefacts::JobId)
                .col(Artefacts::Kind)
                .col(Artefacts::Label)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Findings::Table)
                .col(uuid(Findings::Id).primary_key())
                .col(uuid(Findings::OrgId))
                .col(uuid(Findings::CaseId))
                .col(uuid(Findings::StudyId))
                .col(uuid(Findings::JobId))
                .col(ColumnDef::new(Findings::Kind).string_len(16).not_null())
                .col(ColumnDef::new(Findings::Label).string_len(64).not_null())
                .col(ColumnDef::new(Findings::Probability).double().not_null())
                .col(ColumnDef::new(Findings::RawProbability).double().null())
                .col(ColumnDef::new(Findings::Threshold).double().not_null())
                .col(ColumnDef::new(Findings::Positive).boolean().not_null())
                .col(ColumnDef::new(Findings::Urgency).string_len(16).not_null())
                .col(ColumnDef::new(Findings::Model).string_len(64).not_null())
                .col(
                    ColumnDef::new(Findings::ModelVersion)
                        .string_len(32)
                        .not_null(),
                )
                .col(ColumnDef::new(Findings::IntendedUse).text().not_null())
                .col(ColumnDef::new(Findings::VolumeMl).double().null())
                .col(at(Findings::CreatedAt))
                .foreign_key(&mut org_fk(Findings::OrgId, Findings::Table))
                .foreign_key(
                    ForeignKey::create()
                        .from(Findings::Table, Findings::JobId)
                        .to(Jobs::Table, Jobs::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_findings_job_model_label")
                .table(Findings::Table)
                .col(Findings::JobId)
                .col(Findings::Model)
                .col(Findings::Label)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_findings_case")
                .table(Findings::Table)
                .col(Findings::CaseId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Findings::Table.into_iden(),
            Artefacts::Table.into_iden(),
            JobStages::Table.into_iden(),
            Jobs::Table.into_iden(),
            Batches::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        m.alter_table(
            Table::alter()
                .table(Cases::Table)
                .drop_column(Cases::AiUrgency)
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared(
                "UPDATE cases SET urgency_rank = urgency_rank - 1 WHERE urgency_rank > 1",
            )
            .await
            .map(|_| ())
    }
}
