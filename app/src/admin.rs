//! Organisation administration: approving registrations, roles, disabling
//! accounts; plus the operator functions behind the `medvision` CLI.

use crate::domain::Role;
use crate::error::AppError;
use crate::ui::{when, CsrfField, FormError, Problem};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user as an admin of their organisation sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUserDto {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub enabled: bool,
    /// Registered but never approved.
    pub pending: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// An organisation as the operator lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgDto {
    pub id: Uuid,
    pub name: String,
    pub users: u64,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::{AdminUserDto, OrgDto};
    use crate::audit::ssr::{append, Entry};
    use crate::auth::ssr::{email_taken, hash_password, insert_user, parse_role};
    use crate::domain::{Email, Fields, NewPassword, OrgName, PersonName, Role};
    use crate::error::AppError;
    use crate::ssr::{now, write_txn, Actor};
    use entity::{organization, user};
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
        EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    };
    use uuid::Uuid;

    fn dto(u: &user::Model) -> Result<AdminUserDto, AppError> {
        Ok(AdminUserDto {
            id: u.id,
            email: u.email.clone(),
            name: u.name.clone(),
            role: parse_role(&u.role)?,
            enabled: u.enabled,
            pending: !u.enabled && u.approved_at.is_none(),
            created_at: u.created_at,
        })
    }

    /// Users of the admin's own organisation, pending requests first.
    pub async fn list_users(
        db: &DatabaseConnection,
        actor: &Actor,
    ) -> Result<Vec<AdminUserDto>, AppError> {
        actor.require_role(Role::Admin)?;
        let mut users: Vec<AdminUserDto> = user::Entity::find()
            .filter(user::Column::OrgId.eq(actor.org_id))
            .order_by_asc(user::Column::Name)
            .all(db)
            .await?
            .iter()
            .map(dto)
            .collect::<Result<_, _>>()?;
        users.sort_by_key(|u| !u.pending);
        Ok(users)
    }

    /// What an admin may change about an account.
    pub enum Change {
        Approve,
        Role(Role),
        Enabled(bool),
    }

    /// Applies one change to a user of the admin's organisation. A user of
    /// another organisation is "not found". The organisation always keeps
    /// at least one enabled admin.
    pub async fn change_user(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
        change: Change,
    ) -> Result<AdminUserDto, AppError> {
        actor.require_role(Role::Admin)?;
        let txn = write_txn(db).await?;
        let Some(u) = user::Entity::find_by_id(id)
            .filter(user::Column::OrgId.eq(actor.org_id))
            .one(&txn)
            .await?
        else {
            return Err(AppError::NotFound);
        };
        let before = dto(&u)?;
        let loses_admin = before.role == Role::Admin
            && before.enabled
            && matches!(change, Change::Role(r) if r != Role::Admin)
                | matches!(change, Change::Enabled(false));
        if loses_admin && enabled_admins(&txn, actor.org_id).await? <= 1 {
            return Err(AppError::Conflict(
                "The organisation must keep at least one active administrator.".into(),
            ));
        }
        let mut am: user::ActiveModel = u.into();
        let action = apply(&mut am, &before, change, Some(actor.user_id))?;
        let after = dto(&am.update(&txn).await?)?;
        append(
            &txn,
            Entry::by(actor, action, "user", id).change(&before, &after),
        )
        .await?;
        txn.commit().await?;
        Ok(after)
    }

    /// Applies a change to the row and names the audit action; shared by
    /// the admin page and the operator CLI.
    fn apply(
        am: &mut user::ActiveModel,
        before: &AdminUserDto,
        change: Change,
        by: Option<Uuid>,
    ) -> Result<&'static str, AppError> {
        // Enabling a pending registration is approving it, from either path.
        let change = match change {
            Change::Enabled(true) if before.pending => Change::Approve,
            c => c,
        };
        Ok(match change {
            Change::Approve => {
                if !before.pending {
                    return Err(AppError::Conflict(
                        "This account is not waiting for approval.".into(),
                    ));
                }
                am.enabled = Set(true);
                am.approved_at = Set(Some(now()));
                am.approved_by = Set(by);
                "user.approve"
            }
            Change::Role(r) => {
                am.role = Set(r.as_str().to_owned());
                "user.set_role"
            }
            Change::Enabled(true) => {
                am.enabled = Set(true);
                am.approved_at = Set(Some(now()));
                am.approved_by = Set(by);
                "user.enable"
            }
            Change::Enabled(false) => {
                am.enabled = Set(false);
                "user.disable"
            }
        })
    }

    async fn enabled_admins<C: ConnectionTrait>(c: &C, org: Uuid) -> Result<u64, AppError> {
        Ok(user::Entity::find()
            .filter(user::Column::OrgId.eq(org))
            .filter(user::Column::Role.eq(Role::Admin.as_str()))
            .filter(user::Column::Enabled.eq(true))
            .count(c)
            .await?)
    }

    // ------------------------------------------------ operator (CLI) functions
    // These run with the operator's authority on the host, not a user's:
    // their audit rows have no actor and say "cli".

    fn cli_entry(
        org: Option<Uuid>,
        action: &'static str,
        target_type: &'static str,
        id: impl ToString,
    ) -> Entry {
        Entry {
            org_id: org,
            actor_id: None,
            action,
            target_type,
            target_id: Some(id.to_string()),
            details: serde_json::json!({ "via": "cli" }),
        }
    }

    pub async fn add_org(db: &DatabaseConnection, name: &str) -> Result<OrgDto, AppError> {
        let name = OrgName::parse(name)?;
        let txn = write_txn(db).await?;
        if organization::Entity::find()
            .filter(organization::Column::Name.eq(name.as_str()))
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(AppError::Conflict(format!(
                "An organisation named {name:?} already exists."
            )));
        }
        let o = organization::ActiveModel {
            id: Set(Uuid::new_v4()),
            name: Set(name.as_str().to_owned()),
            created_at: Set(now()),
        }
        .insert(&txn)
        .await?;
        append(
            &txn,
            cli_entry(Some(o.id), "org.create", "organization", o.id),
        )
        .await?;
        txn.commit().await?;
        Ok(OrgDto {
            id: o.id,
            name: o.name,
            users: 0,
        })
    }

    pub async fn list_orgs(db: &DatabaseConnection) -> Result<Vec<OrgDto>, AppError> {
        let mut out = vec![];
        for o in organization::Entity::find()
            .order_by_asc(organization::Column::Name)
            .all(db)
            .await?
        {
            let users = user::Entity::find()
                .filter(user::Column::OrgId.eq(o.id))
                .count(db)
                .await?;
            out.push(OrgDto {
                id: o.id,
                name: o.name,
                users,
            });
        }
        Ok(out)
    }

    pub async fn find_org(
        db: &DatabaseConnection,
        name: &str,
    ) -> Result<organization::Model, AppError> {
        organization::Entity::find()
            .filter(organization::Column::Name.eq(name.trim()))
            .one(db)
            .await?
            .ok_or_else(|| {
                AppError::field("org", format!("no organisation is named {:?}", name.trim()))
            })
    }

    /// Creates an enabled user (the operator vouches for them).
    pub async fn add_user(
        db: &DatabaseConnection,
        email: &str,
        name: Option<&str>,
        password: &str,
        role: &str,
        org: &str,
        must_change_password: bool,
    ) -> Result<AdminUserDto, AppError> {
        let mut f = Fields::default();
        let email = f.take(Email::parse(email));
        let password = f.take(NewPassword::parse(password));
        let role = f.take(Role::parse(role));
        let (Some(email), Some(password), Some(role)) = (email, password, role) else {
            return Err(AppError::invalid(f.0));
        };
        let display = name.map(str::to_owned).unwrap_or_else(|| {
            email
                .as_str()
                .split('@')
                .next()
                .unwrap_or("user")
                .to_owned()
        });
        let name = PersonName::parse(&display)?;
        let org = find_org(db, org).await?;
        let hash = hash_password(&password).await?;
        let txn = write_txn(db).await?;
        if email_taken(&txn, &email).await? {
            return Err(AppError::Conflict(format!(
                "A user with e-mail {email} already exists."
            )));
        }
        let u = insert_user(
            &txn,
            org.id,
            &email,
            &name,
            hash,
            role,
            true,
            must_change_password,
        )
        .await?;
        append(
            &txn,
            cli_entry(Some(org.id), "user.create", "user", u.id)
                .details(serde_json::json!({ "via": "cli", "email": u.email, "role": u.role })),
        )
        .await?;
        txn.commit().await?;
        dto(&u)
    }

    pub async fn find_user(db: &DatabaseConnection, email: &str) -> Result<user::Model, AppError> {
        let email = Email::parse(email)?;
        user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(db)
            .await?
            .ok_or_else(|| AppError::field("email", format!("no user has e-mail {email}")))
    }

    pub async fn list_all_users(
        db: &DatabaseConnection,
        org: Option<&str>,
    ) -> Result<Vec<(String, AdminUserDto)>, AppError> {
        let orgs: std::collections::HashMap<Uuid, String> = organization::Entity::find()
            .all(db)
            .await?
            .into_iter()
            .map(|o| (o.id, o.name))
            .collect();
        let mut q = user::Entity::find().order_by_asc(user::Column::Email);
        if let Some(org) = org {
            q = q.filter(user::Column::OrgId.eq(find_org(db, org).await?.id));
        }
        q.all(db)
            .await?
            .iter()
            .map(|u| Ok((orgs.get(&u.org_id).cloned().unwrap_or_default(), dto(u)?)))
            .collect()
    }

    /// Operator changes by e-mail (role, enable/disable).
    pub async fn cli_change_user(
        db: &DatabaseConnection,
        email: &str,
        change: Change,
    ) -> Result<AdminUserDto, AppError> {
        let u = find_user(db, email).await?;
        let txn = write_txn(db).await?;
        let before = dto(&u)?;
        let org = u.org_id;
        let mut am: user::ActiveModel = u.into();
        let action = apply(&mut am, &before, change, None)?;
        let after = dto(&am.update(&txn).await?)?;
        append(
            &txn,
            cli_entry(Some(org), action, "user", after.id).change(&before, &after),
        )
        .await?;
        txn.commit().await?;
        Ok(after)
    }
}

