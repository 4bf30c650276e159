//! The REST API under `/api/v1`, described by the OpenAPI document at
//! `/api/v1/openapi.json`. Handlers authenticate (the `User` extractor),
//! parse, call one data-layer function and map the result.

use crate::middleware::{AnyUser, User};
use app::auth::{ssr as auth, TokenDto, UserDto};
use app::cases::{
    ssr as cases, AddMemberInput, CaseDetail, CaseDto, CasePage, CasePatchInput, CaseQuery,
    MemberDto, NewCaseInput,
};
use app::error::AppError;
use app::ssr::{random_token, Actor, AppState, ClientIp, CsrfToken};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

/// JSON body whose rejections are API errors (`{"error": …}`), not text.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::BadRequest(
                "Send the body as JSON with Content-Type: application/json.".into(),
            )),
            Err(JsonRejection::BytesRejection(b))
                if b.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(AppError::TooLarge("limit for JSON bodies".into()))
            }
            Err(JsonRejection::BytesRejection(_)) => Err(AppError::BadRequest(
                "The request body could not be read.".into(),
            )),
            Err(e) => Err(AppError::BadRequest(e.body_text())),
        }
    }
}

/// Query string whose rejections are API errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;
    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| AppError::BadRequest(e.body_text()))
    }
}

/// Ids in paths: anything that is not a UUID cannot name a case, so it is
/// "not found" like any other unknown id.
fn id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/tokens", post(create_token).get(list_tokens))
        .route("/me", get(me))
        .route("/cases", get(list_cases).post(create_case))
        .route("/cases/{id}", get(get_case).patch(update_case))
        .route("/cases/{id}/members", post(add_member))
        .route("/openapi.json", get(openapi))
        .merge(crate::images::router())
        .merge(crate::reports::router())
        .merge(crate::chat::router())
        .merge(crate::analytics::router())
        .merge(crate::audit_api::router())
        .merge(crate::dicom_results::router())
        .merge(crate::pipeline::api::router())
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async {
            (StatusCode::METHOD_NOT_ALLOWED, Json(serde_json::json!({
                "error": { "code": "method_not_allowed", "message": "This method is not allowed here." }
            })))
        })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    email: String,
    password: String,
}

/// The signed-in user, the session's CSRF token for state-changing
/// requests, and whether a one-time password must be changed first.
#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    user: UserDto,
    csrf_token: String,
    must_change_password: bool,
}

fn user_dto(a: &Actor) -> UserDto {
    UserDto {
        id: a.user_id,
        email: a.email.to_string(),
        name: a.name.clone(),
        role: a.role,
        org: a.org_name.clone(),
    }
}

async fn csrf_for(session: &Session) -> Result<String, AppError> {
    if let Some(t) = session.get::<String>(app::auth::ssr::SESSION_CSRF).await? {
        return Ok(t);
    }
    let t = random_token(32);
    session.insert(app::auth::ssr::SESSION_CSRF, &t).await?;
    Ok(t)
}

/// Sign in with e-mail and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginInput, tag = "auth",
    responses((status = 200, body = SessionOut), (status = 401, description = "wrong e-mail or password, or account not active"), (status = 429, description = "too many attempts")))]
async fn login(
    State(state): State<AppState>,
    session: Session,
    axum::Extension(ip): axum::Extension<ClientIp>,
    ApiJson(input): ApiJson<LoginInput>,
) -> Result<Json<SessionOut>, AppError> {
    let actor = auth::authenticate(&state, &input.email, &input.password, ip.0).await?;
    auth::start_session(&state.db, &session, &actor).await?;
    Ok(Json(SessionOut {
        user: user_dto(&actor),
        csrf_token: csrf_for(&session).await?,
        must_change_password: actor.must_change_password,
    }))
}

/// End the session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
async fn logout(
    State(state): State<AppState>,
    session: Session,
    user: Option<AnyUser>,
) -> Result<StatusCode, AppError> {
    auth::end_session(&state, &session, user.as_ref().map(|u| &u.0)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who is signed in.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, body = SessionOut), (status = 401)))]
