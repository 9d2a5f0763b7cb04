//! The request lifecycle shared by role activations and approval-gated network access: states,
//! approval rules (approvers by principal or group, a threshold of N approvals, no
//! self-approval), the "expires soon" warning and the only transitions allowed.
//!
//! ```text
//! Pending ──approve×N──▶ Approved ──start──▶ Active ──end──▶ Expired
//!    │ ──deny──▶ Denied           │                 │ ──revoke──▶ Revoked
//!    │ ──cancel──▶ Canceled       └──revoke──▶ Revoked
//!    └──window ends undecided──▶ Timeout      Approved/Active ──enforcement fails──▶ Failed
//! ```

use crate::FieldError;
use crate::principal::Principal;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequestState {
    /// Waiting for approvals.
    Pending,
    /// Approved; its window has not begun.
    Approved,
    /// Approved and inside its window.
    Active,
    /// An approver refused it.
    Denied,
    /// The requester withdrew it.
    Canceled,
    /// Its window ended before enough approvals came.
    Timeout,
    /// Its window ended.
    Expired,
    /// Ended early by the requester or an admin.
    Revoked,
    /// Enforcement could not apply it.
    Failed,
}

impl RequestState {
    /// Every state, in the order the API documents them.
    pub const ALL: [RequestState; 9] = [
        RequestState::Pending,
        RequestState::Approved,
        RequestState::Active,
        RequestState::Denied,
        RequestState::Canceled,
        RequestState::Timeout,
        RequestState::Expired,
        RequestState::Revoked,
        RequestState::Failed,
    ];

    /// Parses the wire form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "Pending",
            RequestState::Approved => "Approved",
            RequestState::Active => "Active",
            RequestState::Denied => "Denied",
            RequestState::Canceled => "Canceled",
            RequestState::Timeout => "Timeout",
            RequestState::Expired => "Expired",
            RequestState::Revoked => "Revoked",
            RequestState::Failed => "Failed",
        }
    }

    /// Whether nothing can happen to the request any more.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            RequestState::Pending | RequestState::Approved | RequestState::Active
        )
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long before its end an active request is flagged as expiring soon.
pub const EXPIRY_WARNING: SignedDuration = SignedDuration::from_mins(15);

/// Who may approve: a principal, or any member of a group (`group:NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Approver {
    /// This principal.
    User(Principal),
    /// Any member of this group (its name, without `group:`).
    Group(String),
}

/// How a request is decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRule {
    /// Approved at once, or by approvers.
    pub automatic: bool,
    /// Who may approve or deny.
    pub approvers: Vec<Approver>,
    /// How many distinct approvers must approve (at least 1).
    pub threshold: u32,
}

impl Default for ApprovalRule {
    /// Automatic approval, as the vendor's JIT does by default.
    fn default() -> Self {
        ApprovalRule {
            automatic: true,
            approvers: Vec::new(),
            threshold: 1,
        }
    }
}

impl ApprovalRule {
    /// Checks the rule: manual approval needs approvers and a threshold they can reach (a group
    /// may hold any number of approvers, so with a group any threshold is allowed). Errors name
    /// `approvers_at` or `threshold_at`.
    pub fn validate(&self, approvers_at: &str, threshold_at: &str) -> Result<(), FieldError> {
        if self.threshold == 0 {
            return Err(FieldError::new(
                threshold_at,
                "the threshold must be at least 1",
            ));
        }
        if self.automatic {
            return Ok(());
        }
        if self.approvers.is_empty() {
            return Err(FieldError::new(
                approvers_at,
                "manual approval needs at least one approver",
            ));
        }
        let has_group = self
            .approvers
            .iter()
            .any(|a| matches!(a, Approver::Group(_)));
        if !has_group && self.threshold as usize > self.approvers.len() {
            return Err(FieldError::new(
                threshold_at,
                format!(
                    "a threshold of {} cannot be reached by {} approver(s)",
                    self.threshold,
                    self.approvers.len()
                ),
            ));
        }
        Ok(())
    }

