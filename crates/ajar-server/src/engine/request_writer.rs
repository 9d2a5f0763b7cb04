//! Group commit for access requests. Initiates are checked concurrently, then handed to one
//! writer task that stores whatever has queued up in a single transaction (two round trips to
//! the database however many requests there are), and answers each only after the commit.
//!
//! On SQLite, where writes are serial anyway, this turns per-request round trips into
//! per-batch ones; a request still gets its own answer and is either stored whole or not at all.

use super::{EngineError, EngineResult};
use crate::notify::{self, Notice, NoticeEvent};
use ajar_core::agent::PortRange;
use ajar_store::{
    NewActivity, NewRequest, PolicyGuard, PortRow, RequestRow, Store, StoreResult, Tx,
};
use std::collections::{BTreeSet, HashMap};
use tokio::sync::{mpsc, oneshot};

/// Most requests gathered into one transaction.
pub const MAX_BATCH: usize = 128;
/// Most bound parameters in one batch (SQLite allows 32,766).
const MAX_PARAMS: usize = 20_000;

/// What happened to one request.
type Outcome = EngineResult<Option<Vec<PortRow>>>;

/// A network access request ready to store, with the guard it is stored under.
#[derive(Debug, Clone)]
pub struct NewAccess {
    /// The request.
    pub request: RequestRow,
    /// Its ports (gateway mapping is filled in when stored).
    pub ports: Vec<PortRow>,
    /// The policy's ETag when the request was checked.
    pub etag: String,
    /// Scopes where JIT being off refuses the request.
    pub blocking_scopes: Vec<String>,
    /// Its activity record, written (with a `requestCreated` notice) when it is stored;
    /// `None` when the caller records the request itself.
    pub activity: Option<NewActivity>,
    /// The most grants its requester may hold open at once, this request's included (0: no
    /// limit).
    pub live_grant_limit: usize,
}

impl NewAccess {
    /// Bound values its statements take: the request (with its subscription and resource
    /// group) and its guard, the supersede, its id in the batch's figures and answer, and per
    /// port its row and supersede key.
    fn params(&self) -> usize {
        17 + self.blocking_scopes.len() + 14 * self.ports.len()
    }

    fn new_request(&self) -> NewRequest<'_> {
        NewRequest {
            request: &self.request,
            ports: &self.ports,
            guard: PolicyGuard {
                etag: &self.etag,
                blocking_scopes: &self.blocking_scopes,
            },
        }
    }
}

struct Job {
    access: NewAccess,
    reply: oneshot::Sender<Outcome>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("request", &self.access.request.id)
            .finish()
    }
}

/// The most grants (open ports) one principal holds at once unless configured otherwise.
pub const DEFAULT_LIVE_GRANT_LIMIT: usize = 100;

/// The handle handlers use to store requests.
#[derive(Debug, Clone)]
pub struct RequestWriter {
    jobs: mpsc::Sender<Job>,
    /// The most grants one principal may hold open at once (0: no limit).
    pub live_grant_limit: usize,
}

impl RequestWriter {
    /// Starts the writer task on the current tokio runtime. It ends when every handle is gone.
    pub fn start(store: Store) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, rx));
        Self {
            jobs,
            live_grant_limit: DEFAULT_LIVE_GRANT_LIMIT,
        }
    }

    /// Stores a request if its policy still has `etag` and JIT is not turned off at any of
    /// `blocking_scopes`. Ports of machines behind a gateway get a mapped port. Answers the
    /// ports as stored (after the commit), or `None` when the guard failed.
    pub async fn write(
        &self,
        request: RequestRow,
        ports: Vec<PortRow>,
        etag: String,
        blocking_scopes: Vec<String>,
        activity: Option<NewActivity>,
    ) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            access: NewAccess {
                request,
                ports,
                etag,
                blocking_scopes,
                activity,
                live_grant_limit: self.live_grant_limit,
            },
            reply,
        };
        let gone = || EngineError::Unavailable("the request writer stopped; retry".to_owned());
        self.jobs.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut queued = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut queued, MAX_BATCH).await > 0 {
        while !queued.is_empty() {
            let mut params = 0;
            let take = queued
                .iter()
                .take_while(|j| {
                    params += j.access.params();
                    params <= MAX_PARAMS
                })
                .count()
                .max(1);
            let batch: Vec<Job> = queued.drain(..take).collect();
            write_batch(&store, batch).await;
        }
    }
}