async fn me(
    AnyUser(a): AnyUser,
    session: Session,
    csrf: Option<axum::Extension<CsrfToken>>,
) -> Result<Json<SessionOut>, AppError> {
    let token = match csrf.map(|c| c.0 .0).filter(|t| !t.is_empty()) {
        Some(t) => t,
        None if a.via_token => String::new(),
        None => csrf_for(&session).await?,
    };
    Ok(Json(SessionOut {
        user: user_dto(&a),
        csrf_token: token,
        must_change_password: a.must_change_password,
    }))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    #[serde(default)]
    name: Option<String>,
}

/// A new personal API token. `token` is shown only in this response.
#[derive(Serialize, ToSchema)]
pub struct NewTokenOut {
    token: String,
    #[serde(flatten)]
    info: TokenDto,
}

/// Create a personal API token for scripts.
#[utoipa::path(post, path = "/api/v1/auth/tokens", request_body = TokenInput, tag = "auth", responses((status = 201, body = NewTokenOut)))]
async fn create_token(
    State(state): State<AppState>,
    User(a): User,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<NewTokenOut>), AppError> {
    // The body is optional: no body means a token with the default name.
    let input: TokenInput = if body.iter().all(u8::is_ascii_whitespace) {
        TokenInput::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::BadRequest(format!("Invalid JSON body: {e}")))?
    };
    let name = input.name.unwrap_or_default();
    let (info, token) = auth::create_token(&state.db, &a, &name).await?;
    Ok((StatusCode::CREATED, Json(NewTokenOut { token, info })))
}

/// The caller's active API tokens (without their secrets).
#[utoipa::path(get, path = "/api/v1/auth/tokens", tag = "auth", responses((status = 200, body = Vec<TokenDto>)))]
async fn list_tokens(
    State(state): State<AppState>,
    User(a): User,
) -> Result<Json<Vec<TokenDto>>, AppError> {
    Ok(Json(auth::list_tokens(&state.db, &a).await?))
}

/// Cases visible to the caller, most urgent first.
#[utoipa::path(get, path = "/api/v1/cases", params(CaseQuery), tag = "cases", responses((status = 200, body = CasePage)))]
async fn list_cases(
    State(state): State<AppState>,
    User(a): User,
    ApiQuery(q): ApiQuery<CaseQuery>,
) -> Result<Json<CasePage>, AppError> {
    Ok(Json(cases::list(&state.db, &a, &q).await?))
}

/// Open a case.
#[utoipa::path(post, path = "/api/v1/cases", request_body = NewCaseInput, tag = "cases",
    responses((status = 201, body = CaseDto), (status = 422, description = "field errors")))]
async fn create_case(
    State(state): State<AppState>,
    User(a): User,
    ApiJson(input): ApiJson<NewCaseInput>,
) -> Result<(StatusCode, Json<CaseDto>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(cases::create(&state.db, &a, &input).await?),
    ))
}

/// One case with its care team (404 when not visible to the caller).
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases", params(("id" = Uuid, Path)), responses((status = 200, body = CaseDetail), (status = 404)))]
async fn get_case(
    State(state): State<AppState>,
    User(a): User,
    Path(raw): Path<String>,
) -> Result<Json<CaseDetail>, AppError> {
    Ok(Json(cases::get(&state.db, &a, id(&raw)?).await?))
}

/// Change fields of a case, or close / reopen it with `status`.
#[utoipa::path(patch, path = "/api/v1/cases/{id}", tag = "cases", params(("id" = Uuid, Path)), request_body = CasePatchInput,
    responses((status = 200, body = CaseDto), (status = 404), (status = 422)))]
async fn update_case(
    State(state): State<AppState>,
    User(a): User,
    Path(raw): Path<String>,
    ApiJson(p): ApiJson<CasePatchInput>,
) -> Result<Json<CaseDto>, AppError> {
    Ok(Json(cases::update(&state.db, &a, id(&raw)?, &p).await?))
}

