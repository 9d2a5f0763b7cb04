//! The in-memory answer to "may P do A at S now?" (`POST /api/v1/authorize`): an
//! [`ajar_core::authorize::Index`] built from the store's assignments, eligibilities, approved
//! role activations and the roles applications define over their own actions, rebuilt lazily
//! after any change to them.

use crate::auth::resolve_role;
use crate::error::AppError;
use ajar_api::wire::ApplicationProperties;
use ajar_core::authorize::{Grant, Index, Source};
use ajar_core::id::Scope;
use ajar_core::lifecycle::RequestState;
use ajar_core::rbac::{ActionPattern, ApplicationActions, RoleDefinition, built_in_roles};
use ajar_store::{Store, Tx};
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

/// The roles grants name, each resolved once: ajar's (built in and custom) by name, and
/// applications' own by application and name. At an application its own role of a name comes
/// before ajar's.
struct Roles {
    ajar: HashMap<String, Arc<RoleDefinition>>,
    of_applications: HashMap<(String, String), Arc<RoleDefinition>>,
}

impl Roles {
    async fn read(tx: &mut Tx) -> Result<Roles, AppError> {
        let mut ajar: HashMap<String, Arc<RoleDefinition>> = HashMap::new();
        for r in tx.roles().await? {
            if let Some(role) = resolve_role(&r.name, Some(&r.actions)) {
                ajar.insert(r.name, Arc::new(role));
            }
        }
        for r in built_in_roles() {
            ajar.insert(r.name.clone(), Arc::new(r));
        }
        let declared: HashMap<String, ApplicationActions> = tx
            .all_application_actions()
            .await?
            .into_iter()
            .map(|r| {
                let d = ApplicationActions {
                    namespace: r.namespace,
                    actions: r.actions,
                };
                (r.application_id, d)
            })
            .collect();
        let mut of_applications = HashMap::new();
        for r in tx.all_application_roles().await? {
            let Some(d) = declared.get(&r.application_id) else {
                continue;
            };
            let role = RoleDefinition::of_application(&r.name, &r.description, &r.actions, d);
            of_applications.insert((r.application_id, r.name), Arc::new(role));
        }
        // A publisher's standing read covers the application's own read actions too.
        for (app, d) in &declared {
            let reader = RoleDefinition::of_application(
                PUBLISHER_READER,
                PUBLISHER_READER_DESCRIPTION,
                &["*/read".to_owned()],
                d,
            );
            if !reader.actions.is_empty() {
                of_applications
                    .insert((app.clone(), PUBLISHER_READER.to_owned()), Arc::new(reader));
            }
        }
        Ok(Roles {
            ajar,
            of_applications,
        })
    }

    /// The role `name` at the application `app`: its own, else ajar's.
    fn at(&self, app: &str, name: &str) -> Option<Arc<RoleDefinition>> {
        self.of_applications
            .get(&(app.to_owned(), name.to_owned()))
            .or_else(|| self.ajar.get(name))
            .cloned()
    }
}

async fn build(store: &Store) -> Result<Index, AppError> {
    let mut tx = store.read().await?;
    let roles = Roles::read(&mut tx).await?;
    let mut grants = Vec::new();
    for a in tx.assignments("/", None).await? {
        if let (Ok(scope), Some(role)) = (Scope::parse(&a.scope), roles.ajar.get(&a.role_name)) {
            grants.push((
                a.principal,
                Grant {
                    scope,
                    role: role.clone(),
                    source: Source::Assignment(a.id),
                },
            ));
        }
    }
    // Publishers: standing read-only access to their applications (ajar's read actions there,
    // and the application's own), and their eligible roles outright on applications created
    // without JIT.
    let reader = Arc::new(publisher_reader());
    for app in tx.all_applications().await? {
        let (Ok(props), Ok(scope)) = (
            serde_json::from_str::<ApplicationProperties>(&app.properties),
            Scope::parse(&app.id),
        ) else {
            continue;
        };
        let own_reader = roles
            .of_applications
            .get(&(app.id.clone(), PUBLISHER_READER.to_owned()));
        for p in props.publisher_principals {
            for role in std::iter::once(&reader).chain(own_reader) {
                grants.push((
                    p.to_string(),
                    Grant {
                        scope: scope.clone(),
                        role: role.clone(),
                        source: Source::Publisher(app.id.clone()),
                    },
                ));
            }
        }
    }
    for e in tx.standing_eligibilities().await? {
        if let (Ok(scope), Some(role)) = (
            Scope::parse(&e.application_id),
            roles.at(&e.application_id, &e.role_name),
        ) {
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
                if let Some(role) = roles.at(&r.application_id, name) {
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

/// The name of the read-only role a publisher holds on its applications.
const PUBLISHER_READER: &str = "PublisherReader";
const PUBLISHER_READER_DESCRIPTION: &str =
    "Read-only standing access of an application's publisher";

/// The read-only role a publisher holds on its applications, over ajar's read actions.
fn publisher_reader() -> RoleDefinition {
    RoleDefinition::ajar(
        PUBLISHER_READER,
        PUBLISHER_READER_DESCRIPTION,
        ActionPattern::parse("*/read").into_iter().collect(),
        true,
    )
}