/// Writes a batch in one transaction; if that fails, writes its jobs one by one so one bad
/// request cannot fail the others.
async fn write_batch(store: &Store, mut batch: Vec<Job>) {
    let error = match store_jobs(store, &mut batch).await {
        Ok(outcomes) => {
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
            return;
        }
        Err(e) => e,
    };
    if let [_] = batch.as_slice() {
        if let Some(job) = batch.into_iter().next() {
            let _ = job.reply.send(Err(EngineError::Store(error)));
        }
        return;
    }
    tracing::warn!(error = %error, size = batch.len(), "batch write failed; writing one by one");
    for mut job in batch {
        let outcome = match store_jobs(store, std::slice::from_mut(&mut job)).await {
            Ok(mut v) => v.pop().unwrap_or(Ok(None)),
            Err(e) => Err(EngineError::Store(e)),
        };
        let _ = job.reply.send(outcome);
    }
}

/// In one transaction: gives ports behind a gateway a free mapped port, then stores every job
/// that got one. Jobs whose gateway has no free port fail alone.
async fn store_jobs(store: &Store, jobs: &mut [Job]) -> StoreResult<Vec<Outcome>> {
    let mut tx = store.write().await?;
    let mut items: Vec<&mut NewAccess> = jobs.iter_mut().map(|j| &mut j.access).collect();
    let outcomes = store_in(&mut tx, &mut items).await?;
    if outcomes.iter().any(|o| matches!(o, Ok(Some(_)))) {
        tx.commit().await?;
    } else {
        // Every guard failed: nothing was written.
        tx.commit_unrecorded().await?;
    }
    Ok(outcomes)
}

/// Stores requests inside `tx` (the caller commits): maps gateway ports, then inserts each
/// request whose guard holds. Answers per request as [`RequestWriter::write`] does.
pub async fn store_in(tx: &mut Tx, jobs: &mut [&mut NewAccess]) -> StoreResult<Vec<Outcome>> {
    let mut machine_ids: Vec<String> = jobs
        .iter()
        .flat_map(|j| j.ports.iter().map(|p| p.machine_id.clone()))
        .collect();
    machine_ids.sort_unstable();
    machine_ids.dedup();
    let gateways: HashMap<String, ajar_store::GatewayRow> = tx
        .gateways_of(&machine_ids)
        .await?
        .into_iter()
        .map(|g| (g.machine_id.clone(), g))
        .collect();
    let mut full = refuse_over_limit(tx, jobs).await?;
    if !gateways.is_empty() {
        let mut agent_ids: Vec<String> = gateways.values().map(|g| g.agent_id.clone()).collect();
        agent_ids.sort_unstable();
        agent_ids.dedup();
        let mut used: HashMap<String, BTreeSet<u16>> = HashMap::new();
        for (agent, port) in tx.mapped_ports_in_use(&agent_ids).await? {
            used.entry(agent).or_default().insert(port);
        }
        for (job, full) in jobs.iter_mut().zip(full.iter_mut()) {
            if full.is_some() {
                continue;
            }
            let mut taken = Vec::new();
            for port in &mut job.ports {
                let Some(g) = gateways.get(&port.machine_id) else {
                    continue;
                };
                let range = PortRange {
                    low: g.port_range.0,
                    high: g.port_range.1,
                };
                let in_use = used.entry(g.agent_id.clone()).or_default();
                match range.allocate(in_use) {
                    Some(mapped) => {
                        in_use.insert(mapped);
                        taken.push((g.agent_id.clone(), mapped));
                        port.gateway_agent = Some(g.agent_id.clone());
                        port.mapped_port = Some(mapped);
                        port.connect_address = g.public_address.clone();
                    }
                    None => {
                        *full = Some(format!(
                            "gateway of {} has no free mapped port",
                            port.machine_id
                        ));
                        break;
                    }
                }
            }
            if full.is_some() {
                // Give back what this job took, so later jobs may use it.
                for (agent, mapped) in taken {
                    used.entry(agent).or_default().remove(&mapped);
                }
            }
        }
    }
    let items: Vec<NewRequest<'_>> = jobs
        .iter()
        .zip(&full)
        .filter(|(_, full)| full.is_none())
        .map(|(j, _)| j.new_request())
        .collect();
    let stored_flags = tx.insert_requests(&items).await?;
    let mut notices = Vec::new();
    let kept = jobs
        .iter()
        .zip(&full)
        .filter(|(_, full)| full.is_none())
        .map(|(j, _)| j)
        .zip(&stored_flags);
    for (job, stored) in kept {
        let (true, Some(activity)) = (*stored, &job.activity) else {
            continue;
        };
        tx.record(activity).await?;
        let r = &job.request;
        let end = job.ports.iter().map(|p| p.end_time).max();
        notices.push(Notice::network(
            NoticeEvent::RequestCreated,
            r,
            end,
            r.created_at,
        ));
    }
    notify::queue(tx, &notices).await?;
    let mut stored = stored_flags.into_iter();
    Ok(jobs
        .iter()
        .zip(full)
        .map(|(job, full)| match full {
            Some(why) => Err(EngineError::Conflict(why)),
            None => Ok(stored.next().unwrap_or(false).then(|| job.ports.clone())),
        })
        .collect())
}

