//! Accounts: sign-in, registration, the session's user, passwords and
//! personal API tokens.

use crate::domain::Role;
use crate::error::AppError;
use crate::ui::{navigate_full, CsrfField, FieldErr, FormError};
use leptos::prelude::*;
use leptos_router::components::A;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user as the API and the pages show them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UserDto {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    #[cfg_attr(feature = "ssr", schema(value_type = String, example = "doctor"))]
    pub role: Role,
    pub org: String,
}

/// Who is signed in, as the header and guards need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: Option<UserDto>,
    pub must_change_password: bool,
}

/// A personal API token as listed (never with its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TokenDto {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::{TokenDto, UserDto};
    use crate::audit::ssr::{append, Entry};
    use crate::domain::{Email, Fields, NewPassword, OrgName, PersonName, Role};
    use crate::error::AppError;
    use crate::ssr::{now, random_token, write_txn, Actor, AppState};
    use argon2::password_hash::{
        rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
    };
    use argon2::Argon2;
    use entity::{api_token, organization, user};
    use sea_orm::sea_query::{Expr, Query};
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection,
        EntityTrait, QueryFilter, QueryOrder,
    };
    use sha2::{Digest, Sha256};
    use std::net::IpAddr;
    use tower_sessions::Session;
    use uuid::Uuid;

    pub const SESSION_USER: &str = "uid";
    pub const SESSION_LOGIN_AT: &str = "login_at";
    pub const SESSION_STAMP: &str = "pw_stamp";
    pub const SESSION_CSRF: &str = "csrf";
    pub const TOKEN_PREFIX: &str = "mv_";

    /// argon2id with the crate's defaults (OWASP's recommended m=19 MiB, t=2, p=1).
    pub fn hash_password_blocking(password: &str) -> Result<String, AppError> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                AppError::Internal
            })
    }

    /// Hashing is deliberately slow, so it runs off the async runtime.
    pub async fn hash_password(password: &NewPassword) -> Result<String, AppError> {
        let pw = password.expose().to_owned();
        tokio::task::spawn_blocking(move || hash_password_blocking(&pw))
            .await
            .map_err(|_| AppError::Internal)?
    }

    async fn verify_password(password: String, hash: String) -> bool {
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    pub fn to_dto(u: &user::Model, org: &str) -> Result<UserDto, AppError> {
        Ok(UserDto {
            id: u.id,
            email: u.email.clone(),
            name: u.name.clone(),
            role: parse_role(&u.role)?,
            org: org.to_owned(),
        })
    }

    pub fn parse_role(s: &str) -> Result<Role, AppError> {
        s.parse().map_err(|_| {
            tracing::error!(role = s, "unknown role stored in the database");
            AppError::Internal
        })
    }

    fn actor_from(
        u: user::Model,
        org: organization::Model,
        via_token: bool,
    ) -> Result<Actor, AppError> {
        Ok(Actor {
            role: parse_role(&u.role)?,
            email: Email::parse(&u.email).map_err(|_| AppError::Internal)?,
            user_id: u.id,
            org_id: u.org_id,
            org_name: org.name,
            name: u.name,
            must_change_password: u.must_change_password,
            via_token,
        })
    }

    /// The enabled user behind a session, if any.
    pub async fn actor_for_user(
        db: &DatabaseConnection,
        id: Uuid,
    ) -> Result<Option<Actor>, AppError> {
        let found = user::Entity::find_by_id(id)
            .find_also_related(organization::Entity)
            .one(db)
            .await?;
        match found {
            Some((u, Some(org))) if u.enabled => actor_from(u, org, false).map(Some),
            _ => Ok(None),
        }
    }

    /// The session's user with the stamp of their current password: a
    /// session started under another password (changed since, here or by an
    /// administrator) is no longer valid.
    pub async fn actor_for_session(
        db: &DatabaseConnection,
        id: Uuid,
    ) -> Result<Option<(Actor, String)>, AppError> {
        let found = user::Entity::find_by_id(id)
            .find_also_related(organization::Entity)
            .one(db)
            .await?;
        match found {
            Some((u, Some(org))) if u.enabled => {
                let stamp = password_stamp(&u.password_hash);
                actor_from(u, org, false).map(|a| Some((a, stamp)))
            }
            _ => Ok(None),
        }
    }

    /// A short digest of the stored password hash, kept in the session.
    pub fn password_stamp(password_hash: &str) -> String {
        hex::encode(&Sha256::digest(password_hash.as_bytes())[..8])
    }

    /// Stores the user's current password stamp in the session (at sign-in,
    /// and after the user changed their own password, so that session
    /// stays while every other one ends).
    pub async fn stamp_session(
        db: &DatabaseConnection,
        session: &Session,
        user_id: Uuid,
    ) -> Result<(), AppError> {
        let u = user::Entity::find_by_id(user_id)
            .one(db)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        session
            .insert(SESSION_STAMP, password_stamp(&u.password_hash))
            .await?;
        Ok(())
    }

    pub fn token_hash(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    /// The enabled user behind a bearer token that is not revoked, if any.
    /// One query on the hot path: user and organisation joined, the token
    /// matched in a subquery.
    pub async fn actor_for_token(
        db: &DatabaseConnection,
        policy: &crate::ssr::AuthPolicy,
        token: &str,
    ) -> Result<Option<Actor>, AppError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 100 {
            return Ok(None);
        }
        let hash = token_hash(token);
        let owner = Query::select()
            .column(api_token::Column::UserId)
            .from(api_token::Entity)
            .and_where(api_token::Column::TokenHash.eq(hash.as_str()))
            .and_where(api_token::Column::RevokedAt.is_null())
            .to_owned();
        let found = user::Entity::find()
            .filter(user::Column::Id.in_subquery(owner))
            .filter(user::Column::Enabled.eq(true))
            .find_also_related(organization::Entity)
            .one(db)
            .await?;
        let Some((u, Some(org))) = found else {
            return Ok(None);
        };
        let mut actor = actor_from(u, org, true)?;
        // Tokens are for scripts; a pending password change is a browser matter.
        actor.must_change_password = false;
        if policy.token_use_due(&hash) {
            let at = now();
            api_token::Entity::update_many()
                .col_expr(api_token::Column::LastUsedAt, Expr::value(at))
                .filter(api_token::Column::TokenHash.eq(hash.as_str()))
                .filter(
                    Condition::any()
                        .add(api_token::Column::LastUsedAt.is_null())
                        .add(api_token::Column::LastUsedAt.lt(at - chrono::Duration::minutes(5))),
                )
                .exec(db)
                .await?;
        }
        Ok(Some(actor))
    }

    /// Checks a sign-in attempt. Throttled per account and per address before
    /// the password is looked at; the error never says which part was wrong.
    pub async fn authenticate(
        state: &AppState,
        email: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<Actor, AppError> {
        let email = Email::parse(email).map_err(|_| AppError::BadCredentials)?;
        state.auth.check_login(&email, ip)?;
        let found = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .find_also_related(organization::Entity)
            .one(&state.db)
            .await?;
        let (hash, candidate) = match found {
            Some((u, Some(org))) => (u.password_hash.clone(), Some((u, org))),
            _ => (state.auth.dummy_hash.clone(), None),
        };
        let ok = verify_password(password.to_owned(), hash).await;
        match candidate {
            Some((u, org)) if ok && u.enabled => {
                let actor = actor_from(u, org, false)?;
                let txn = write_txn(&state.db).await?;
                append(&txn, Entry::by(&actor, "auth.login", "user", actor.user_id)).await?;
                txn.commit().await?;
                Ok(actor)
            }
            Some((u, _)) => {
                let txn = write_txn(&state.db).await?;
                let reason = if ok {
                    "account disabled or pending approval"
                } else {
                    "wrong password"
                };
                append(
                    &txn,
                    Entry {
                        org_id: Some(u.org_id),
                        actor_id: None,
                        action: "auth.login_failed",
                        target_type: "user",
                        target_id: Some(u.id.to_string()),
                        details: serde_json::json!({ "reason": reason }),
                    },
                )
                .await?;
                txn.commit().await?;
                Err(AppError::BadCredentials)
            }
            None => Err(AppError::BadCredentials),
        }
    }

    /// Asks a signed-in user for their password again before an act that
    /// carries their name (signing a report). Throttled like sign-in; a
    /// wrong password is audited and refused without signing anything.
    pub async fn reauthenticate(
        state: &AppState,
        actor: &Actor,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), AppError> {
        state.auth.check_login(&actor.email, ip)?;
        let Some(u) = user::Entity::find_by_id(actor.user_id)
            .one(&state.db)
            .await?
        else {
            return Err(AppError::Unauthenticated);
        };
        if u.enabled && verify_password(password.to_owned(), u.password_hash.clone()).await {
            return Ok(());
        }
        let txn = write_txn(&state.db).await?;
        append(
            &txn,
            Entry::by(actor, "auth.reauth_failed", "user", actor.user_id),
        )
        .await?;
        txn.commit().await?;
        Err(AppError::field("password", "is not your password"))
    }

    /// Puts the user in the session under a fresh session id (no fixation).
    pub async fn start_session(
        db: &DatabaseConnection,
        session: &Session,
        actor: &Actor,
    ) -> Result<(), AppError> {
        session.cycle_id().await?;
        session.insert(SESSION_USER, actor.user_id).await?;
        session
            .insert(SESSION_LOGIN_AT, chrono::Utc::now().timestamp())
            .await?;
        stamp_session(db, session, actor.user_id).await
    }

    pub async fn end_session(
        state: &AppState,
        session: &Session,
        actor: Option<&Actor>,
    ) -> Result<(), AppError> {
        if let Some(actor) = actor {
            let txn = write_txn(&state.db).await?;
            append(&txn, Entry::by(actor, "auth.logout", "user", actor.user_id)).await?;
            txn.commit().await?;
        }
        session.flush().await?;
        Ok(())
    }

    /// A registration request: a disabled account waiting for an admin of the
    /// named organisation.
    pub async fn register(
        db: &DatabaseConnection,
        email: &str,
        name: &str,
        password: &str,
        org: &str,
    ) -> Result<UserDto, AppError> {
        let mut f = Fields::default();
        let email = f.take(Email::parse(email));
        let name = f.take(PersonName::parse(name));
        let password = f.take(NewPassword::parse(password));
        let org = f.take(OrgName::parse(org));
        let (Some(email), Some(name), Some(password), Some(org)) = (email, name, password, org)
        else {
            return Err(AppError::invalid(f.0));
        };
        let hash = hash_password(&password).await?;
        let txn = write_txn(db).await?;
        let Some(org) = organization::Entity::find()
            .filter(organization::Column::Name.eq(org.as_str()))
            .one(&txn)
            .await?
        else {
            return Err(AppError::field("org", "no organisation has this name"));
        };
        if email_taken(&txn, &email).await? {
            return Err(AppError::field("email", "is already registered"));
        }
        let u = insert_user(
            &txn,
            org.id,
            &email,
            &name,
            hash,
            Role::Doctor,
            false,
            false,
        )
        .await?;
        append(
            &txn,
            Entry {
                org_id: Some(org.id),
                actor_id: None,
                action: "user.register",
                target_type: "user",
                target_id: Some(u.id.to_string()),
                details: serde_json::json!({ "email": u.email, "role": u.role }),
            },
        )
        .await?;
        txn.commit().await?;
        to_dto(&u, &org.name)
    }

    pub async fn email_taken<C: sea_orm::ConnectionTrait>(
        c: &C,
        email: &Email,
    ) -> Result<bool, AppError> {
        Ok(user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(c)
            .await?
            .is_some())
    }

    pub async fn insert_user<C: sea_orm::ConnectionTrait>(
        c: &C,
        org_id: Uuid,
        email: &Email,
        name: &PersonName,
        password_hash: String,
        role: Role,
        enabled: bool,
        must_change_password: bool,
    ) -> Result<user::Model, AppError> {
        let t = now();
        let am = user::ActiveModel {
            id: Set(Uuid::new_v4()),
            org_id: Set(org_id),
            email: Set(email.as_str().to_owned()),
            name: Set(name.as_str().to_owned()),
            password_hash: Set(password_hash),
            role: Set(role.as_str().to_owned()),
            enabled: Set(enabled),
            must_change_password: Set(must_change_password),
            created_at: Set(t),
            approved_at: Set(enabled.then_some(t)),
            approved_by: Set(None),
        };
        Ok(am.insert(c).await?)
    }

    /// Changes the acting user's own password after checking the current one.
    pub async fn change_password(
        state: &AppState,
        actor: &Actor,
        current: &str,
        new: &str,
    ) -> Result<(), AppError> {
        let new = NewPassword::parse(new)?;
        let Some(u) = user::Entity::find_by_id(actor.user_id)
            .one(&state.db)
            .await?
        else {
            return Err(AppError::Unauthenticated);
        };
        if !verify_password(current.to_owned(), u.password_hash.clone()).await {
            return Err(AppError::field("current", "is not your current password"));
        }
        if current == new.expose() {
            return Err(AppError::field(
                "password",
                "must differ from the current password",
            ));
        }
        let hash = hash_password(&new).await?;
        let txn = write_txn(&state.db).await?;
        let mut am: user::ActiveModel = u.into();
        am.password_hash = Set(hash);
        am.must_change_password = Set(false);
        am.update(&txn).await?;
        append(
            &txn,
            Entry::by(actor, "user.password_changed", "user", actor.user_id),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Creates a personal API token; the secret is returned once and only
    /// its hash is kept.
    pub async fn create_token(
        db: &DatabaseConnection,
        actor: &Actor,
        name: &str,
    ) -> Result<(TokenDto, String), AppError> {
        let name = name.trim();
        let name = if name.is_empty() { "API token" } else { name };
        if name.chars().count() > 80 || name.chars().any(char::is_control) {
            return Err(AppError::field(
                "name",
                "must be at most 80 printable characters",
            ));
        }
        let secret = format!("{TOKEN_PREFIX}{}", random_token(32));
        let prefix: String = secret.chars().take(TOKEN_PREFIX.len() + 6).collect();
        let txn = write_txn(db).await?;
        let m = api_token::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(actor.user_id),
            name: Set(name.to_owned()),
            prefix: Set(prefix),
            token_hash: Set(token_hash(&secret)),
            created_at: Set(now()),
            last_used_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(&txn)
        .await?;
        append(
            &txn,
            Entry::by(actor, "token.create", "api_token", m.id)
                .details(serde_json::json!({ "name": m.name })),
        )
        .await?;
        txn.commit().await?;
        Ok((token_dto(m), secret))
    }

    fn token_dto(m: api_token::Model) -> TokenDto {
        TokenDto {
            id: m.id,
            name: m.name,
            prefix: m.prefix,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
        }
    }

    pub async fn list_tokens(
        db: &DatabaseConnection,
        actor: &Actor,
    ) -> Result<Vec<TokenDto>, AppError> {
        Ok(api_token::Entity::find()
            .filter(api_token::Column::UserId.eq(actor.user_id))
            .filter(api_token::Column::RevokedAt.is_null())
            .order_by_desc(api_token::Column::CreatedAt)
            .all(db)
            .await?
            .into_iter()
            .map(token_dto)
            .collect())
    }

    /// Revokes one of the acting user's own tokens; anyone else's is "not found".
    pub async fn revoke_token(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
    ) -> Result<(), AppError> {
        let txn = write_txn(db).await?;
        let Some(t) = api_token::Entity::find_by_id(id)
            .filter(api_token::Column::UserId.eq(actor.user_id))
            .filter(api_token::Column::RevokedAt.is_null())
            .one(&txn)
            .await?
        else {
            return Err(AppError::NotFound);
        };
        let mut am: api_token::ActiveModel = t.into();
        am.revoked_at = Set(Some(now()));
        am.update(&txn).await?;
        append(&txn, Entry::by(actor, "token.revoke", "api_token", id)).await?;
        txn.commit().await?;
        Ok(())
    }
}

// ---------------------------------------------------------------- server fns

#[server(prefix = "/sfn", endpoint = "session", input = server_fn::codec::GetUrl)]
pub async fn get_session() -> Result<SessionInfo, AppError> {
    use crate::ssr::require_user_any;
    Ok(match require_user_any() {
        Ok(a) => SessionInfo {
            must_change_password: a.must_change_password,
            user: Some(UserDto {
                id: a.user_id,
                email: a.email.to_string(),
                name: a.name,
                role: a.role,
                org: a.org_name,
            }),
        },
        Err(_) => SessionInfo {
            user: None,
            must_change_password: false,
        },
    })
}

#[server(prefix = "/sfn", endpoint = "login")]
/// Signs in; answers whether a one-time password must be changed first.
pub async fn login(email: String, password: String) -> Result<bool, AppError> {
    use crate::ssr::{client_ip, fail, state};
    fail(
        async {
            let state = state()?;
            let session = use_context::<http::request::Parts>()
                .and_then(|p| p.extensions.get::<tower_sessions::Session>().cloned())
                .ok_or(AppError::Internal)?;
            let actor = ssr::authenticate(&state, &email, &password, client_ip()).await?;
            ssr::start_session(&state.db, &session, &actor).await?;
            leptos_axum::redirect(if actor.must_change_password {
                "/profile"
            } else {
                "/cases"
            });
            Ok(actor.must_change_password)
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "register")]
pub async fn register(
    email: String,
    name: String,
    password: String,
    org: String,
) -> Result<(), AppError> {
    use crate::ssr::{fail, state};
    fail(
        async {
            let state = state()?;
            // Spends one of the address's sign-in attempts: registration
            // hashes a password too, and must not be a free oracle.
            state.auth.check_address(crate::ssr::client_ip())?;
            ssr::register(&state.db, &email, &name, &password, &org).await?;
            Ok(())
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "change_password")]
pub async fn change_password(
    current: String,
    password: String,
    _csrf: String,
) -> Result<(), AppError> {
    use crate::ssr::{fail, require_user_any, state};
    fail(
        async {
            let actor = require_user_any()?;
            let state = state()?;
            ssr::change_password(&state, &actor, &current, &password).await?;
            // This session stays signed in; every other one of the user's
            // sessions ends at its next request.
            if let Some(session) = use_context::<http::request::Parts>()
                .and_then(|p| p.extensions.get::<tower_sessions::Session>().cloned())
            {
                ssr::stamp_session(&state.db, &session, actor.user_id).await?;
            }
            Ok(())
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "tokens", input = server_fn::codec::GetUrl)]
pub async fn list_tokens() -> Result<Vec<TokenDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(async { ssr::list_tokens(&state()?.db, &require_user()?).await }.await)
}

#[server(prefix = "/sfn", endpoint = "create_token")]
pub async fn create_token(name: String, _csrf: String) -> Result<String, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let (_, secret) = ssr::create_token(&state()?.db, &require_user()?, &name).await?;
            Ok(secret)
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "revoke_token")]
pub async fn revoke_token(id: Uuid, _csrf: String) -> Result<(), AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(async { ssr::revoke_token(&state()?.db, &require_user()?, id).await }.await)
}

// ---------------------------------------------------------------- pages

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let value = login.value();
    Effect::new(move |_| {
        if let Some(Ok(must_change)) = value.get() {
            navigate_full(if must_change { "/profile" } else { "/cases" });
        }
    });
    view! {
        <section class="card narrow">
            <h1>"Sign in to MedVision"</h1>
            <ActionForm action=login attr:class="form">
                <CsrfField/>
                <label>"E-mail"
                    <input type="email" name="email" required autocomplete="username" maxlength="254"/>
                </label>
                <label>"Password"
                    <input type="password" name="password" required autocomplete="current-password" maxlength="256"/>
                </label>
                <FormError value/>
                <button type="submit" class="primary" disabled=login.pending()>"Sign in"</button>
            </ActionForm>
            <p class="muted">"No account yet? " <A href="/register">"Request one"</A></p>
        </section>
    }
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    let register = ServerAction::<Register>::new();
    let value = register.value();
    let done = move || matches!(value.get(), Some(Ok(())));
    view! {
        <section class="card narrow">
            <h1>"Request an account"</h1>
            <Show when=done fallback=move || view! {
                <ActionForm action=register attr:class="form">
                    <CsrfField/>
                    <label>"Organisation"
                        <input name="org" required maxlength="120" placeholder="e.g. St Mary's Radiology"/>
                        <FieldErr value name="org"/>
                    </label>
                    <label>"Full name"
                        <input name="name" required maxlength="120" autocomplete="name"/>
                        <FieldErr value name="name"/>
                    </label>
                    <label>"E-mail"
                        <input type="email" name="email" required maxlength="254" autocomplete="email"/>
                        <FieldErr value name="email"/>
                    </label>
                    <label>"Password (at least 12 characters)"
                        <input type="password" name="password" required minlength="12" maxlength="256" autocomplete="new-password"/>
                        <FieldErr value name="password"/>
                    </label>
                    <FormError value/>
                    <button type="submit" class="primary" disabled=register.pending()>"Send request"</button>
                </ActionForm>
            }>
                <p class="notice">"Thank you. An administrator of your organisation will review the request; you can sign in once it is approved."</p>
                <A href="/login">"Back to sign-in"</A>
            </Show>
        </section>
    }
}

#[component]
pub fn ProfilePage() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let pw_value = change.value();
    let new_token = create.value();
    let tokens = Resource::new(
        move || {
            (
                create.version().get(),
                revoke.version().get(),
                change.version().get(),
            )
        },
        |_| list_tokens(),
    );
    Effect::new(move |_| {
        if let Some(Ok(())) = pw_value.get() {
            navigate_full("/cases");
        }
    });
    view! {
        <section class="card">
            <h1>"Your profile"</h1>
            <h2>"Change password"</h2>
            <ActionForm action=change attr:class="form">
                <CsrfField/>
                <label>"Current password"
                    <input type="password" name="current" required autocomplete="current-password"/>
                    <FieldErr value=pw_value name="current"/>
                </label>
                <label>"New password (at least 12 characters)"
                    <input type="password" name="password" required minlength="12" autocomplete="new-password"/>
                    <FieldErr value=pw_value name="password"/>
                </label>
                <FormError value=pw_value/>
                <button type="submit" class="primary">"Change password"</button>
            </ActionForm>
        </section>
        <section class="card">
            <h2>"Personal API tokens"</h2>
            <p class="muted">"Use a token as " <code>"Authorization: Bearer …"</code> " for scripts. It is shown once; store it safely."</p>
            <ActionForm action=create attr:class="form inline">
                <CsrfField/>
                <input name="name" placeholder="Token name" maxlength="80"/>
                <button type="submit">"Create token"</button>
            </ActionForm>
            {move || new_token.get().map(|r| match r {
                Ok(secret) => view! { <p class="notice">"New token (copy it now): " <code class="token">{secret}</code></p> }.into_any(),
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
            })}
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || tokens.get().map(|r| match r {
                    Ok(list) if list.is_empty() => view! { <p class="muted">"No tokens."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="table">
                            <thead><tr><th>"Name"</th><th>"Starts with"</th><th>"Created"</th><th>"Last used"</th><th></th></tr></thead>
                            <tbody>
                            {list.into_iter().map(|t| view! {
                                <tr>
                                    <td>{t.name}</td>
                                    <td><code>{t.prefix}"…"</code></td>
                                    <td>{t.created_at.format("%Y-%m-%d %H:%M").to_string()}</td>
                                    <td>{t.last_used_at.map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "never".into())}</td>
                                    <td>
                                        <ActionForm action=revoke>
                                            <CsrfField/>
                                            <input type="hidden" name="id" value=t.id.to_string()/>
                                            <button type="submit" class="danger">"Revoke"</button>
                                        </ActionForm>
                                    </td>
                                </tr>
                            }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(e) => view! { <crate::ui::Problem error=e/> }.into_any(),
                })}
            </Transition>
        </section>
    }
}