    /// Whether `who` (member of `groups`) is one of the approvers.
    pub fn is_approver(&self, who: &Principal, groups: &[String]) -> bool {
        self.approvers.iter().any(|a| match a {
            Approver::User(p) => p == who,
            Approver::Group(g) => groups.iter().any(|m| m == g),
        })
    }
}

/// When the requested window starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Start {
    /// When approved: the duration counts from approval, not from asking.
    Now,
    /// At this instant.
    At(Timestamp),
}

/// An approval or a denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Who decided.
    pub by: Principal,
    /// Approve (true) or deny.
    pub approve: bool,
    /// Why.
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

/// A request's lifecycle state; the engine's pure core. It serializes as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Who asked.
    pub requester: Principal,
    /// When it was asked.
    pub created: Timestamp,
    /// When the window starts.
    pub start: Start,
    /// How long the window lasts.
    pub duration: SignedDuration,
    /// Where it stands.
    pub state: RequestState,
    /// The granted window, fixed on approval.
    pub window: Option<(Timestamp, Timestamp)>,
    /// Approvals and denials so far.
    pub decisions: Vec<Decision>,
    /// When the "expires in 15 minutes" warning fell due (once per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warned_at: Option<Timestamp>,
    /// Why enforcement failed, for a `Failed` request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Something that happens to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An approver approves.
    Approve(Decision, Vec<String>),
    /// An approver denies.
    Deny(Decision, Vec<String>),
    /// The requester withdraws a pending request.
    Cancel(Principal),
    /// Time passes (the scheduler): starts, ends and timeouts.
    Tick,
    /// The requester or an admin ends it early; `admin` says the caller may revoke anyone's.
    Revoke {
        /// Who revokes.
        by: Principal,
        /// Whether they may revoke others' requests.
        admin: bool,
    },
    /// Enforcement could not apply it, for this reason.
    Fail(String),
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The request is in a state where this cannot happen.
    #[error("the request is {0}; it can no longer be {1}")]
    State(RequestState, &'static str),
    /// The caller is not an approver of this request.
    #[error("{0} is not an approver of this request")]
    NotApprover(String),
    /// Requesters may not approve or deny their own requests.
    #[error("requesters may not decide their own requests")]
    SelfApproval,
    /// The approver already decided.
    #[error("{0} has already decided this request")]
    AlreadyDecided(String),
    /// Only the requester (or an admin) may do this.
    #[error("only the requester may {0} this request")]
    NotRequester(&'static str),
}

impl Lifecycle {
    /// A new request at `now`: pending, or approved at once when the rule is automatic (then
    /// the window is fixed from `now`, and a start already due makes it active).
    pub fn new(
        requester: Principal,
        start: Start,
        duration: SignedDuration,
        rule: &ApprovalRule,
        now: Timestamp,
    ) -> Lifecycle {
        let mut l = Lifecycle {
            requester,
            created: now,
            start,
            duration,
            state: RequestState::Pending,
            window: None,
            decisions: Vec::new(),
            expiry_warned_at: None,
            failure: None,
        };
        if rule.automatic {
            l.approve_now(now);
        }
        l
    }

    /// When an undecided request times out: the end of the window it asked for (for "now",
    /// counted from when it was asked).
    pub fn decide_by(&self) -> Timestamp {
        let from = match self.start {
            Start::Now => self.created,
            Start::At(t) => t,
        };
        from.saturating_add(self.duration).unwrap_or(from)
    }

    /// The next instant at which time alone changes the request (a timeout, a start, the
    /// expiry warning, an end), or `None` once it is final: what the scheduler waits for.
    pub fn next_due(&self) -> Option<Timestamp> {
        match (self.state, self.window) {
            (RequestState::Pending, _) => Some(self.decide_by()),
            (RequestState::Approved, Some((start, _))) => Some(start),
            (RequestState::Active, Some((start, end))) => Some(
                self.warning_at(start, end)
                    .filter(|_| self.expiry_warned_at.is_none())
                    .unwrap_or(end),
            ),
            _ => None,
        }
    }

    /// When a window's expiry warning falls due: 15 minutes before its end, for windows longer
    /// than that (a shorter one would be warned about as it opens).
    fn warning_at(&self, start: Timestamp, end: Timestamp) -> Option<Timestamp> {
        let at = end.checked_sub(EXPIRY_WARNING).ok()?;
        (at > start).then_some(at)
    }

    /// Whether the expiry warning fell due in the step from `before` to `self` (the scheduler
    /// sends it once).
    pub fn warned_since(&self, before: &Lifecycle) -> bool {
        self.expiry_warned_at.is_some() && before.expiry_warned_at.is_none()
    }

    fn approve_now(&mut self, now: Timestamp) {
        let from = match self.start {
            Start::Now => now,
            Start::At(t) => t.max(now),
        };
        let to = match self.start {
            Start::Now => from.saturating_add(self.duration).unwrap_or(from),
            // A scheduled window keeps its end; approving late shortens it.
            Start::At(t) => t.saturating_add(self.duration).unwrap_or(t),
        };
        self.window = Some((from, to));
        self.state = RequestState::Approved;
        self.tick(now);
    }

    fn tick(&mut self, now: Timestamp) {
        match (self.state, self.window) {
            (RequestState::Pending, _) if now >= self.decide_by() => {
                self.state = RequestState::Timeout
            }
            (RequestState::Approved | RequestState::Active, Some((_, end))) if now >= end => {
                self.state = RequestState::Expired;
            }
            (RequestState::Approved, Some((start, _))) if now >= start => {
                self.state = RequestState::Active;
                self.tick(now);
            }
            (RequestState::Active, Some((start, end)))
                if self.expiry_warned_at.is_none()
                    && self.warning_at(start, end).is_some_and(|w| now >= w) =>
            {
                self.expiry_warned_at = Some(now);
            }
            _ => {}
        }
    }

    /// Applies an event at `now` under `rule`, or says why it cannot happen. A refused event
    /// changes nothing.
    pub fn apply(
        &self,
        event: Event,
        rule: &ApprovalRule,
        now: Timestamp,
    ) -> Result<Lifecycle, Refused> {
        let mut next = self.clone();
        // Time first: an approval that arrives after the window ended finds a timed-out request.
        next.tick(now);
        match event {
            Event::Tick => {}
            Event::Approve(..) | Event::Deny(..) if next.state != RequestState::Pending => {
                return Err(Refused::State(next.state, "decided"));
            }
            Event::Approve(d, groups) => {
                next.check_decider(&d, &groups, rule)?;
                // The event, not the decision's flag, says which way it went.
                next.decisions.push(Decision { approve: true, ..d });
                let approvals = next.decisions.iter().filter(|d| d.approve).count();
                if approvals >= rule.threshold.max(1) as usize {
                    next.approve_now(now);
                }
            }
            Event::Deny(d, groups) => {
                next.check_decider(&d, &groups, rule)?;
                next.decisions.push(Decision {
                    approve: false,
                    ..d
                });
                next.state = RequestState::Denied;
            }
            Event::Cancel(by) => {
                if next.state != RequestState::Pending {
                    return Err(Refused::State(next.state, "canceled"));
                }
                if by != next.requester {
                    return Err(Refused::NotRequester("cancel"));
                }
                next.state = RequestState::Canceled;
            }
            Event::Revoke { by, admin } => {
                if !matches!(next.state, RequestState::Approved | RequestState::Active) {
                    return Err(Refused::State(next.state, "revoked"));
                }
                if !admin && by != next.requester {
                    return Err(Refused::NotRequester("revoke"));
                }
                next.state = RequestState::Revoked;
            }
            Event::Fail(reason) => {
                if !matches!(next.state, RequestState::Approved | RequestState::Active) {
                    return Err(Refused::State(next.state, "failed"));
                }
                next.state = RequestState::Failed;
                next.failure = Some(reason);
            }
        }
        Ok(next)
    }

    fn check_decider(
        &self,
        d: &Decision,
        groups: &[String],
        rule: &ApprovalRule,
    ) -> Result<(), Refused> {
        if d.by == self.requester {
            return Err(Refused::SelfApproval);
        }
        if !rule.is_approver(&d.by, groups) {
            return Err(Refused::NotApprover(d.by.to_string()));
        }
        if self.decisions.iter().any(|o| o.by == d.by) {
            return Err(Refused::AlreadyDecided(d.by.to_string()));
        }
        Ok(())
    }
}

/// One thing that happened to a request between two stored versions of its lifecycle: what the
/// activity log records and notifications tell about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The request was made.
    Created,
    /// An approver approved (possibly one of several needed).
    ApprovalGiven,
    /// The request is approved: enough approvals, or automatic.
    Approved,
    /// An approver denied it.
    Denied,
    /// The requester withdrew it.
    Canceled,
    /// Its window began.
    Activated,
    /// Its end is 15 minutes away.
    ExpiryWarned,
    /// Its window ended.
    Expired,
    /// Nobody decided in time.
    TimedOut,
    /// Ended early.
    Revoked,
    /// Enforcement could not apply it.
    Failed,
}

