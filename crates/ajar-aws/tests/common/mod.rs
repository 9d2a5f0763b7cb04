//! Fixtures the AWS tests share: a client for moto, instances, and rules written by hand as an
//! operator would (through the Query API, outside the enforcer).

#![allow(dead_code, reason = "each test file uses part of these")]

use ajar_aws::creds::{Chain, Environment};
use ajar_aws::ec2::{Ec2, Params};
use std::sync::Arc;

/// The region the tests use.
pub const REGION: &str = "eu-west-1";
/// A Linux image moto knows.
pub const LINUX_IMAGE: &str = "ami-760aaa0f";
/// A Windows image moto knows.
pub const WINDOWS_IMAGE: &str = "ami-03cf127a";

/// A client for moto at `url`, signing with `key` and `secret`.
pub fn client(url: &str, key: &str, secret: &str) -> Arc<Ec2> {
    let http = reqwest::Client::new();
    let env = Environment::from_vars(
        [
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
        None,
    );
    Arc::new(
        Ec2::new(
            http.clone(),
            REGION.into(),
            Some(url.to_owned()),
            Chain::resolve(&env, http),
        )
        .unwrap(),
    )
}

/// The text of the first `<tag>` element in `xml`.
pub fn first(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let at = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {tag} in {xml}"))
        + open.len();
    xml[at..at + xml[at..].find('<').unwrap()].to_owned()
}

/// The region's default VPC.
pub async fn default_vpc(ec2: &Ec2) -> String {
    let xml = ec2.call("DescribeVpcs", &Params::new()).await.unwrap();
    first(&xml, "vpcId")
}

/// Runs an instance of `image` in the default VPC, tagged, in `groups` (none: the default).
pub async fn run_instance(
    ec2: &Ec2,
    image: &str,
    tags: &[(&str, &str)],
    groups: &[String],
) -> String {
    let mut p = Params::new();
    p.add("ImageId", image)
        .add("MinCount", 1)
        .add("MaxCount", 1)
        .add("InstanceType", "t3.micro")
        .list("SecurityGroupId", groups);
    if !tags.is_empty() {
        p.add("TagSpecification.1.ResourceType", "instance");
        for (i, (k, v)) in tags.iter().enumerate() {
            p.add(format!("TagSpecification.1.Tag.{}.Key", i + 1), k);
            p.add(format!("TagSpecification.1.Tag.{}.Value", i + 1), v);
        }
    }
    let xml = ec2.call("RunInstances", &p).await.unwrap();
    first(&xml, "instanceId")
}

/// A rule as an operator writes it: TCP `port` from `cidr`, with a description or none.
pub type HandRule<'a> = (u16, &'a str, Option<&'a str>);

/// Adds (`AuthorizeSecurityGroupIngress`) or removes (`RevokeSecurityGroupIngress`) rules by
/// hand, in one call.
pub async fn by_hand(ec2: &Ec2, action: &'static str, group: &str, rules: &[HandRule<'_>]) {
    let mut p = Params::new();
    p.add("GroupId", group);
    for (i, (port, cidr, description)) in rules.iter().enumerate() {
        let n = i + 1;
        let range = if cidr.contains(':') {
            "Ipv6Ranges.1.CidrIpv6"
        } else {
            "IpRanges.1.CidrIp"
        };
        p.add(format!("IpPermissions.{n}.IpProtocol"), "tcp")
            .add(format!("IpPermissions.{n}.FromPort"), port)
            .add(format!("IpPermissions.{n}.ToPort"), port)
            .add(format!("IpPermissions.{n}.{range}"), cidr);
        if let Some(d) = description {
            let described = range
                .replace(".CidrIpv6", ".Description")
                .replace(".CidrIp", ".Description");
            p.add(format!("IpPermissions.{n}.{described}"), d);
        }
    }
    ec2.call(action, &p).await.unwrap();
}

/// A group ajar does not own, with 22/TCP open to the world on both families.
pub async fn open_group(ec2: &Ec2, name: &str) -> String {
    let vpc = default_vpc(ec2).await;
    let id = ec2
        .create_group(name, "web servers", &vpc, &[])
        .await
        .unwrap();
    let world = [(22, "0.0.0.0/0", None), (22, "::/0", None)];
    by_hand(ec2, "AuthorizeSecurityGroupIngress", &id, &world).await;
    id
}
