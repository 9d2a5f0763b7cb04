//! The AWS enforcement backend the agent loop drives ([`ajar_agent::sync::Enforce`]).
//!
//! For each guarded machine it finds the instance, the security group ajar owns on it
//! (created as `ajar-INSTANCE` and attached to every interface when missing, or the one an
//! operator named and tagged), and keeps that group's inbound rules equal to the machine's
//! open grants. Clouds have no element timeouts, so each grant's rules are removed at its
//! deadline on the enforcer's own monotonic clock, without asking the server; on start, a
//! sweep removes every rule whose described end has passed, and schedules the others, so
//! access closes on time even before the control plane answers.

use crate::AwsError;
use crate::ec2::{Ec2, Instance, Rule, RuleKey, Select};
use crate::plan::{self, HeldGrant};
use ajar_agent::sync::Enforce;
use ajar_api::wire::{
    AgentReport, AwsTarget, DesiredGrant, DesiredState, Exposure, GrantRef, MachineStatus,
    ProtectedPort,
};
use ajar_core::agent::AgentMode;
use ajar_core::clock::Clock;
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The tag that marks a security group as ajar's to change.
pub const MANAGED_TAG: &str = "ajar:managed";
/// The tag naming the instance an ajar-made group is for.
pub const INSTANCE_TAG: &str = "ajar:instance";
/// A failed machine is tried again after this long.
const RETRY: Duration = Duration::from_secs(5);

/// How the enforcer behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The most security groups an interface may have (AWS's default quota is 5): ajar does
    /// not try to attach its group to an interface that has this many.
    pub max_groups_per_interface: usize,
    /// How often every instance, its groups and the rules of the other groups on it are read
    /// again (to repair a detached group and find standing exposures).
    pub rescan: Duration,
    /// The agent's version, reported to the server.
    pub version: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_groups_per_interface: 5,
            rescan: Duration::from_secs(60),
            version: String::new(),
        }
    }
}

type GrantKey = (String, i64);

/// One guarded machine.
#[derive(Debug, Default)]
struct Machine {
    /// What the desired state named (`None`: the machine names no instance).
    target: Option<AwsTarget>,
    /// The protected ports, for exposures.
    protected: Vec<ProtectedPort>,
    /// The grants, with their deadlines on this enforcer's clock.
    grants: Vec<(DesiredGrant, Instant)>,
    /// The instance as last described.
    instance: Option<Instance>,
    /// The group ajar owns on it, once found or made.
    group: Option<String>,
    /// Why the machine cannot be enforced, if it cannot.
    unsupported: Option<String>,
    /// A rule could not be added because the group is full.
    full: Option<String>,
    /// Protected ports other groups leave open to everyone.
    exposures: Vec<Exposure>,
    /// Grants whose rules are in place, reported opened.
    opened: BTreeSet<GrantKey>,
    /// Grants over (ended or revoked) whose rules are still to be removed: reported closed
    /// only once they are.
    closing: BTreeSet<GrantKey>,
    /// Whether the last desired state lists the machine (a machine it no longer lists stays
    /// only until its group is emptied).
    listed: bool,
}

/// The AWS enforcement backend.
pub struct AwsEnforcer {
    ec2: Arc<Ec2>,
    settings: Settings,
    machines: BTreeMap<String, Machine>,
    /// When a machine's rules must change next: a grant's deadline, or a retry.
    due: BTreeSet<(Instant, String)>,
    /// Groups found on start with rules that end later, by the earliest such end.
    sweeps: BTreeSet<(Instant, String)>,
    /// Groups a machine no longer uses (another target, Unsupported, no longer guarded) that
    /// may still hold its rules: emptied before they are forgotten, retried until they are.
    /// By group: the machine and when to try next.
    retiring: BTreeMap<String, (String, Instant)>,
    /// When every machine is read again.
    next_rescan: Option<Instant>,
    /// Statuses as last reported, by machine.
    reported: HashMap<String, MachineStatus>,
    /// Grants reported opened and their ends, to report them closed.
    open: HashMap<GrantKey, Timestamp>,
    /// The last state's server time and when it was read: reports tell the server's time.
    server_clock: Option<(Timestamp, Instant)>,
    pending: AgentReport,
}

fn wall_now() -> Timestamp {
    ajar_api::clock::SystemClock.now()
}