impl Step {
    /// The step's name (as recorded: `ajar.jitRequests/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Step::Created => "create",
            Step::ApprovalGiven => "approve",
            Step::Approved => "approved",
            Step::Denied => "deny",
            Step::Canceled => "cancel",
            Step::Activated => "activate",
            Step::ExpiryWarned => "expiryWarning",
            Step::Expired => "expire",
            Step::TimedOut => "timeout",
            Step::Revoked => "revoke",
            Step::Failed => "fail",
        }
    }
}

/// The steps from `before` (`None`: the request is new) to `after`, in the order they happened.
pub fn steps(before: Option<&Lifecycle>, after: &Lifecycle) -> Vec<Step> {
    let mut out = Vec::new();
    let (was, decided) = match before {
        None => {
            out.push(Step::Created);
            (RequestState::Pending, 0)
        }
        Some(b) => (b.state, b.decisions.len()),
    };
    for d in after.decisions.iter().skip(decided) {
        if d.approve {
            out.push(Step::ApprovalGiven);
        }
    }
    let now = after.state;
    if was == RequestState::Pending && now != RequestState::Pending {
        let approved = after.window.is_some()
            && !matches!(
                now,
                RequestState::Denied | RequestState::Canceled | RequestState::Timeout
            );
        if approved {
            out.push(Step::Approved);
        }
    }
    if now == RequestState::Active && was != RequestState::Active {
        out.push(Step::Activated);
    }
    if after.expiry_warned_at.is_some() && before.is_none_or(|b| b.expiry_warned_at.is_none()) {
        out.push(Step::ExpiryWarned);
    }
    if now != was {
        match now {
            RequestState::Denied => out.push(Step::Denied),
            RequestState::Canceled => out.push(Step::Canceled),
            RequestState::Timeout => out.push(Step::TimedOut),
            RequestState::Expired => out.push(Step::Expired),
            RequestState::Revoked => out.push(Step::Revoked),
            RequestState::Failed => out.push(Step::Failed),
            RequestState::Pending | RequestState::Approved | RequestState::Active => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Principal {
        Principal::parse(s).unwrap()
    }
    fn t0() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }
    fn at(mins: i64) -> Timestamp {
        t0().checked_add(SignedDuration::from_mins(mins)).unwrap()
    }
    fn manual(threshold: u32) -> ApprovalRule {
        ApprovalRule {
            automatic: false,
            approvers: vec![
                Approver::User(p("bob")),
                Approver::User(p("carol")),
                Approver::Group("secops".into()),
            ],
            threshold,
        }
    }
    fn decision(by: &str, approve: bool, mins: i64) -> Decision {
        Decision {
            by: p(by),
            approve,
            reason: "ok".into(),
            at: at(mins),
        }
    }
    fn approve(by: &str, mins: i64) -> Event {
        Event::Approve(decision(by, true, mins), vec![])
    }
    fn pending(start: Start) -> Lifecycle {
        Lifecycle::new(
            p("alice"),
            start,
            SignedDuration::from_hours(2),
            &manual(1),
            t0(),
        )
    }

    /// Found by the lifecycle property test: a denial carrying `approve: true` was stored as
    /// an approval on a denied request.
    #[test]
    fn the_event_not_the_flag_says_which_way_a_decision_went() {
        let rule = manual(1);
        let denied = pending(Start::Now)
            .apply(Event::Deny(decision("bob", true, 5), vec![]), &rule, at(5))
            .unwrap();
        assert_eq!(denied.state, RequestState::Denied);
        assert!(!denied.decisions[0].approve);
        let approved = pending(Start::Now)
            .apply(
                Event::Approve(decision("bob", false, 5), vec![]),
                &rule,
                at(5),
            )
            .unwrap();
        assert_eq!(approved.state, RequestState::Active);
        assert!(approved.decisions[0].approve);
    }

    #[test]
    fn steps_name_what_happened_between_versions() {
        use Step::*;
        let rule = manual(2);
        let l0 = pending(Start::Now);
        assert_eq!(steps(None, &l0), vec![Created]);
        let l1 = l0.apply(approve("bob", 5), &rule, at(5)).unwrap();
        assert_eq!(steps(Some(&l0), &l1), vec![ApprovalGiven]);
        let l2 = l1.apply(approve("carol", 6), &rule, at(6)).unwrap();
        assert_eq!(
            steps(Some(&l1), &l2),
            vec![ApprovalGiven, Approved, Activated]
        );
        // The window is 6..126: the warning falls due at 111; an end passed is not warned of.
        let warned = l2.apply(Event::Tick, &rule, at(112)).unwrap();
        assert_eq!(steps(Some(&l2), &warned), vec![ExpiryWarned]);
        let l3 = warned.apply(Event::Tick, &rule, at(600)).unwrap();
        assert_eq!(steps(Some(&warned), &l3), vec![Expired]);
        let late = l2.apply(Event::Tick, &rule, at(600)).unwrap();
        assert_eq!(steps(Some(&l2), &late), vec![Expired]);
        assert_eq!(steps(Some(&l3), &l3), vec![]);
        let denied = l0
            .apply(Event::Deny(decision("bob", false, 5), vec![]), &rule, at(5))
            .unwrap();
        assert_eq!(steps(Some(&l0), &denied), vec![Denied]);
        let timed_out = l0.apply(Event::Tick, &rule, at(600)).unwrap();
        assert_eq!(steps(Some(&l0), &timed_out), vec![TimedOut]);
        let auto = ApprovalRule {
            automatic: true,
            approvers: vec![],
            threshold: 1,
        };
        let l = Lifecycle::new(
            p("alice"),
            Start::Now,
            SignedDuration::from_hours(1),
            &auto,
            t0(),
        );
        assert_eq!(steps(None, &l), vec![Created, Approved, Activated]);
    }

    #[test]
    fn automatic_requests_are_active_at_once() {
        let auto = ApprovalRule {
            automatic: true,
            approvers: vec![],
            threshold: 1,
        };
        let l = Lifecycle::new(
            p("alice"),
            Start::Now,
            SignedDuration::from_hours(1),
            &auto,
            t0(),
        );
        assert_eq!(
            (l.state, l.window),
            (RequestState::Active, Some((t0(), at(60))))
        );
        let later = Lifecycle::new(
            p("alice"),
            Start::At(at(30)),
            SignedDuration::from_hours(1),
            &auto,
            t0(),
        );
        assert_eq!(later.state, RequestState::Approved);
        let l = later.apply(Event::Tick, &auto, at(30)).unwrap();
        assert_eq!(l.state, RequestState::Active);
        let l = l.apply(Event::Tick, &auto, at(90)).unwrap();
        assert_eq!(l.state, RequestState::Expired);
    }

    #[test]
    fn a_start_now_counts_from_approval() {
        let l = pending(Start::Now)
            .apply(approve("bob", 45), &manual(1), at(45))
            .unwrap();
        assert_eq!(
            (l.state, l.window),
            (RequestState::Active, Some((at(45), at(165))))
        );
    }

    #[test]
    fn thresholds_need_distinct_approvers_and_groups_count() {
        let rule = manual(2);
        let l = pending(Start::Now)
            .apply(approve("bob", 1), &rule, at(1))
            .unwrap();
        assert_eq!(l.state, RequestState::Pending);
        assert_eq!(
            l.apply(approve("bob", 2), &rule, at(2)),
            Err(Refused::AlreadyDecided("bob".into()))
        );
        let by_group = Event::Approve(decision("dave", true, 3), vec!["secops".into()]);
        let l = l.apply(by_group, &rule, at(3)).unwrap();
        assert_eq!(l.state, RequestState::Active);
        assert_eq!(l.decisions.len(), 2);
    }

    #[test]
    fn nobody_decides_their_own_request_or_one_they_do_not_approve() {
        let l = pending(Start::Now);
        assert_eq!(
            l.apply(approve("alice", 1), &manual(1), at(1)),
            Err(Refused::SelfApproval)
        );
        assert_eq!(
            l.apply(approve("mallory", 1), &manual(1), at(1)),
            Err(Refused::NotApprover("mallory".into()))
        );
        let outsider = Event::Deny(decision("dave", false, 1), vec!["devs".into()]);
        assert_eq!(
            l.apply(outsider, &manual(1), at(1)),
            Err(Refused::NotApprover("dave".into()))
        );
    }

    #[test]
    fn undecided_requests_time_out_and_late_decisions_are_refused() {
        let l = pending(Start::Now);
        assert_eq!(
            l.apply(Event::Tick, &manual(1), at(119)).unwrap().state,
            RequestState::Pending
        );
        let l = l.apply(Event::Tick, &manual(1), at(120)).unwrap();
        assert_eq!(l.state, RequestState::Timeout);
        assert_eq!(
            l.apply(approve("bob", 121), &manual(1), at(121)),
            Err(Refused::State(RequestState::Timeout, "decided"))
        );
        // An approval arriving after the window, before the scheduler ran, is refused too.
        let l = pending(Start::Now);
        assert_eq!(
            l.apply(approve("bob", 130), &manual(1), at(130)),
            Err(Refused::State(RequestState::Timeout, "decided"))
        );
    }

    #[test]
    fn denials_cancels_and_revokes() {
        let l = pending(Start::At(at(60)));
        let denied = l
            .apply(
                Event::Deny(decision("carol", false, 5), vec![]),
                &manual(1),
                at(5),
            )
            .unwrap();
        assert_eq!(denied.state, RequestState::Denied);
        assert!(denied.apply(approve("bob", 6), &manual(1), at(6)).is_err());
        assert_eq!(
            l.apply(Event::Cancel(p("bob")), &manual(1), at(5)),
            Err(Refused::NotRequester("cancel"))
        );
        assert_eq!(
            l.apply(Event::Cancel(p("alice")), &manual(1), at(5))
                .unwrap()
                .state,
            RequestState::Canceled
        );

        let approved = l.apply(approve("bob", 10), &manual(1), at(10)).unwrap();
        assert_eq!(
            (approved.state, approved.window),
            (RequestState::Approved, Some((at(60), at(180))))
        );
        assert_eq!(
            approved.apply(Event::Cancel(p("alice")), &manual(1), at(11)),
            Err(Refused::State(RequestState::Approved, "canceled"))
        );
        let revoke = |by: &str, admin| Event::Revoke { by: p(by), admin };
        assert_eq!(
            approved.apply(revoke("bob", false), &manual(1), at(70)),
            Err(Refused::NotRequester("revoke"))
        );
        let revoked = approved
            .apply(revoke("alice", false), &manual(1), at(70))
            .unwrap();
        assert_eq!(revoked.state, RequestState::Revoked);
        assert!(
            revoked
                .apply(Event::Tick, &manual(1), at(500))
                .is_ok_and(|l| l.state == RequestState::Revoked),
            "revoked stays revoked"
        );
        assert_eq!(
            approved
                .apply(revoke("root", true), &manual(1), at(70))
                .unwrap()
                .state,
            RequestState::Revoked
        );
        assert_eq!(
            approved
                .apply(Event::Fail("nft failed".into()), &manual(1), at(70))
                .unwrap()
                .state,
            RequestState::Failed
        );
    }

    #[test]
    fn the_scheduler_knows_when_to_look_next_and_the_state_round_trips() {
        let l = pending(Start::At(at(60)));
        assert_eq!(
            l.next_due(),
            Some(at(180)),
            "a pending request times out at its window's end"
        );
        let approved = l.apply(approve("bob", 10), &manual(1), at(10)).unwrap();
        assert_eq!(approved.next_due(), Some(at(60)));
        let active = approved.apply(Event::Tick, &manual(1), at(60)).unwrap();
        assert_eq!(
            active.next_due(),
            Some(at(165)),
            "the expiry warning is due 15 minutes before the end"
        );
        let quiet = active.apply(Event::Tick, &manual(1), at(164)).unwrap();
        assert!(quiet.expiry_warned_at.is_none() && !quiet.warned_since(&active));
        let warned = active.apply(Event::Tick, &manual(1), at(166)).unwrap();
        assert_eq!(
            (warned.state, warned.expiry_warned_at),
            (RequestState::Active, Some(at(166)))
        );
        assert!(warned.warned_since(&active));
        assert_eq!(warned.next_due(), Some(at(180)), "then the end");
        let again = warned.apply(Event::Tick, &manual(1), at(170)).unwrap();
        assert!(!again.warned_since(&warned), "warned once");
        let expired = warned.apply(Event::Tick, &manual(1), at(180)).unwrap();
        assert_eq!(expired.next_due(), None);
        let json = serde_json::to_string(&warned).unwrap();
        assert_eq!(serde_json::from_str::<Lifecycle>(&json).unwrap(), warned);
    }

    #[test]
    fn short_windows_get_no_expiry_warning() {
        let auto = ApprovalRule::default();
        let l = Lifecycle::new(
            p("alice"),
            Start::Now,
            SignedDuration::from_mins(10),
            &auto,
            t0(),
        );
        assert_eq!(l.next_due(), Some(at(10)));
        let l = l.apply(Event::Tick, &auto, at(5)).unwrap();
        assert!(l.expiry_warned_at.is_none());
    }

    #[test]
    fn expired_requests_never_become_active_again() {
        let auto = ApprovalRule {
            automatic: true,
            approvers: vec![],
            threshold: 1,
        };
        let l = Lifecycle::new(
            p("alice"),
            Start::Now,
            SignedDuration::from_hours(1),
            &auto,
            t0(),
        );
        let expired = l.apply(Event::Tick, &auto, at(60)).unwrap();
        assert_eq!(expired.state, RequestState::Expired);
        for event in [
            Event::Tick,
            approve("bob", 61),
            Event::Fail("late".into()),
            Event::Revoke {
                by: p("alice"),
                admin: true,
            },
        ] {
            let after = expired
                .apply(event, &auto, at(61))
                .map(|l| l.state)
                .unwrap_or(RequestState::Expired);
            assert_eq!(after, RequestState::Expired);
        }
        assert!(RequestState::Expired.is_final() && !RequestState::Active.is_final());
    }
}
