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
enum Studies {
    Table,
    Id,
    OrgId,
    CaseId,
    StudyUid,
    Modality,
    Description,
    UploadedBy,
    CreatedAt,
}

// `Series::SeriesUid` is the column's name; clippy's naming rule does not
// know SQL.
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden)]
enum Series {
    Table,
    Id,
    OrgId,
    CaseId,
    StudyId,
    SeriesUid,
    Number,
    Modality,
    BodyPart,
    Description,
    Kind,
    Rows,
    Columns,
    TransferSyntax,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    Id,
    OrgId,
    CaseId,
    StudyId,
    SeriesId,
    SopUid,
    Kind,
    InstanceNumber,
    SliceLocation,
    Frames,
    Rows,
    Columns,
    BlobSha256,
    Bytes,
    Info,
    Header,
    Deid,
    BurnedIn,
    SourceName,
    CreatedAt,
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
                .table(Studies::Table)
                .col(ColumnDef::new(Studies::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Studies::OrgId).uuid().not_null())
                .col(ColumnDef::new(Studies::CaseId).uuid().not_null())
                .col(ColumnDef::new(Studies::StudyUid).string_len(64).not_null())
                .col(ColumnDef::new(Studies::Modality).string_len(16).not_null())
                .col(ColumnDef::new(Studies::Description).text().null())
                .col(ColumnDef::new(Studies::UploadedBy).uuid().not_null())
                .col(at(Studies::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Studies::Table, Studies::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Studies::Table, Studies::CaseId)
                        .to(Cases::Table, Cases::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Studies::Table, Studies::UploadedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;
        // De-identified study UIDs are a keyed hash of the original, so the
        // same study sent twice lands on the same row of the same organisation.
        m.create_index(
            Index::create()
                .name("idx_studies_org_uid")
                .table(Studies::Table)
                .col(Studies::OrgId)
                .col(Studies::StudyUid)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_studies_case")
                .table(Studies::Table)
                .col(Studies::CaseId)
                .col(Studies::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Series::Table)
                .col(ColumnDef::new(Series::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Series::OrgId).uuid().not_null())
                .col(ColumnDef::new(Series::CaseId).uuid().not_null())
                .col(ColumnDef::new(Series::StudyId).uuid().not_null())
                .col(ColumnDef::new(Series::SeriesUid).string_len(64).not_null())
                .col(ColumnDef::new(Series::Number).integer().null())
                .col(ColumnDef::new(Series::Modality).string_len(16).not_null())
                .col(ColumnDef::new(Series::BodyPart).string_len(64).null())
                .col(ColumnDef::new(Series::Description).text().null())
                .col(ColumnDef::new(Series::Kind).string_len(8).not_null())
                .col(ColumnDef::new(Series::Rows).integer().not_null())
                .col(ColumnDef::new(Series::Columns).integer().not_null())
                .col(ColumnDef::new(Series::TransferSyntax).string_len(64).null())
                .col(at(Series::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Series::Table, Series::StudyId)
                        .to(Studies::Table, Studies::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_series_study_uid")
                .table(Series::Table)
                .col(Series::StudyId)
                .col(Series::SeriesUid)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Instances::Table)
                .col(
                    ColumnDef::new(Instances::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Instances::OrgId).uuid().not_null())
                .col(ColumnDef::new(Instances::CaseId).uuid().not_null())
                .col(ColumnDef::new(Instances::StudyId).uuid().not_null())
                .col(ColumnDef::new(Instances::SeriesId).uuid().not_null())
                .col(ColumnDef::new(Instances::SopUid).string_len(64).not_null())
                .col(ColumnDef::new(Instances::Kind).string_len(8).not_null())
                .col(ColumnDef::new(Instances::InstanceNumber).integer().null())
                .col(ColumnDef::new(Instances::SliceLocation).double().null())
                .col(ColumnDef::new(Instances::Frames).integer().not_null())
                .col(ColumnDef::new(Instances::Rows).integer().not_null())
                .col(ColumnDef::new(Instances::Columns).integer().not_null())
                .col(
                    ColumnDef::new(Instances::BlobSha256)
                        .string_len(64)
                        .not_null(),
                )
                .col(ColumnDef::new(Instances::Bytes).big_integer().not_null())
                .col(ColumnDef::new(Instances::Info).text().not_null())
                .col(ColumnDef::new(Instances::Header).text().not_null())
                .col(ColumnDef::new(Instances::Deid).text().not_null())
                .col(ColumnDef::new(Instances::BurnedIn).boolean().not_null())
                .col(
                    ColumnDef::new(Instances::SourceName)
                        .string_len(255)
                        .not_null(),
                )
                .col(at(Instances::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Instances::Table, Instances::SeriesId)
                        .to(Series::Table, Series::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_instances_series_sop")
                .table(Instances::Table)
                .col(Instances::SeriesId)
                .col(Instances::SopUid)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_instances_study")
                .table(Instances::Table)
                .col(Instances::StudyId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Instances::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Series::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Studies::Table).to_owned())
            .await
    }
}