/// Refuses each job that would leave its requester holding more open grants than its limit
/// (a new port with the same supersede key as an open one replaces it, so it does not count
/// twice; a limit of 0 means none). Counts follow the jobs in order, so several jobs of one
/// requester in a batch add up. Reads at most limit + the batch's ports of a requester's open
/// grants: if there are that many, every job of theirs is over the limit anyway.
async fn refuse_over_limit(
    tx: &mut Tx,
    jobs: &[&mut NewAccess],
) -> StoreResult<Vec<Option<String>>> {
    let mut asked: HashMap<&str, usize> = HashMap::new();
    for job in jobs.iter().filter(|j| j.live_grant_limit > 0) {
        *asked.entry(job.request.requestor.as_str()).or_default() += job.ports.len();
    }
    let mut live: HashMap<String, Vec<String>> = HashMap::new();
    let mut refused = Vec::with_capacity(jobs.len());
    for job in jobs {
        let limit = job.live_grant_limit;
        if limit == 0 {
            refused.push(None);
            continue;
        }
        let who = &job.request.requestor;
        if !live.contains_key(who) {
            let bound = limit.saturating_add(asked.get(who.as_str()).copied().unwrap_or(0));
            let keys = tx
                .live_grant_keys(who, job.request.created_at, bound)
                .await?;
            live.insert(who.clone(), keys);
        }
        let held = live.entry(who.clone()).or_default();
        let new: BTreeSet<&str> = job.ports.iter().map(|p| p.supersede_key.as_str()).collect();
        let kept = held.iter().filter(|k| !new.contains(k.as_str())).count();
        if kept + job.ports.len() > limit {
            refused.push(Some(format!(
                "{who} holds {}{} open grants and this request adds {}: one principal may hold \
                 at most {limit} at once (the server's live grant limit); revoke some or let \
                 them end",
                held.len(),
                if held.len() > limit { " or more" } else { "" },
                job.ports.len(),
            )));
            continue;
        }
        held.retain(|k| !new.contains(k.as_str()));
        held.extend(job.ports.iter().map(|p| p.supersede_key.clone()));
        refused.push(None);
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    const POLICY: &str = "/subscriptions/s/resourceGroups/rg/jitNetworkAccessPolicies/p";

    fn job(id: &str) -> (Job, oneshot::Receiver<Outcome>) {
        let (reply, answer) = oneshot::channel();
        let at = Timestamp::from_second(1_000).unwrap();
        let job = Job {
            access: NewAccess {
                request: RequestRow {
                    id: id.into(),
                    policy_id: POLICY.into(),
                    requestor: "alice".into(),
                    justification: None,
                    source_address: None,
                    created_at: at,
                },
                ports: vec![PortRow::initiated(
                    id,
                    0,
                    "m".into(),
                    22,
                    "*".into(),
                    vec![format!("10.0.0.{}", id.len())],
                    format!("m|22|{id}"),
                    Timestamp::from_second(5_000).unwrap(),
                )],
                etag: "e1".into(),
                blocking_scopes: vec![],
                activity: Some(NewActivity::new(at, "alice", "initiate", POLICY).for_request(id)),
                live_grant_limit: DEFAULT_LIVE_GRANT_LIMIT,
            },
            reply,
        };
        (job, answer)
    }

    #[tokio::test]
    async fn one_bad_request_does_not_fail_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("t.db")).await.unwrap();
        let mut tx = store.write().await.unwrap();
        tx.put_policy(
            POLICY,
            "s",
            "rg",
            "p",
            "{}",
            &[],
            "e1",
            None,
            Timestamp::UNIX_EPOCH,
        )
        .await
        .unwrap();
        tx.commit_unrecorded().await.unwrap();
        let (first, _) = job("dup");
        write_batch(&store, vec![first]).await;
        // A batch whose middle request reuses an id: the batch fails as a whole, then each
        // request is written alone, so only the bad one gets an error.
        let (a, a_answer) = job("a");
        let (dup, dup_answer) = job("dup");
        let (c, c_answer) = job("c");
        write_batch(&store, vec![a, dup, c]).await;
        assert!(matches!(a_answer.await, Ok(Ok(Some(_)))));
        assert!(matches!(dup_answer.await, Ok(Err(_))));
        assert!(matches!(c_answer.await, Ok(Ok(Some(_)))));
        // Each stored request has exactly one record; the refused one has none of its own.
        let mut read = store.read().await.unwrap();
        let records = read.activity_in_order(0, 100).await.unwrap();
        let mut ids: Vec<_> = records
            .iter()
            .filter_map(|r| r.record.request_id.clone())
            .collect();
        ids.sort();
        assert_eq!(ids, vec!["a", "c", "dup"]);
    }
}
