//! Whether a live agent enforces grants on a machine. Access opens only on machines one does,
//! unless the server was started to accept machines that something else enforces (a firewall
//! that reads the grants another way).

use super::EngineResult;
use crate::presence::Presence;
use ajar_core::FieldError;
use ajar_core::agent::is_live;
use ajar_core::machine::Enforcement;
use ajar_store::{MachineRow, Tx};
use jiff::Timestamp;

/// What enforces grants on the machine of `row` at `now`.
pub fn enforcement_of<'a>(
    row: &'a MachineRow,
    now: Timestamp,
    presence: &Presence,
) -> Enforcement<'a> {
    match (row.agent_id.as_deref(), row.agent.as_deref()) {
        (Some(id), _) if is_live(presence.last_seen(id, row.agent_last_seen), now) => {
            Enforcement::Live
        }
        (Some(id), name) => Enforcement::Silent(name.unwrap_or(id)),
        (None, _) => Enforcement::None,
    }
}

/// The refusal for the first of `machines` that no live agent guards at `now` (a conflict whose
/// target is the machine and whose message names the fix); `None` when a live agent guards
/// each of them.
pub(crate) async fn unenforced(
    tx: &mut Tx,
    presence: &Presence,
    machines: &[String],
    now: Timestamp,
) -> EngineResult<Option<FieldError>> {
    for machine in machines {
        let machine = machine.as_str();
        let row = tx.machine(machine).await?;
        let enforcement = row
            .as_ref()
            .map_or(Enforcement::None, |row| enforcement_of(row, now, presence));
        if let Some(reason) = enforcement.missing(&format!("machine {machine}"), machine) {
            return Ok(Some(FieldError::conflict(
                machine,
                format!("access cannot be enforced: {reason}"),
            )));
        }
    }
    Ok(None)
}
