//! `authorize` decisions in-process: the index the server answers from, built over 10,000
//! applications and 100,000 eligibilities (as active elevations) plus a standing assignment per
//! principal, queried from every core. With `--application-roles`, each application declares 20
//! actions of its own and 5 roles over them, the elevations are to those roles, and the
//! questions ask about the applications' own actions.

use ajar_core::authorize::{Grant, Index, Source};
use ajar_core::id::Scope;
use ajar_core::rbac::{ApplicationActions, RoleDefinition, built_in_roles};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Flags of `ajar-bench authorize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Applications.
    #[arg(long, default_value_t = 10_000)]
    applications: usize,
    /// Eligibilities, each an active elevation of one principal on one application.
    #[arg(long, default_value_t = 100_000)]
    eligibilities: usize,
    /// Principals they are spread over.
    #[arg(long, default_value_t = 10_000)]
    principals: usize,
    /// Decisions per thread.
    #[arg(long, default_value_t = 2_000_000)]
    decisions: usize,
    /// Threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Each application declares 20 actions and 5 roles over them; elevations are to those
    /// roles and questions ask about the applications' actions.
    #[arg(long)]
    application_roles: bool,
}

/// Actions each application declares with `--application-roles`.
const ACTIONS_PER_APPLICATION: usize = 20;

/// The 20 actions of application `i` (`app{i}.res{k}/read|write`, ten resources) and its 5
/// roles: Owner (`*`), Contributor (`*/write` and `*/read`), Reader (`*/read`), and two that
/// cover one resource each.
fn application_roles(i: usize) -> anyhow::Result<Vec<Arc<RoleDefinition>>> {
    let ns = format!("app{i}");
    let actions: Vec<String> = (0..ACTIONS_PER_APPLICATION / 2)
        .flat_map(|k| [format!("{ns}.res{k}/read"), format!("{ns}.res{k}/write")])
        .collect();
    let declared = ApplicationActions::parse(&ns, &actions)?;
    let roles: [(&str, Vec<String>); 5] = [
        ("Owner", vec!["*".into()]),
        ("Contributor", vec!["*/write".into(), "*/read".into()]),
        ("Reader", vec!["*/read".into()]),
        ("Res0Editor", vec![format!("{ns}.res0/*")]),
        ("Res1Editor", vec![format!("{ns}.res1/*")]),
    ];
    Ok(roles
        .iter()
        .map(|(name, patterns)| {
            Arc::new(RoleDefinition::of_application(
                name, "", patterns, &declared,
            ))
        })
        .collect())
}

/// A small deterministic generator, so runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below.max(1)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let roles = built_in_roles();
    let admin = Arc::new(
        roles
            .iter()
            .find(|r| r.name == "JitAdmin")
            .context("JitAdmin")?
            .clone(),
    );
    let reader = Arc::new(
        roles
            .iter()
            .find(|r| r.name == "SecurityReader")
            .context("SecurityReader")?
            .clone(),
    );
    let app = |i: usize| {
        Scope::parse(&format!(
            "/subscriptions/s{}/resourceGroups/rg{}/applications/app{i}",
            i % 10,
            i % 100
        ))
    };
    let now = jiff::Timestamp::from_second(1_800_000_000)?;
    let until = now.checked_add(jiff::SignedDuration::from_hours(8))?;
    let mut rng = Lcg(42);
    let mut grants = Vec::with_capacity(args.eligibilities + args.principals);
    for p in 0..args.principals {
        grants.push((
            format!("u{p}"),
            Grant {
                scope: Scope::parse(&format!("/subscriptions/s{}", p % 10))?,
                role: reader.clone(),
                source: Source::Assignment(format!("a{p}")),
            },
        ));
    }
    let declared_roles: Vec<Vec<Arc<RoleDefinition>>> = if args.application_roles {
        (0..args.applications)
            .map(application_roles)
            .collect::<anyhow::Result<_>>()?
    } else {
        Vec::new()
    };
    let mut pairs = Vec::with_capacity(args.eligibilities);
    for e in 0..args.eligibilities {
        let (p, a) = (rng.next(args.principals), rng.next(args.applications));
        pairs.push((p, a));
        let role = match declared_roles.get(a) {
            // Owner or Contributor, so the questions about writing below can be allowed.
            Some(roles) => roles[e % 2].clone(),
            None => admin.clone(),
        };
        grants.push((
            format!("u{p}"),
            Grant {
                scope: app(a)?,
                role,
                source: Source::Elevation {
                    request: format!("r{e}"),
                    from: now,
                    until,
                },
            },
        ));
    }
    let built = Instant::now();
    let index = Arc::new(Index::new(grants));
    let build_time = built.elapsed();
    // Half the questions are about an elevation that exists (allowed), half are random (mostly
    // refused after looking at all of the principal's grants).
    let queries: Arc<Vec<(String, Scope, String)>> = Arc::new(
        (0..65_536)
            .map(|i| {
                let (p, a) = if i % 2 == 0 {
                    pairs[rng.next(pairs.len())]
                } else {
                    (rng.next(args.principals), rng.next(args.applications))
                };
                let action = if args.application_roles {
                    format!("app{a}.res{}/write", rng.next(ACTIONS_PER_APPLICATION / 2))
                } else {
                    "ajar.applications/write".to_owned()
                };
                Ok((format!("u{p}"), app(a)?, action))
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (index, queries) = (index.clone(), queries.clone());
            let n = args.decisions;
            std::thread::spawn(move || {
                let mut allowed = 0usize;
                let mut slowest_batch = Duration::ZERO;
                let batch = 1_000;
                for b in 0..n / batch {
                    let t0 = Instant::now();
                    for i in 0..batch {
                        let (p, s, action) = &queries[(t * 7919 + b * batch + i) % queries.len()];
                        if index.decide(p, &[], action, s, now).allowed {
                            allowed += 1;
                        }
                    }
                    slowest_batch = slowest_batch.max(t0.elapsed());
                }
                (allowed, slowest_batch)
            })
        })
        .collect();
    let mut allowed = 0;
    let mut slowest = Duration::ZERO;
    for h in handles {
        let (a, s) = h.join().map_err(|_| anyhow::anyhow!("a thread failed"))?;
        allowed += a;
        slowest = slowest.max(s);
    }
    let elapsed = started.elapsed();
    let total = threads * (args.decisions / 1_000) * 1_000;
    println!(
        "authorize in-process{}: {} principals, {} applications, {} elevations (index built in {:.0} ms); \
         {threads} threads: {total} decisions in {:.2} s = {:.0} decisions/s ({:.1} % allowed); \
         slowest batch of 1,000: {:.1} µs per decision",
        if args.application_roles {
            " (each application: 20 actions, 5 roles)"
        } else {
            ""
        },
        index.principals(),
        args.applications,
        args.eligibilities,
        build_time.as_secs_f64() * 1000.0,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        100.0 * allowed as f64 / total as f64,
        slowest.as_secs_f64() * 1e6 / 1_000.0
    );
    Ok(())
}
