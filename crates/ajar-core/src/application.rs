//! Managed applications (role access): the JIT access policy fixed at creation, and who may
//! approve.

use crate::FieldError;
use crate::duration::AccessDuration;
use crate::lifecycle::ApprovalRule;
use jiff::SignedDuration;

/// An application's JIT access policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppJitPolicy {
    /// Whether publishers must request elevation (true) or have standing access (false). Fixed
    /// at creation.
    pub enabled: bool,
    /// How requests are decided.
    pub approval: ApprovalRule,
    /// The longest activation.
    pub max_duration: AccessDuration,
}

/// The default longest activation: eight hours.
pub fn default_max_duration() -> AccessDuration {
    AccessDuration::new(SignedDuration::from_hours(8))
        .unwrap_or_else(|_| AccessDuration::three_hours())
}

impl AppJitPolicy {
    /// Checks the rules across fields: manual approval needs approvers and a threshold they can
    /// reach (groups may hold any number of approvers, so with a group any threshold is allowed).
    pub fn validate(&self) -> Result<(), FieldError> {
        let at = "properties.jitAccessPolicy";
        self.approval.validate(
            &format!("{at}.jitApprovers"),
            &format!("{at}.jitApprovalThreshold"),
        )
    }

    /// Checks a change of policy: approval settings may change, whether JIT is on may not.
    pub fn check_update(&self, new: &AppJitPolicy) -> Result<(), FieldError> {
        match (self.enabled, new.enabled) {
            (false, true) => Err(FieldError::conflict(
                "properties.jitAccessPolicy.jitAccessEnabled",
                "JIT access can only be enabled when the application is created; recreate it to enable JIT",
            )),
            (true, false) => Err(FieldError::conflict(
                "properties.jitAccessPolicy.jitAccessEnabled",
                "JIT access cannot be turned off once the application has it",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Approver;
    use crate::principal::Principal;

    fn policy(automatic: bool, approvers: Vec<Approver>, threshold: u32) -> AppJitPolicy {
        AppJitPolicy {
            enabled: true,
            approval: ApprovalRule {
                automatic,
                approvers,
                threshold,
            },
            max_duration: default_max_duration(),
        }
    }

    fn user(s: &str) -> Approver {
        Approver::User(Principal::parse(s).unwrap())
    }

    #[test]
    fn manual_approval_needs_reachable_approvers() {
        assert!(policy(true, vec![], 1).validate().is_ok());
        assert_eq!(
            policy(false, vec![], 1).validate().unwrap_err().target,
            "properties.jitAccessPolicy.jitApprovers"
        );
        assert!(policy(false, vec![user("bob")], 1).validate().is_ok());
        assert_eq!(
            policy(false, vec![user("bob")], 2)
                .validate()
                .unwrap_err()
                .target,
            "properties.jitAccessPolicy.jitApprovalThreshold"
        );
        assert!(
            policy(false, vec![user("bob"), Approver::Group("ops".into())], 3)
                .validate()
                .is_ok()
        );
        assert!(policy(true, vec![], 0).validate().is_err());
        assert_eq!(default_max_duration().to_string(), "PT8H");
    }

    #[test]
    fn jit_is_fixed_at_creation() {
        let on = policy(true, vec![], 1);
        let mut off = on.clone();
        off.enabled = false;
        assert!(off.check_update(&on).is_err(), "enabling later is refused");
        assert!(on.check_update(&off).is_err());
        let mut stricter = on.clone();
        stricter.approval = ApprovalRule {
            automatic: false,
            approvers: vec![user("bob")],
            threshold: 1,
        };
        assert!(
            on.check_update(&stricter).is_ok(),
            "approval settings stay editable"
        );
    }
}