/// The time from `now` until `end`, zero when it has passed.
fn until(end: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(end.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// Why a machine's target could not be resolved.
enum Unresolved {
    /// It cannot be enforced until something changes in AWS or on the machine.
    Unsupported(String),
    /// A call failed; try again.
    Failed(AwsError),
}

impl From<AwsError> for Unresolved {
    fn from(e: AwsError) -> Self {
        Unresolved::Failed(e)
    }
}

/// One of the rule calls the enforcer makes on a group, for [`in_batches`].
trait GroupCall<T> {
    /// Makes the call for `items`.
    fn call<'a>(
        &self,
        ec2: &'a Ec2,
        group: &'a str,
        items: &'a [T],
    ) -> impl Future<Output = Result<(), AwsError>> + Send + 'a;
}

/// `AuthorizeSecurityGroupIngress`.
struct Authorize;
/// `RevokeSecurityGroupIngress` by rule.
struct Revoke;
/// `RevokeSecurityGroupIngress` by rule id.
struct RevokeIds;
/// `UpdateSecurityGroupRuleDescriptionsIngress`.
struct Redescribe;

impl GroupCall<Rule> for Authorize {
    fn call<'a>(
        &self,
        ec2: &'a Ec2,
        group: &'a str,
        items: &'a [Rule],
    ) -> impl Future<Output = Result<(), AwsError>> + Send + 'a {
        ec2.authorize(group, items)
    }
}

impl GroupCall<RuleKey> for Revoke {
    fn call<'a>(
        &self,
        ec2: &'a Ec2,
        group: &'a str,
        items: &'a [RuleKey],
    ) -> impl Future<Output = Result<(), AwsError>> + Send + 'a {
        ec2.revoke(group, items)
    }
}

impl GroupCall<String> for RevokeIds {
    fn call<'a>(
        &self,
        ec2: &'a Ec2,
        group: &'a str,
        items: &'a [String],
    ) -> impl Future<Output = Result<(), AwsError>> + Send + 'a {
        ec2.revoke_ids(group, items)
    }
}

impl GroupCall<Rule> for Redescribe {
    fn call<'a>(
        &self,
        ec2: &'a Ec2,
        group: &'a str,
        items: &'a [Rule],
    ) -> impl Future<Output = Result<(), AwsError>> + Send + 'a {
        ec2.describe_rules_as(group, items)
    }
}