/// Add a colleague of the same organisation to the case.
#[utoipa::path(post, path = "/api/v1/cases/{id}/members", tag = "cases", params(("id" = Uuid, Path)), request_body = AddMemberInput,
    responses((status = 201, body = MemberDto), (status = 404), (status = 422)))]
async fn add_member(
    State(state): State<AppState>,
    User(a): User,
    Path(raw): Path<String>,
    ApiJson(input): ApiJson<AddMemberInput>,
) -> Result<(StatusCode, Json<MemberDto>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(cases::add_member(&state.db, &a, id(&raw)?, &input).await?),
    ))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "MedVision API", description = "Cases, accounts and (as they land) studies, findings and reports. AI output is decision support, never a diagnosis."),
    paths(login, logout, me, create_token, list_tokens, list_cases, create_case, get_case, update_case, add_member,
        crate::images::upload, crate::images::list_studies, crate::images::list_instances, crate::images::metadata, crate::images::render,
        crate::pipeline::api::case_jobs, crate::pipeline::api::case_findings, crate::pipeline::api::case_report,
        crate::analytics::dashboard, crate::analytics::csv, crate::analytics::thresholds, crate::analytics::set_threshold, crate::audit_api::list, crate::audit_api::csv, crate::audit_api::verify,
        crate::chat::list, crate::chat::create, crate::chat::edit, crate::chat::notifications, crate::chat::read_all,
        crate::reports::edit, crate::reports::sign, crate::reports::addendum, crate::reports::report_pdf, crate::reports::reviews, crate::reports::review, crate::reports::add_finding, crate::pipeline::api::case_batches, crate::pipeline::api::case_events,
        crate::pipeline::api::batch, crate::pipeline::api::cancel_batch, crate::pipeline::api::retry_batch, crate::pipeline::api::batch_events,
        crate::pipeline::api::artefact, crate::pipeline::api::failed_jobs, crate::pipeline::api::retry_job,
        crate::dicom_results::send, crate::dicom_results::sends, crate::dicom_results::export_zip),
    components(schemas(LoginInput, SessionOut, UserDto, TokenInput, NewTokenOut, TokenDto, CaseDto, CaseDetail, CasePage, MemberDto, NewCaseInput, CasePatchInput, AddMemberInput,
        app::images::StudyDto, app::images::SeriesDto, app::images::InstanceDto, app::images::DeidItem, app::images::UploadOutcome, app::images::UploadedStudy, app::images::RejectedDto,
        app::pipeline::JobDto, app::pipeline::FindingDto, app::pipeline::BatchDto, app::pipeline::BatchCounts,
        app::report::ReportDto, app::report::SectionsDto, app::report::CitationDto, app::report::VerificationDto, app::report::FallbackDto,
        app::report::ModelRefDto, app::report::ExplanationDto, app::report::SourceDto, app::report::AddendumDto, app::report::ReportEdit,
        app::report::SignInput, app::report::AddendumInput, app::review::ReviewDto, app::review::ReviewInput, app::review::AddFindingInput,
        app::audit::AuditRowDto, app::audit::ChainReport, app::audit::BrokenLink,
        app::analytics::ThresholdRow, app::analytics::ThresholdInput, app::analytics::CurvePoint,
        app::analytics::Analytics, app::analytics::Totals, app::analytics::Count, app::analytics::LabelStats, app::analytics::Performance, app::analytics::Ci,
        app::chat::MessageDto, app::chat::NewMessage, app::chat::MessageEdit, app::chat::NotificationDto, crate::chat::NotificationList,
        app::sends::DicomSendDto, app::sends::SendInput)),
    modifiers(&Security),
    tags((name = "auth", description = "Sessions and API tokens"), (name = "cases", description = "Cases, scoped to the caller's organisation"), (name = "images", description = "Upload (de-identified on ingest), studies, instances, metadata and rendering"))
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("medvision_session"))),
        );
    }
}

async fn openapi() -> Response {
    Json(ApiDoc::openapi()).into_response()
}