// ---------------------------------------------------------------- server fns

#[server(prefix = "/sfn", endpoint = "admin_users", input = server_fn::codec::GetUrl)]
pub async fn admin_list_users() -> Result<Vec<AdminUserDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(async { ssr::list_users(&state()?.db, &require_user()?).await }.await)
}

/// `action` is `approve`, `enable`, `disable` or `role:<role>`.
#[server(prefix = "/sfn", endpoint = "admin_change_user")]
pub async fn admin_change_user(
    id: String,
    action: String,
    _csrf: String,
) -> Result<AdminUserDto, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let actor = require_user()?;
            let id = Uuid::parse_str(id.trim()).map_err(|_| AppError::NotFound)?;
            let change = match action.as_str() {
                "approve" => ssr::Change::Approve,
                "enable" => ssr::Change::Enabled(true),
                "disable" => ssr::Change::Enabled(false),
                other => match other.strip_prefix("role:") {
                    Some(r) => ssr::Change::Role(Role::parse(r)?),
                    None => return Err(AppError::field("action", "is not a known account action")),
                },
            };
            ssr::change_user(&state()?.db, &actor, id, change).await
        }
        .await,
    )
}

// ---------------------------------------------------------------- page

#[component]
pub fn AdminUsersPage() -> impl IntoView {
    let change = ServerAction::<AdminChangeUser>::new();
    let value = change.value();
    let users = Resource::new(move || change.version().get(), |_| admin_list_users());
    let button = move |id: Uuid, action: String, label: &'static str, class: &'static str| {
        view! {
            <ActionForm action=change attr:class="inline">
                <CsrfField/>
                <input type="hidden" name="id" value=id.to_string()/>
                <input type="hidden" name="action" value=action/>
                <button type="submit" class=class>{label}</button>
            </ActionForm>
        }
    };
    view! {
        <section class="card">
            <h1>"Users of your organisation"</h1>
            <FormError value/>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || users.get().map(|r| match r {
                    Err(e) => view! { <Problem error=e/> }.into_any(),
                    Ok(list) => view! {
                        <table class="table">
                            <thead><tr><th>"Name"</th><th>"E-mail"</th><th>"Role"</th><th>"State"</th><th>"Since"</th><th>"Actions"</th></tr></thead>
                            <tbody>
                            {list.into_iter().map(|u| {
                                let state = if u.pending { "pending approval" } else if u.enabled { "active" } else { "disabled" };
                                view! {
                                    <tr class:pending=u.pending>
                                        <td>{u.name.clone()}</td>
                                        <td>{u.email.clone()}</td>
                                        <td><span class="badge">{u.role.label()}</span></td>
                                        <td>{state}</td>
                                        <td>{when(&u.created_at)}</td>
                                        <td class="actions">
                                            {u.pending.then(|| button(u.id, "approve".into(), "Approve", "primary"))}
                                            {(!u.pending && u.enabled).then(|| button(u.id, "disable".into(), "Disable", "danger"))}
                                            {(!u.pending && !u.enabled).then(|| button(u.id, "enable".into(), "Enable", ""))}
                                            {Role::ALL.iter().filter(|r| **r != u.role).map(|r| button(u.id, format!("role:{}", r.as_str()), match r {
                                                Role::Admin => "Make admin",
                                                Role::Radiologist => "Make radiologist",
                                                Role::Doctor => "Make doctor",
                                            }, "")).collect_view()}
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                })}
            </Transition>
        </section>
    }
}