/// Makes `call` on `group` for `items` a batch at a time. EC2 takes or refuses a batch whole,
/// so a batch refused with a code `expected` accepts (a duplicate, a missing rule) is tried
/// again one item at a time, and the items refused so are returned with their codes; any other
/// error ends the work.
async fn in_batches<T: Clone + Sync>(
    ec2: &Ec2,
    group: &str,
    items: &[T],
    call: impl GroupCall<T>,
    expected: impl Fn(&str) -> bool,
) -> Result<Vec<(T, String)>, AwsError> {
    let mut refused = Vec::new();
    for batch in items.chunks(crate::ec2::BATCH) {
        match call.call(ec2, group, batch).await {
            Ok(()) => continue,
            Err(e) if e.code().is_some_and(&expected) => {}
            Err(e) => return Err(e),
        }
        for item in batch {
            match call.call(ec2, group, std::slice::from_ref(item)).await {
                Ok(()) => {}
                Err(AwsError::Api { code, .. }) if expected(&code) => {
                    refused.push((item.clone(), code))
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(refused)
}

impl AwsEnforcer {
    /// An enforcer calling EC2 through `ec2`.
    pub fn new(ec2: Arc<Ec2>, settings: Settings) -> Self {
        let version = settings.version.clone();
        Self {
            ec2,
            settings,
            machines: BTreeMap::new(),
            due: BTreeSet::new(),
            sweeps: BTreeSet::new(),
            retiring: BTreeMap::new(),
            next_rescan: None,
            reported: HashMap::new(),
            open: HashMap::new(),
            server_clock: None,
            pending: AgentReport {
                version,
                applied_revision: 0,
                opened: Vec::new(),
                closed: Vec::new(),
                machines: Vec::new(),
            },
        }
    }

    /// The server's time now, counted from the last state on the monotonic clock (the host's
    /// own clock before any state).
    fn server_now(&self) -> Timestamp {
        match self.server_clock {
            Some((time, at)) => time
                .saturating_add(jiff::SignedDuration::try_from(at.elapsed()).unwrap_or_default())
                .unwrap_or(time),
            None => wall_now(),
        }
    }

    /// Before any desired state: removes, from every group tagged `ajar:managed=true` in the
    /// region, the rules whose described end has passed and any rule that is not ajar's, and
    /// schedules the removal of the others at their described ends. Returns how many rules
    /// it removed.
    pub async fn sweep(&mut self) -> Result<usize, AwsError> {
        let groups = self
            .ec2
            .groups_where(&[(&format!("tag:{MANAGED_TAG}"), vec!["true".to_owned()])])
            .await?;
        let mut removed = 0;
        for group in groups {
            // Rules not written by ajar are removed only from the groups ajar made itself: a
            // group an operator tagged keeps them until ajar's agent guards it.
            let made_by_ajar = group
                .tags
                .get(INSTANCE_TAG)
                .is_some_and(|instance| group.name == format!("ajar-{instance}"));
            match self.sweep_group(&group.id, made_by_ajar).await {
                Ok(n) => removed += n,
                Err(e) => {
                    tracing::warn!(group = %group.id, error = %e, "cannot sweep the group; trying again");
                    self.sweeps.insert((Instant::now() + RETRY, group.id));
                }
            }
        }
        Ok(removed)
    }

    /// Sweeps one group; see [`AwsEnforcer::sweep`]. Rules that are not ajar's go only when
    /// `foreign_too`.
    async fn sweep_group(&mut self, group: &str, foreign_too: bool) -> Result<usize, AwsError> {
        let rules = self.ec2.rules(&[group.to_owned()]).await?;
        let now = wall_now();
        let (keys, mut ids) = plan::stale(&rules, now);
        if !foreign_too {
            ids.clear();
        }
        let removed = keys.len() + ids.len();
        if removed > 0 {
            tracing::info!(group, removed, "removing rules past their end");
        }
        self.revoke(group, &keys).await?;
        self.revoke_ids(group, &ids).await?;
        let next = rules
            .iter()
            .filter_map(|r| r.description.as_deref().and_then(plan::described_end))
            .filter(|end| *end > now)
            .min();
        self.sweeps.retain(|(_, g)| g != group);
        if let Some(end) = next {
            self.sweeps
                .insert((Instant::now() + until(end, now), group.to_owned()));
        }
        Ok(removed)
    }

    /// Adds rules, treating a rule that exists as added. Returns the rules that did not fit
    /// (the group's rule quota).
    async fn authorize(&self, group: &str, rules: &[Rule]) -> Result<Vec<Rule>, AwsError> {
        const DUPLICATE: &str = "InvalidPermission.Duplicate";
        const FULL: &str = "RulesPerSecurityGroupLimitExceeded";
        let refused = in_batches(&self.ec2, group, rules, Authorize, |code| {
            code == DUPLICATE || code == FULL
        })
        .await?;
        let mut full: Vec<Rule> = refused
            .into_iter()
            .filter(|(_, code)| code == FULL)
            .map(|(rule, _)| rule)
            .collect();
        if !full.is_empty() {
            // A refused batch may have been added in part: only what is missing did not fit.
            let present: BTreeSet<RuleKey> = self
                .ec2
                .rules(&[group.to_owned()])
                .await?
                .iter()
                .filter(|r| !r.egress)
                .filter_map(|r| r.key())
                .collect();
            full.retain(|rule| !present.contains(&rule.key));
        }
        Ok(full)
    }

    /// Removes rules by key, treating a missing rule as removed.
    async fn revoke(&self, group: &str, keys: &[RuleKey]) -> Result<(), AwsError> {
        in_batches(&self.ec2, group, keys, Revoke, |code| {
            code == "InvalidPermission.NotFound"
        })
        .await
        .map(drop)
    }

    /// Removes rules by id, treating a missing rule as removed.
    async fn revoke_ids(&self, group: &str, ids: &[String]) -> Result<(), AwsError> {
        in_batches(&self.ec2, group, ids, RevokeIds, |code| {
            code.ends_with(".NotFound")
        })
        .await
        .map(drop)
    }

    /// Changes descriptions, ignoring rules that are gone (the next reconcile adds them).
    async fn redescribe(&self, group: &str, rules: &[Rule]) -> Result<(), AwsError> {
        in_batches(&self.ec2, group, rules, Redescribe, |code| {
            code == "InvalidPermission.NotFound"
        })
        .await
        .map(drop)
    }

    /// Finds (or makes) the group ajar owns on `instance` and attaches it to every interface.
    async fn own_group(
        &self,
        target: &AwsTarget,
        instance: &Instance,
    ) -> Result<String, Unresolved> {
        let Some(vpc) = instance.vpc_id.clone() else {
            return Err(Unresolved::Unsupported(format!(
                "instance {} is not in a VPC: no security group of ajar's can be attached",
                instance.id
            )));
        };
        if instance.interfaces.is_empty() {
            return Err(Unresolved::Unsupported(format!(
                "instance {} has no network interface to attach a security group to",
                instance.id
            )));
        }
        let group = match &target.group_id {
            Some(id) => {
                let found = match self.ec2.groups(std::slice::from_ref(id)).await {
                    Ok(found) => found,
                    Err(e) if e.code() == Some("InvalidGroup.NotFound") => Vec::new(),
                    Err(e) => return Err(e.into()),
                };
                let Some(group) = found.into_iter().find(|g| &g.id == id) else {
                    return Err(Unresolved::Unsupported(format!(
                        "security group {id} (label aws:group-id) does not exist"
                    )));
                };
                group
            }
            None => {
                let name = format!("ajar-{}", instance.id);
                let by_name = |ec2: Arc<Ec2>, name: String, vpc: String| async move {
                    ec2.groups_where(&[("group-name", vec![name]), ("vpc-id", vec![vpc])])
                        .await
                };
                match by_name(self.ec2.clone(), name.clone(), vpc.clone())
                    .await?
                    .pop()
                {
                    Some(group) => group,
                    None => {
                        // Make no group that cannot be attached.
                        if let Some(full) = instance
                            .interfaces
                            .iter()
                            .find(|i| i.groups.len() >= self.settings.max_groups_per_interface)
                        {
                            return Err(Unresolved::Unsupported(format!(
                                "no ajar-managed group attachable: interface {} already has {} \
                                 security groups, the most an interface may have",
                                full.id,
                                full.groups.len()
                            )));
                        }
                        let made = self
                            .ec2
                            .create_group(
                                &name,
                                &format!("ajar-managed JIT access for {}", instance.id),
                                &vpc,
                                &[(MANAGED_TAG, "true"), (INSTANCE_TAG, &instance.id)],
                            )
                            .await;
                        match made {
                            Ok(_) => {}
                            // Another enforcer made it meanwhile.
                            Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {}
                            Err(e) => return Err(e.into()),
                        }
                        let Some(group) = by_name(self.ec2.clone(), name.clone(), vpc.clone())
                            .await?
                            .pop()
                        else {
                            return Err(Unresolved::Failed(AwsError::Setup(format!(
                                "security group {name} was made but cannot be found"
                            ))));
                        };
                        tracing::info!(instance = %instance.id, group = %group.id, "made ajar's security group");
                        group
                    }
                }
            }
        };
        if let Some(owner) = group.tags.get(INSTANCE_TAG)
            && *owner != instance.id
        {
            return Err(Unresolved::Unsupported(format!(
                "security group {} ({}) is ajar's group for instance {owner}, not {}",
                group.id, group.name, instance.id
            )));
        }
        if group.tags.get(MANAGED_TAG).map(String::as_str) != Some("true") {
            return Err(Unresolved::Unsupported(format!(
                "security group {} ({}) is not tagged {MANAGED_TAG}=true: ajar changes only groups \
                 tagged so",
                group.id, group.name
            )));
        }
        if group.vpc_id.as_deref() != Some(vpc.as_str()) {
            return Err(Unresolved::Unsupported(format!(
                "security group {} is in another VPC than instance {}",
                group.id, instance.id
            )));
        }
        for interface in &instance.interfaces {
            if interface.groups.contains(&group.id) {
                continue;
            }
            if interface.groups.len() >= self.settings.max_groups_per_interface {
                return Err(Unresolved::Unsupported(format!(
                    "no ajar-managed group attachable: interface {} already has {} security \
                     groups, the most an interface may have",
                    interface.id,
                    interface.groups.len()
                )));
            }
            let mut groups = interface.groups.clone();
            groups.push(group.id.clone());
            match self.ec2.set_interface_groups(&interface.id, &groups).await {
                Ok(()) => {
                    tracing::info!(interface = %interface.id, group = %group.id, "attached ajar's security group")
                }
                Err(e) if e.code() == Some("SecurityGroupsPerInterfaceLimitExceeded") => {
                    return Err(Unresolved::Unsupported(format!(
                        "no ajar-managed group attachable: {e}"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(group.id)
    }

    /// Gives machine `m` the group `new`. A group it used before is emptied first (its rules
    /// would otherwise stay open with nothing to close them); until that is done, the grants
    /// opened there are not reported closed.
    fn set_group(&mut self, m: &str, new: Option<String>) {
        let Some(machine) = self.machines.get_mut(m) else {
            return;
        };
        if machine.group == new {
            return;
        }
        if let Some(old) = machine.group.take() {
            self.retiring.insert(old, (m.to_owned(), Instant::now()));
        }
        machine.group = new;
        if machine.group.is_some() {
            self.due.insert((Instant::now(), m.to_owned()));
        }
    }

    /// Removes every inbound rule from a group a machine no longer uses.
    async fn retire(&mut self, group: &str) -> Result<(), AwsError> {
        let current = match self.ec2.rules(&[group.to_owned()]).await {
            Ok(current) => current,
            // A group that is gone holds nothing.
            Err(e) if e.code() == Some("InvalidGroup.NotFound") => Vec::new(),
            Err(e) => return Err(e),
        };
        let changes = plan::changes(&BTreeMap::new(), &current);
        self.revoke(group, &changes.revoke).await?;
        self.revoke_ids(group, &changes.revoke_ids).await?;
        Ok(())
    }

    /// Empties the retiring groups that are due; reports closed what was open in them.
    async fn run_retiring(&mut self) {
        let now = Instant::now();
        let due: Vec<(String, String)> = self
            .retiring
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(g, (m, _))| (g.clone(), m.clone()))
            .collect();
        for (group, m) in due {
            match self.retire(&group).await {
                Ok(()) => {
                    tracing::info!(machine = %m, %group, "emptied a group the machine no longer uses");
                    self.retiring.remove(&group);
                    let (listed, has_group, opened) = match self.machines.get(&m) {
                        Some(x) => (
                            x.listed,
                            x.group.is_some(),
                            x.opened.iter().cloned().collect::<Vec<_>>(),
                        ),
                        None => (false, false, Vec::new()),
                    };
                    if !has_group && !self.retiring.values().any(|(x, _)| *x == m) {
                        // Nothing of the machine's is open anywhere now.
                        self.close(&m, &opened);
                        if let Some(x) = self.machines.get_mut(&m) {
                            x.closing.clear();
                        }
                        if !listed {
                            self.machines.remove(&m);
                            self.reported.remove(&m);
                            self.due.retain(|(_, x)| *x != m);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(machine = %m, %group, error = %e, "cannot empty a group the machine no longer uses; trying again");
                    self.retiring.insert(group, (m, now + RETRY));
                }
            }
        }
    }

    /// Reads these machines' instances again, makes sure ajar's group is on them, and finds
    /// their standing exposures.
    async fn refresh(&mut self, ids: &[String]) {
        let instance_ids: BTreeSet<String> = ids
            .iter()
            .filter_map(|m| self.machines.get(m)?.target.as_ref())
            .map(|t| t.instance_id.clone())
            .collect();
        let mut found: HashMap<String, Instance> = HashMap::new();
        let mut failed: BTreeSet<String> = BTreeSet::new();
        for id in &instance_ids {
            // One at a time, so that one unknown id does not hide the others.
            match self.ec2.instances(&Select::Ids(vec![id.clone()])).await {
                Ok(list) => found.extend(list.into_iter().map(|i| (i.id.clone(), i))),
                Err(e)
                    if matches!(
                        e.code(),
                        Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed")
                    ) => {}
                Err(e) => {
                    tracing::warn!(instance = %id, error = %e, "cannot describe the instance; trying again");
                    failed.insert(id.clone());
                    for (m, machine) in &self.machines {
                        if machine
                            .target
                            .as_ref()
                            .is_some_and(|t| &t.instance_id == id)
                        {
                            self.due.insert((Instant::now() + RETRY, m.clone()));
                        }
                    }
                }
            }
        }
        let region = self.ec2.region().to_owned();
        for m in ids {
            let Some(target) = self.machines.get(m).and_then(|x| x.target.clone()) else {
                continue;
            };
            if failed.contains(&target.instance_id) {
                // Keep what is known until the instance can be read again.
                continue;
            }
            let twin = self
                .machines
                .iter()
                .find(|(other, x)| {
                    *other != m
                        && x.listed
                        && x.target.as_ref().map(|t| &t.instance_id) == Some(&target.instance_id)
                })
                .map(|(other, _)| other.clone());
            let result = match (twin, found.get(&target.instance_id)) {
                (Some(other), _) => Err(Unresolved::Unsupported(format!(
                    "instance {} is also machine {other}: one instance can be only one machine",
                    target.instance_id
                ))),
                (None, found) => match found {
                    None => Err(Unresolved::Unsupported(format!(
                        "instance {} not found in region {region}",
                        target.instance_id
                    ))),
                    Some(i) if matches!(i.state.as_str(), "terminated" | "shutting-down") => Err(
                        Unresolved::Unsupported(format!("instance {} is terminated", i.id)),
                    ),
                    Some(i) => self.own_group(&target, i).await,
                },
            };
            let Some(machine) = self.machines.get_mut(m) else {
                continue;
            };
            machine.instance = found.get(&target.instance_id).cloned();
            match result {
                Ok(group) => {
                    machine.unsupported = None;
                    self.set_group(m, Some(group));
                }
                Err(Unresolved::Unsupported(reason)) => {
                    tracing::warn!(machine = %m, %reason, "cannot enforce on the machine");
                    machine.unsupported = Some(reason);
                    self.set_group(m, None);
                }
                Err(Unresolved::Failed(e)) => {
                    tracing::warn!(machine = %m, error = %e, "cannot set up the machine's security group; trying again");
                    self.due.insert((Instant::now() + RETRY, m.clone()));
                }
            }
        }
        self.find_exposures(ids).await;
    }

    /// Finds, for these machines, the protected ports other groups open to everyone.
    async fn find_exposures(&mut self, ids: &[String]) {
        let mut foreign: BTreeSet<String> = BTreeSet::new();
        for m in ids {
            let Some(machine) = self.machines.get(m) else {
                continue;
            };
            let Some(instance) = &machine.instance else {
                continue;
            };
            for interface in &instance.interfaces {
                for g in &interface.groups {
                    if machine.group.as_ref() != Some(g) {
                        foreign.insert(g.clone());
                    }
                }
            }
        }
        let foreign: Vec<String> = foreign.into_iter().collect();
        let rules = match self.ec2.rules(&foreign).await {
            Ok(rules) => rules,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the other security groups' rules");
                return;
            }
        };
        let names: BTreeMap<String, String> = match self.ec2.groups(&foreign).await {
            Ok(groups) => groups.into_iter().map(|g| (g.id, g.name)).collect(),
            Err(_) => BTreeMap::new(),
        };
        for m in ids {
            let Some(machine) = self.machines.get_mut(m) else {
                continue;
            };
            let groups: BTreeSet<&String> = machine
                .instance
                .iter()
                .flat_map(|i| i.interfaces.iter().flat_map(|x| x.groups.iter()))
                .filter(|g| machine.group.as_ref() != Some(*g))
                .collect();
            let mine: Vec<_> = rules
                .iter()
                .filter(|r| groups.contains(&r.group_id))
                .cloned()
                .collect();
            machine.exposures = plan::exposures(&machine.protected, &mine, &names);
        }
    }

    /// Makes a machine's group hold exactly the rules of its grants with time left; reports
    /// which grants opened and closed.
    async fn reconcile(&mut self, m: &str) {
        let now = Instant::now();
        let Some(machine) = self.machines.get_mut(m) else {
            return;
        };
        // Grants whose deadline has come are over.
        let (live, over): (Vec<_>, Vec<_>) = machine
            .grants
            .drain(..)
            .partition(|(_, deadline)| *deadline > now);
        machine.grants = live;
        machine
            .closing
            .extend(over.into_iter().map(|(g, _)| (g.request_id, g.seq)));
        let Some(group) = machine.group.clone() else {
            // Without a group nothing of the machine's is open, unless a group it used before
            // is still being emptied: then that closes them.
            if !self.retiring.values().any(|(x, _)| x == m) {
                let closing: Vec<GrantKey> = machine.closing.iter().cloned().collect();
                machine.closing.clear();
                self.close(m, &closing);
            }
            return;
        };
        let held: Vec<HeldGrant> = machine
            .grants
            .iter()
            .map(|(g, deadline)| HeldGrant {
                request_id: g.request_id.clone(),
                seq: g.seq,
                number: g.number.get(),
                protocol: g.protocol,
                sources: g.sources.clone(),
                end: g.end_time_utc,
                left: deadline.saturating_duration_since(now),
            })
            .collect();
        let wanted = plan::wanted(&held);
        let result = async {
            let current = self.ec2.rules(std::slice::from_ref(&group)).await?;
            let changes = plan::changes(&wanted, &current);
            if changes.is_empty() {
                return Ok(Vec::new());
            }
            tracing::debug!(machine = m, group, ?changes, "changing rules");
            // Remove first: the group's quota counts every rule.
            self.revoke(&group, &changes.revoke).await?;
            self.revoke_ids(&group, &changes.revoke_ids).await?;
            self.redescribe(&group, &changes.redescribe).await?;
            self.authorize(&group, &changes.authorize).await
        }
        .await;
        if result.is_ok() {
            let closing: Vec<GrantKey> = self
                .machines
                .get_mut(m)
                .map(|x| std::mem::take(&mut x.closing).into_iter().collect())
                .unwrap_or_default();
            self.close(m, &closing);
        }
        let server_now = self.server_now();
        let Some(machine) = self.machines.get_mut(m) else {
            return;
        };
        match result {
            Ok(full) => {
                let unplaced: BTreeSet<RuleKey> = full.iter().map(|r| r.key).collect();
                machine.full = (!full.is_empty()).then(|| {
                    format!(
                        "security group {group} is full: {} rule(s) could not be added; \
                         raise its rule quota or shorten the source lists",
                        full.len()
                    )
                });
                for g in &held {
                    let key = (g.request_id.clone(), g.seq);
                    let placed = plan::rule_keys(g.number, g.protocol, &g.sources)
                        .iter()
                        .all(|k| !unplaced.contains(k));
                    if placed && g.left > Duration::ZERO && machine.opened.insert(key.clone()) {
                        self.open.insert(key.clone(), g.end);
                        self.pending.opened.push(GrantRef {
                            request_id: key.0,
                            seq: key.1,
                            at: server_now.min(g.end),
                        });
                    }
                }
                // A deadline may have passed while the calls ran: close it now.
                if let Some(next) = machine.grants.iter().map(|(_, d)| *d).min() {
                    self.due.insert((next, m.to_owned()));
                }
            }
            Err(e) => {
                tracing::warn!(machine = m, %group, error = %e, "cannot change the machine's rules; trying again");
                if e.code() == Some("InvalidGroup.NotFound") {
                    // The group is gone, and its rules with it.
                    machine.group = None;
                    self.due.insert((Instant::now() + RETRY, m.to_owned()));
                    let ids = vec![m.to_owned()];
                    self.refresh(&ids).await;
                } else {
                    self.due.insert((Instant::now() + RETRY, m.to_owned()));
                }
            }
        }
        self.note_status(m);
    }

    /// Reports these grants of `m` closed.
    fn close(&mut self, m: &str, keys: &[GrantKey]) {
        let now = self.server_now();
        let Some(machine) = self.machines.get_mut(m) else {
            return;
        };
        for key in keys {
            if machine.opened.remove(key)
                && let Some(end) = self.open.remove(key)
            {
                self.pending.closed.push(GrantRef {
                    request_id: key.0.clone(),
                    seq: key.1,
                    at: end.min(now),
                });
            }
        }
    }

    /// Queues the machine's status for the report when it changed.
    fn note_status(&mut self, m: &str) {
        let Some(machine) = self.machines.get(m).filter(|x| x.listed) else {
            return;
        };
        let status = MachineStatus {
            id: m.to_owned(),
            unsupported_reason: machine.unsupported.clone().or_else(|| machine.full.clone()),
            exposures: machine.exposures.clone(),
        };
        if self.reported.get(m) != Some(&status) {
            self.pending.machines.retain(|s| s.id != m);
            self.pending.machines.push(status.clone());
            self.reported.insert(m.to_owned(), status);
        }
    }

    /// How many grants have their rules in place.
    pub fn open_grants(&self) -> usize {
        self.open.len()
    }

    /// The group ajar owns on a machine, once found or made.
    pub fn group_of(&self, machine: &str) -> Option<&str> {
        self.machines.get(machine)?.group.as_deref()
    }

    async fn apply_state(&mut self, state: &DesiredState, elapsed: Duration) -> Result<(), String> {
        if state.mode != AgentMode::Aws {
            return Err(format!(
                "this agent is registered for mode {}: run it without --mode aws",
                state.mode.as_str()
            ));
        }
        let now = Instant::now();
        self.server_clock = Some((state.server_time, now.checked_sub(elapsed).unwrap_or(now)));
        let mut new_targets = Vec::new();
        let listed: BTreeSet<&str> = state.machines.iter().map(|m| m.id.as_str()).collect();
        // Machines no longer guarded: their rules go.
        let gone: Vec<String> = self
            .machines
            .keys()
            .filter(|m| !listed.contains(m.as_str()))
            .cloned()
            .collect();
        for m in gone {
            if let Some(machine) = self.machines.get_mut(&m) {
                machine.grants.clear();
                machine.listed = false;
                machine.target = None;
            }
            self.reported.remove(&m);
            self.due.retain(|(_, x)| *x != m);
            // Its group is emptied (retried until it is); then it is forgotten.
            self.set_group(&m, None);
            if !self.retiring.values().any(|(x, _)| *x == m) {
                self.machines.remove(&m);
            }
        }
        for desired in &state.machines {
            let machine = self.machines.entry(desired.id.clone()).or_default();
            machine.listed = true;
            if machine.target != desired.aws {
                machine.target = desired.aws.clone();
                machine.instance = None;
                machine.unsupported = None;
                new_targets.push(desired.id.clone());
                self.set_group(&desired.id, None);
            }
            let Some(machine) = self.machines.get_mut(&desired.id) else {
                continue;
            };
            if machine.target.is_none() {
                machine.unsupported = Some(
                    "the machine names no EC2 instance: give it the label aws:instance-id".into(),
                );
            }
            let protected_changed = machine.protected != desired.protected_ports;
            machine.protected = desired.protected_ports.clone();
            let before: Vec<&DesiredGrant> = machine.grants.iter().map(|(g, _)| g).collect();
            let after: Vec<&DesiredGrant> = desired.grants.iter().collect();
            if before != after {
                let old: HashMap<GrantKey, Instant> = machine
                    .grants
                    .iter()
                    .map(|(g, d)| ((g.request_id.clone(), g.seq), *d))
                    .collect();
                machine.grants = desired
                    .grants
                    .iter()
                    .map(|g| {
                        let left = until(g.end_time_utc, state.server_time).saturating_sub(elapsed);
                        let deadline = now + left;
                        // A deadline never moves later once fixed.
                        let deadline = match old.get(&(g.request_id.clone(), g.seq)) {
                            Some(&first) => first.min(deadline),
                            None => deadline,
                        };
                        (g.clone(), deadline)
                    })
                    .collect();
                let current: BTreeSet<GrantKey> = machine
                    .grants
                    .iter()
                    .map(|(g, _)| (g.request_id.clone(), g.seq))
                    .collect();
                let revoked: Vec<GrantKey> = machine
                    .opened
                    .iter()
                    .filter(|k| !current.contains(*k))
                    .cloned()
                    .collect();
                // Reported closed once their rules are gone.
                machine.closing.extend(revoked);
                self.due.insert((now, desired.id.clone()));
            } else if protected_changed && !new_targets.contains(&desired.id) {
                new_targets.push(desired.id.clone());
            }
        }
        if !new_targets.is_empty() {
            self.refresh(&new_targets).await;
        }
        self.run_due_now().await;
        for m in state
            .machines
            .iter()
            .map(|m| m.id.clone())
            .collect::<Vec<_>>()
        {
            self.note_status(&m);
        }
        if self.next_rescan.is_none() {
            self.next_rescan = Some(now + self.settings.rescan);
        }
        self.pending.applied_revision = state.revision;
        tracing::info!(revision = state.revision, open = self.open.len(), "applied");
        Ok(())
    }

    /// Reconciles every machine whose time has come, empties groups no longer used, sweeps
    /// groups due, rescans when due.
    async fn run_due_now(&mut self) {
        self.run_retiring().await;
        let now = Instant::now();
        let due: BTreeSet<String> = self
            .due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, m)| m.clone())
            .collect();
        self.due.retain(|(at, _)| *at > now);
        for m in &due {
            self.reconcile(m).await;
        }
        let sweeps: Vec<String> = self
            .sweeps
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, g)| g.clone())
            .collect();
        for group in sweeps {
            if let Err(e) = self.sweep_group(&group, false).await {
                tracing::warn!(%group, error = %e, "cannot sweep the group; trying again");
                self.sweeps.retain(|(_, g)| *g != group);
                self.sweeps.insert((now + RETRY, group));
            }
        }
        if self.next_rescan.is_some_and(|at| at <= now) {
            self.next_rescan = Some(now + self.settings.rescan);
            let all: Vec<String> = self.machines.keys().cloned().collect();
            self.refresh(&all).await;
            for m in &all {
                self.note_status(m);
            }
        }
    }
}

impl Enforce for AwsEnforcer {
    fn apply(
        &mut self,
        state: &DesiredState,
        elapsed: Duration,
    ) -> impl Future<Output = Result<(), String>> + Send {
        self.apply_state(state, elapsed)
    }

    fn next_due(&self) -> Option<Instant> {
        [
            self.due.first().map(|(at, _)| *at),
            self.sweeps.first().map(|(at, _)| *at),
            self.retiring.values().map(|(_, at)| *at).min(),
            self.next_rescan,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn run_due(&mut self) -> impl Future<Output = ()> + Send {
        self.run_due_now()
    }

    fn report(&self) -> &AgentReport {
        &self.pending
    }

    fn report_sent(&mut self) {
        self.pending.opened.clear();
        self.pending.closed.clear();
        self.pending.machines.clear();
    }
}
