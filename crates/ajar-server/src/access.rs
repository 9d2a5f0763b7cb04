//! The in-memory answer to "may P do A at S now?" (`POST /api/v1/authorize`): an
//! [`ajar_core::authorize::Index`] built from the store's assignments and approved role
//! activations, rebuilt lazily after any change to them.

use crate::auth::resolve_role;
use crate::error::AppError;
use ajar_api::wire::ApplicationProperties;
use ajar_core::authorize::{Grant, Index, Source};
use ajar_core::id::Scope;
use ajar_core::lifecycle::RequestState;
use ajar_core::rbac::{ActionPattern, RoleDefinition};
use ajar_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The current index, or none until it is next needed. It is current while the store's
/// [`Store::access_generation`] has not moved since it was built.
#[derive(Debug, Default)]
pub struct AccessIndex {
    current: Mutex<Option<(u64, Arc<Index>)>>,
    /// Held while building, so concurrent questions after a change wait for one build instead
    /// of each starting its own.
    building: tokio::sync::Mutex<()>,
}

impl AccessIndex {
    /// The index, built from the store if there is none.
    pub async fn get(&self, store: &Store) -> Result<Arc<Index>, AppError> {
        if let Some(index) = self.fresh(store) {
            return Ok(index);
        }
        let _building = self.building.lock().await;
        if let Some(index) = self.fresh(store) {
            return Ok(index);
        }
        // Read the generation first: a change committed while building makes this index stale
        // at once.
        let generation = store.access_generation();
        let index = Arc::new(build(store).await?);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((generation, index.clone()));
        Ok(index)
    }

    /// The index, if one is kept and nothing changed since it was built.
    fn fresh(&self, store: &Store) -> Option<Arc<Index>> {
        let generation = store.access_generation();
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .filter(|(g, _)| *g == generation)
            .map(|(_, index)| index.clone())
    }
}

async fn build(store: &Store) -> Result<Index, AppError> {
    let mut tx = store.read().await?;
    let custom: HashMap<String, Vec<String>> = tx
        .roles()
        .await?
        .into_iter()
        .map(|r| (r.name, r.actions))
        .collect();
    let role = |name: &str| resolve_role(name, custom.get(name).map(Vec::as_slice)).map(Arc::new);
    let mut grants = Vec::new();
    for a in tx.assignments("/", None).await? {
        if let (Ok(scope), Some(role)) = (Scope::parse(&a.scope), role(&a.role_name)) {
            grants.push((
                a.principal,
                Grant {
                    scope,
                    role,
                    source: Source::Assignment(a.id),
                },
            ));
        }
    }
    // Publishers: standing read-only access to their applications, and their eligible roles
    // outright on applications created without JIT.
    let reader = Arc::new(publisher_reader());
    for app in tx.all_applications().await? {
        let (Ok(props), Ok(scope)) = (
            serde_json::from_str::<ApplicationProperties>(&app.properties),
            Scope::parse(&app.id),
        ) else {
            continue;
        };
        for p in props.publisher_principals {
            grants.push((
                p.to_string(),
                Grant {
                    scope: scope.clone(),
                    role: reader.clone(),
                    source: Source::Publisher(app.id.clone()),
                },
            ));
        }
    }
    for e in tx.standing_eligibilities().await? {
        if let (Ok(scope), Some(role)) = (Scope::parse(&e.application_id), role(&e.role_name)) {
            grants.push((
                e.principal,
                Grant {
                    scope,
                    role,
                    source: Source::Publisher(e.application_id),
                },
            ));
        }
    }
    for state in [RequestState::Approved, RequestState::Active] {
        for r in tx.jit_requests_in_state(state.as_str()).await? {
            if r.kind != "role" {
                continue;
            }
            let Ok(scope) = Scope::parse(&r.application_id) else {
                continue;
            };
            let Some((from, until)) = r.lifecycle.window else {
                continue;
            };
            for name in &r.roles {
                if let Some(role) = role(name) {
                    grants.push((
                        r.requester.clone(),
                        Grant {
                            scope: scope.clone(),
                            role,
                            source: Source::Elevation {
                                request: r.id.clone(),
                                from,
                                until,
                            },
                        },
                    ));
                }
            }
        }
    }
    let memberships = tx.groups().await?.into_iter().flat_map(|(g, members)| {
        let group = format!("group:{g}");
        members.into_iter().map(move |m| (m, group.clone()))
    });
    Ok(Index::new(grants).with_groups(memberships))
}

/// The read-only role a publisher holds on its applications.
fn publisher_reader() -> RoleDefinition {
    RoleDefinition {
        name: "PublisherReader".to_owned(),
        description: "Read-only standing access of an application's publisher".to_owned(),
        actions: ActionPattern::parse("*/read").into_iter().collect(),
        built_in: true,
    }
}
