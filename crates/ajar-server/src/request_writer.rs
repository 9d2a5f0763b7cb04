//! Group commit for access requests. Initiates are checked concurrently, then handed to one
//! writer task that stores whatever has queued up in a single transaction (two round trips to
//! the database however many requests there are), and answers each only after the commit.
//!
//! On SQLite, where writes are serial anyway, this turns per-request round trips into
//! per-batch ones; a request still gets its own answer and is either stored whole or not at all.

use crate::error::AppError;
use ajar_api::ErrorCode;
use ajar_store::{NewRequest, PolicyGuard, PortRow, RequestRow, Store, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// Most requests gathered into one transaction.
pub const MAX_BATCH: usize = 128;
/// Most bound parameters in one batch (SQLite allows 32,766).
const MAX_PARAMS: usize = 20_000;

struct Job {
    request: RequestRow,
    ports: Vec<PortRow>,
    etag: String,
    blocking_scopes: Vec<String>,
    reply: oneshot::Sender<Result<bool, AppError>>,
}

impl Job {
    fn params(&self) -> usize {
        9 + self.blocking_scopes.len() + 11 * self.ports.len()
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

/// The handle handlers use to store requests.
#[derive(Debug, Clone)]
pub struct RequestWriter {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("request", &self.request.id)
            .finish()
    }
}

impl RequestWriter {
    /// Starts the writer task on the current tokio runtime. It ends when every handle is gone.
    pub fn start(store: Store) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, rx));
        Self { jobs }
    }

    /// Stores a request if its policy still has `etag` and JIT is not turned off at any of
    /// `blocking_scopes`; true when stored (and committed).
    pub async fn write(
        &self,
        request: RequestRow,
        ports: Vec<PortRow>,
        etag: String,
        blocking_scopes: Vec<String>,
    ) -> Result<bool, AppError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request,
            ports,
            etag,
            blocking_scopes,
            reply,
        };
        let gone = || {
            AppError::new(
                ErrorCode::ServiceUnavailable,
                "the request writer stopped; retry",
            )
        };
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
                    params += j.params();
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
async fn write_batch(store: &Store, batch: Vec<Job>) {
    let error = match store_jobs(store, &batch).await {
        Ok(stored) => {
            for (job, ok) in batch.into_iter().zip(stored) {
                let _ = job.reply.send(Ok(ok));
            }
            return;
        }
        Err(e) => e,
    };
    if let [_] = batch.as_slice() {
        if let Some(job) = batch.into_iter().next() {
            let _ = job.reply.send(Err(AppError::from(error)));
        }
        return;
    }
    tracing::warn!(error = %error, size = batch.len(), "batch write failed; writing one by one");
    for job in batch {
        let result = store_jobs(store, std::slice::from_ref(&job))
            .await
            .map(|v| v.first().copied().unwrap_or(false))
            .map_err(AppError::from);
        let _ = job.reply.send(result);
    }
}

async fn store_jobs(store: &Store, jobs: &[Job]) -> StoreResult<Vec<bool>> {
    let items: Vec<NewRequest<'_>> = jobs.iter().map(Job::new_request).collect();
    let mut tx = store.write().await?;
    let stored = tx.insert_requests(&items).await?;
    tx.commit().await?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ajar_core::request::{PortStatus, StatusReason};
    use jiff::Timestamp;

    const POLICY: &str = "/subscriptions/s/resourceGroups/rg/jitNetworkAccessPolicies/p";

    fn job(id: &str) -> (Job, oneshot::Receiver<Result<bool, AppError>>) {
        let (reply, answer) = oneshot::channel();
        let at = Timestamp::from_second(1_000).unwrap();
        let job = Job {
            request: RequestRow {
                id: id.into(),
                policy_id: POLICY.into(),
                requestor: "alice".into(),
                justification: None,
                source_address: None,
                created_at: at,
            },
            ports: vec![PortRow {
                request_id: id.into(),
                seq: 0,
                machine_id: "m".into(),
                number: 22,
                protocol: "*".into(),
                sources: vec![format!("10.0.0.{}", id.len())],
                supersede_key: format!("m|22|{id}"),
                end_time: Timestamp::from_second(5_000).unwrap(),
                status: PortStatus::Initiated,
                status_reason: StatusReason::UserRequested,
            }],
            etag: "e1".into(),
            blocking_scopes: vec![],
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
            Timestamp::UNIX_EPOCH,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let (first, _) = job("dup");
        write_batch(&store, vec![first]).await;
        // A batch whose middle request reuses an id: the batch fails as a whole, then each
        // request is written alone, so only the bad one gets an error.
        let (a, a_answer) = job("a");
        let (dup, dup_answer) = job("dup");
        let (c, c_answer) = job("c");
        write_batch(&store, vec![a, dup, c]).await;
        assert!(matches!(a_answer.await, Ok(Ok(true))));
        assert!(matches!(dup_answer.await, Ok(Err(_))));
        assert!(matches!(c_answer.await, Ok(Ok(true))));
    }
}
