//! Instances by tag or by id, as machines to register in the agent's inventory scope
//! (`PUT /api/v1/agent/inventory`): the machine list then shows them, and the agent guards
//! them once a JIT policy covers them.

use crate::AwsError;
use crate::ec2::{Ec2, Instance, Select};
use ajar_api::Client;
use ajar_api::wire::{
    AWS_INSTANCE_LABEL, DiscoveredMachine, Inventory, InventoryResult, MachineProperties,
};
use ajar_core::machine::Os;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Labels longer than this are cut (the API's limit for a label value).
const MAX_LABEL: usize = 256;

/// The machine an instance is: named by its id, with its addresses (private, public, IPv6),
/// its OS, and labels naming the instance, region and VPC (and its `Name` tag as `aws:name`).
pub fn machine_of(instance: &Instance, region: &str) -> Option<DiscoveredMachine> {
    let name = ajar_core::id::Name::parse(&instance.id).ok()?;
    let mut labels = BTreeMap::from([
        (AWS_INSTANCE_LABEL.to_owned(), instance.id.clone()),
        ("aws:region".to_owned(), region.to_owned()),
    ]);
    if let Some(vpc) = &instance.vpc_id {
        labels.insert("aws:vpc-id".into(), vpc.clone());
    }
    if let Some(tag) = instance.tags.get("Name") {
        labels.insert("aws:name".into(), tag.chars().take(MAX_LABEL).collect());
    }
    let addresses = instance
        .private_ip
        .into_iter()
        .chain(instance.public_ip)
        .chain(instance.ipv6.iter().copied())
        .take(64)
        .collect();
    Some(DiscoveredMachine {
        name,
        properties: MachineProperties {
            os: if instance.windows {
                Os::Windows
            } else {
                Os::Linux
            },
            addresses,
            labels,
        },
    })
}

/// The machines `select` finds now (terminated instances left out).
pub async fn discover(ec2: &Ec2, select: &Select) -> Result<Vec<DiscoveredMachine>, AwsError> {
    let instances = ec2.instances(select).await?;
    Ok(instances
        .iter()
        .filter(|i| !matches!(i.state.as_str(), "terminated" | "shutting-down"))
        .filter_map(|i| machine_of(i, ec2.region()))
        .collect())
}

/// Registers what `select` finds, now and then every `every`, until `shutdown`.
pub async fn run(
    ec2: Arc<Ec2>,
    client: Client,
    select: Select,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        match discover(&ec2, &select).await {
            Ok(machines) => {
                let count = machines.len();
                match client
                    .put::<InventoryResult, _>("/api/v1/agent/inventory", &Inventory { machines })
                    .await
                {
                    Ok(r) => {
                        tracing::info!(
                            instances = count,
                            created = r.created.len(),
                            updated = r.updated.len(),
                            unchanged = r.unchanged.len(),
                            refused = r.refused.len(),
                            "inventory registered"
                        );
                        for refusal in &r.refused {
                            tracing::warn!(machine = %refusal.name, reason = %refusal.reason, "instance not registered");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot register the inventory; trying again later")
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot discover instances; trying again later"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::Interface;

    #[test]
    fn an_instance_becomes_a_machine_named_by_its_id() {
        let instance = Instance {
            id: "i-0abc".into(),
            state: "running".into(),
            vpc_id: Some("vpc-1".into()),
            private_ip: Some("10.0.0.5".parse().unwrap()),
            public_ip: Some("54.1.2.3".parse().unwrap()),
            ipv6: vec!["2600:1f18::5".parse().unwrap()],
            windows: true,
            tags: BTreeMap::from([("Name".into(), "web-1".into())]),
            interfaces: vec![Interface {
                id: "eni-1".into(),
                groups: vec![],
            }],
        };
        let m = machine_of(&instance, "eu-west-1").unwrap();
        assert_eq!(m.name.as_str(), "i-0abc");
        assert_eq!(m.properties.os, Os::Windows);
        let shown: Vec<String> = m
            .properties
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.5", "54.1.2.3", "2600:1f18::5"]);
        assert_eq!(m.properties.labels["aws:instance-id"], "i-0abc");
        assert_eq!(m.properties.labels["aws:region"], "eu-west-1");
        assert_eq!(m.properties.labels["aws:vpc-id"], "vpc-1");
        assert_eq!(m.properties.labels["aws:name"], "web-1");
        assert!(m.properties.validate().is_ok());
    }
}
