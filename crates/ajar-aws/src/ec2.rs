//! A client for the few EC2 Query API actions the enforcer needs: form-encoded `POST /`,
//! signed with SigV4, XML answers read into typed values. Throttling and server errors are
//! retried with backoff; every other error is returned with AWS's code.

use crate::AwsError;
use crate::creds::Chain;
use crate::sigv4::{self, CONTENT_TYPE};
use ajar_core::clock::Clock;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// The Query API version the client speaks.
const VERSION: &str = "2016-11-15";
/// Attempts for a call that is throttled or meets a server error.
const ATTEMPTS: u32 = 5;
/// Values of one filter or ids of one describe call, at most.
pub const BATCH: usize = 100;
/// Pages one describe call reads, at most (1,000 items each).
const MAX_PAGES: usize = 1_000;
/// The largest answer read.
const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// A transport protocol of a rule ajar writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The Query API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// What identifies an ingress rule to AWS (its description is not part of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleKey {
    /// Protocol.
    pub proto: Proto,
    /// The one port the rule opens.
    pub port: u16,
    /// The source network.
    pub cidr: IpNet,
}

/// An ingress rule ajar writes: its key and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What AWS identifies it by.
    pub key: RuleKey,
    /// `ajar:END:SEQ:REQUEST` (see [`crate::plan::description`]).
    pub description: String,
}

/// A security group rule as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRule {
    /// `sgr-…`.
    pub id: String,
    /// The group it is in.
    pub group_id: String,
    /// An outbound rule.
    pub egress: bool,
    /// `tcp`, `udp`, `icmp`, `-1` (all) or a protocol number.
    pub protocol: String,
    /// First port (`-1` for all).
    pub from_port: i32,
    /// Last port (`-1` for all).
    pub to_port: i32,
    /// The source network, when the rule names one (not for group or prefix-list sources).
    pub cidr: Option<IpNet>,
    /// Its description.
    pub description: Option<String>,
}

impl FoundRule {
    /// The key of a rule shaped as ajar writes them (one TCP or UDP port from a network).
    pub fn key(&self) -> Option<RuleKey> {
        let proto = match self.protocol.as_str() {
            "tcp" | "6" => Proto::Tcp,
            "udp" | "17" => Proto::Udp,
            _ => return None,
        };
        if self.egress || self.from_port != self.to_port {
            return None;
        }
        Some(RuleKey {
            proto,
            port: u16::try_from(self.from_port).ok()?,
            cidr: self.cidr?,
        })
    }
}

/// A network interface of an instance and its security groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `eni-…`.
    pub id: String,
    /// Its security groups' ids.
    pub groups: Vec<String>,
}

/// An EC2 instance, as far as the enforcer cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// `i-…`.
    pub id: String,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down` or `terminated`.
    pub state: String,
    /// Its VPC.
    pub vpc_id: Option<String>,
    /// Its private IPv4 address.
    pub private_ip: Option<IpAddr>,
    /// Its public IPv4 address.
    pub public_ip: Option<IpAddr>,
    /// Its IPv6 addresses.
    pub ipv6: Vec<IpAddr>,
    /// A Windows instance (EC2's `platform`).
    pub windows: bool,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Its network interfaces.
    pub interfaces: Vec<Interface>,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `sg-…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its VPC.
    pub vpc_id: Option<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// Which instances to describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// These ids.
    Ids(Vec<String>),
    /// Those carrying tag `KEY=VALUE` (any value when it is `*`), in any state but terminated.
    Tag(String, String),
}

/// The EC2 client.
#[derive(Debug)]
pub struct Ec2 {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    region: String,
    chain: Chain,
}

/// A call's parameters, numbered as the Query API wants (`Filter.1.Value.2`, …).
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Empty parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name=value`.
    pub fn add(&mut self, name: impl Into<String>, value: impl ToString) -> &mut Self {
        self.0.push((name.into(), value.to_string()));
        self
    }

    /// Adds `PREFIX.1=v1`, `PREFIX.2=v2`, ….
    pub fn list<S: AsRef<str>>(&mut self, prefix: &str, values: &[S]) -> &mut Self {
        for (i, v) in values.iter().enumerate() {
            self.add(format!("{prefix}.{}", i + 1), v.as_ref());
        }
        self
    }

    /// Adds filters `Filter.N.Name` with their values.
    pub fn filters<S: AsRef<str>>(&mut self, filters: &[(&str, Vec<S>)]) -> &mut Self {
        for (i, (name, values)) in filters.iter().enumerate() {
            self.add(format!("Filter.{}.Name", i + 1), name);
            self.list(&format!("Filter.{}.Value", i + 1), values);
        }
        self
    }

    /// Adds `IpPermissions.N` for rules (descriptions included when `described`).
    pub fn permissions(&mut self, rules: &[Rule], described: bool) -> &mut Self {
        for (i, rule) in rules.iter().enumerate() {
            let p = format!("IpPermissions.{}", i + 1);
            self.add(format!("{p}.IpProtocol"), rule.key.proto.as_str());
            self.add(format!("{p}.FromPort"), rule.key.port);
            self.add(format!("{p}.ToPort"), rule.key.port);
            let range = match rule.key.cidr {
                IpNet::V4(_) => format!("{p}.IpRanges.1"),
                IpNet::V6(_) => format!("{p}.Ipv6Ranges.1"),
            };
            let cidr = match rule.key.cidr {
                IpNet::V4(_) => "CidrIp",
                IpNet::V6(_) => "CidrIpv6",
            };
            self.add(format!("{range}.{cidr}"), rule.key.cidr);
            if described {
                self.add(format!("{range}.Description"), &rule.description);
            }
        }
        self
    }

    fn encode(&self, action: &str) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action);
        form.append_pair("Version", VERSION);
        for (k, v) in &self.0 {
            form.append_pair(k, v);
        }
        form.finish()
    }
}

impl Ec2 {
    /// A client for `region`, at `endpoint` (`https://ec2.REGION.amazonaws.com` when `None`).
    pub fn new(
        http: reqwest::Client,
        region: String,
        endpoint: Option<String>,
        chain: Chain,
    ) -> Result<Self, AwsError> {
        let endpoint = endpoint
            .unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com"))
            .trim_end_matches('/')
            .to_owned();
        let url = reqwest::Url::parse(&endpoint)
            .map_err(|e| AwsError::Setup(format!("EC2 endpoint {endpoint}: {e}")))?;
        let Some(host) = url.host_str() else {
            return Err(AwsError::Setup(format!(
                "EC2 endpoint {endpoint} names no host"
            )));
        };
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Self {
            http,
            endpoint,
            host,
            region,
            chain,
        })
    }

    /// The region it calls.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The endpoint it calls.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where its credentials come from.
    pub fn credentials_origin(&self) -> &'static str {
        self.chain.origin
    }

    /// Calls `action` and returns the XML answer; retries throttling and server errors.
    pub async fn call(&self, action: &'static str, params: &Params) -> Result<String, AwsError> {
        let body = params.encode(action);
        let mut pause = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let result = self.call_once(action, &body).await;
            match &result {
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    tracing::debug!(action, error = %e, retry_in = ?pause, "EC2 call retried");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                _ => return result,
            }
        }
    }

    async fn call_once(&self, action: &'static str, body: &str) -> Result<String, AwsError> {
        let now = ajar_api::clock::SystemClock.now();
        let credentials = self.chain.credentials(now).await?;
        let signed = sigv4::sign_post(&credentials, &self.region, "ec2", &self.host, body, now);
        let mut request = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("Content-Type", CONTENT_TYPE)
            .header("X-Amz-Date", &signed.amz_date)
            .header("Authorization", &signed.authorization)
            .timeout(Duration::from_secs(30))
            .body(body.to_owned());
        if let Some(token) = &signed.security_token {
            request = request.header("X-Amz-Security-Token", token);
        }
        let answer = request.send().await.map_err(|e| AwsError::Transport {
            action,
            message: e.to_string(),
        })?;
        let status = answer.status().as_u16();
        let mut answer = answer;
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| AwsError::Transport {
            action,
            message: e.to_string(),
        })? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(AwsError::Answer {
                    action,
                    message: format!("the answer is larger than {MAX_ANSWER} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let (code, message) = error_of(&text).unwrap_or_else(|| {
            (
                format!("HTTP{status}"),
                text.chars().take(200).collect::<String>(),
            )
        });
        Err(AwsError::Api {
            action,
            status,
            code,
            message,
        })
    }

    /// Every page of a describe call, each answer's `items` elements read by `read`.
    async fn describe_all<T>(
        &self,
        action: &'static str,
        params: &Params,
        set: &str,
        read: impl Fn(roxmltree::Node<'_, '_>) -> Result<Vec<T>, String>,
    ) -> Result<Vec<T>, AwsError> {
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            let mut page = params.clone();
            page.add("MaxResults", 1000);
            if let Some(token) = &next {
                page.add("NextToken", token);
            }
            // DescribeInstances with InstanceId.N refuses MaxResults.
            if action == "DescribeInstances"
                && params.0.iter().any(|(k, _)| k.starts_with("InstanceId."))
            {
                page.0.retain(|(k, _)| k != "MaxResults");
            }
            let text = self.call(action, &page).await?;
            let doc = roxmltree::Document::parse(&text).map_err(|e| AwsError::Answer {
                action,
                message: e.to_string(),
            })?;
            let root = doc.root_element();
            if let Some(items) = child(root, set) {
                found.extend(read(items).map_err(|message| AwsError::Answer { action, message })?);
            }
            next = text_of(root, "nextToken")
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            match &next {
                None => return Ok(found),
                Some(token) if !seen.insert(token.clone()) => {
                    return Err(AwsError::Answer {
                        action,
                        message: "the same page token came back twice".into(),
                    });
                }
                Some(_) => {}
            }
        }
        Err(AwsError::Answer {
            action,
            message: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// The instances `select` names (unknown ids are an `InvalidInstanceID.NotFound` error).
    pub async fn instances(&self, select: &Select) -> Result<Vec<Instance>, AwsError> {
        let mut found = Vec::new();
        match select {
            Select::Ids(ids) => {
                for chunk in ids.chunks(BATCH) {
                    let mut p = Params::new();
                    p.list("InstanceId", chunk);
                    found.extend(
                        self.describe_all(
                            "DescribeInstances",
                            &p,
                            "reservationSet",
                            read_instances,
                        )
                        .await?,
                    );
                }
            }
            Select::Tag(key, value) => {
                let mut p = Params::new();
                let states = vec!["pending", "running", "stopping", "stopped"];
                if value == "*" {
                    p.filters(&[
                        ("tag-key", vec![key.as_str()]),
                        ("instance-state-name", states),
                    ]);
                } else {
                    p.filters(&[
                        (format!("tag:{key}").as_str(), vec![value.as_str()]),
                        ("instance-state-name", states),
                    ]);
                }
                found = self
                    .describe_all("DescribeInstances", &p, "reservationSet", read_instances)
                    .await?;
            }
        }
        Ok(found)
    }

    /// Security groups by id (unknown ids are an `InvalidGroup.NotFound` error).
    pub async fn groups(&self, ids: &[String]) -> Result<Vec<Group>, AwsError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(BATCH) {
            let mut p = Params::new();
            p.filters(&[("group-id", chunk.to_vec())]);
            found.extend(
                self.describe_all(
                    "DescribeSecurityGroups",
                    &p,
                    "securityGroupInfo",
                    read_groups,
                )
                .await?,
            );
        }
        Ok(found)
    }

    /// Security groups matching filters (`tag:ajar:managed`, `group-name`, `vpc-id`, …).
    pub async fn groups_where(
        &self,
        filters: &[(&str, Vec<String>)],
    ) -> Result<Vec<Group>, AwsError> {
        let mut p = Params::new();
        p.filters(filters);
        self.describe_all(
            "DescribeSecurityGroups",
            &p,
            "securityGroupInfo",
            read_groups,
        )
        .await
    }

    /// Every rule of these groups, inbound and outbound.
    pub async fn rules(&self, group_ids: &[String]) -> Result<Vec<FoundRule>, AwsError> {
        let mut found = Vec::new();
        for chunk in group_ids.chunks(BATCH) {
            let mut p = Params::new();
            p.filters(&[("group-id", chunk.to_vec())]);
            found.extend(
                self.describe_all(
                    "DescribeSecurityGroupRules",
                    &p,
                    "securityGroupRuleSet",
                    read_rules,
                )
                .await?,
            );
        }
        Ok(found)
    }

    /// Creates a security group in `vpc_id` with `tags`; returns its id.
    pub async fn create_group(
        &self,
        name: &str,
        description: &str,
        vpc_id: &str,
        tags: &[(&str, &str)],
    ) -> Result<String, AwsError> {
        let mut p = Params::new();
        p.add("GroupName", name)
            .add("GroupDescription", description)
            .add("VpcId", vpc_id);
        if !tags.is_empty() {
            p.add("TagSpecification.1.ResourceType", "security-group");
        }
        for (i, (k, v)) in tags.iter().enumerate() {
            p.add(format!("TagSpecification.1.Tag.{}.Key", i + 1), k);
            p.add(format!("TagSpecification.1.Tag.{}.Value", i + 1), v);
        }
        let text = self.call("CreateSecurityGroup", &p).await?;
        let doc = roxmltree::Document::parse(&text).map_err(|e| AwsError::Answer {
            action: "CreateSecurityGroup",
            message: e.to_string(),
        })?;
        text_of(doc.root_element(), "groupId")
            .map(str::to_owned)
            .ok_or(AwsError::Answer {
                action: "CreateSecurityGroup",
                message: "no groupId".into(),
            })
    }

    /// Adds inbound rules to a group, all or none.
    pub async fn authorize(&self, group_id: &str, rules: &[Rule]) -> Result<(), AwsError> {
        let mut p = Params::new();
        p.add("GroupId", group_id).permissions(rules, true);
        self.call("AuthorizeSecurityGroupIngress", &p)
            .await
            .map(drop)
    }

    /// Removes inbound rules from a group by their keys.
    pub async fn revoke(&self, group_id: &str, keys: &[RuleKey]) -> Result<(), AwsError> {
        let rules: Vec<Rule> = keys
            .iter()
            .map(|key| Rule {
                key: *key,
                description: String::new(),
            })
            .collect();
        let mut p = Params::new();
        p.add("GroupId", group_id).permissions(&rules, false);
        self.call("RevokeSecurityGroupIngress", &p).await.map(drop)
    }

    /// Removes inbound rules from a group by their ids, all or none.
    pub async fn revoke_ids(&self, group_id: &str, ids: &[String]) -> Result<(), AwsError> {
        let mut p = Params::new();
        p.add("GroupId", group_id).list("SecurityGroupRuleId", ids);
        self.call("RevokeSecurityGroupIngress", &p).await.map(drop)
    }

    /// Changes the descriptions of inbound rules in place (no gap in access).
    pub async fn describe_rules_as(&self, group_id: &str, rules: &[Rule]) -> Result<(), AwsError> {
        let mut p = Params::new();
        p.add("GroupId", group_id).permissions(rules, true);
        self.call("UpdateSecurityGroupRuleDescriptionsIngress", &p)
            .await
            .map(drop)
    }

    /// Sets a network interface's security groups (all of them: the call replaces the set).
    pub async fn set_interface_groups(
        &self,
        interface_id: &str,
        groups: &[String],
    ) -> Result<(), AwsError> {
        let mut p = Params::new();
        p.add("NetworkInterfaceId", interface_id)
            .list("SecurityGroupId", groups);
        self.call("ModifyNetworkInterfaceAttribute", &p)
            .await
            .map(drop)
    }
}

/// The first child element named `name`.
fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// The text of the first child element named `name`.
fn text_of<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name).and_then(|n| n.text()).map(str::trim)
}

/// The `item` children of the child element named `name`.
fn items<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    child(node, name)
        .into_iter()
        .flat_map(|set| set.children())
        .filter(|n| n.is_element() && n.tag_name().name() == "item")
}

fn tags(node: roxmltree::Node<'_, '_>) -> BTreeMap<String, String> {
    items(node, "tagSet")
        .filter_map(|t| {
            Some((
                text_of(t, "key")?.to_owned(),
                text_of(t, "value").unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

fn required(node: roxmltree::Node<'_, '_>, name: &str) -> Result<String, String> {
    text_of(node, name)
        .map(str::to_owned)
        .ok_or_else(|| format!("an item lacks {name}"))
}

fn read_instances(set: roxmltree::Node<'_, '_>) -> Result<Vec<Instance>, String> {
    let mut found = Vec::new();
    for reservation in set.children().filter(|n| n.tag_name().name() == "item") {
        for i in items(reservation, "instancesSet") {
            let interfaces = items(i, "networkInterfaceSet")
                .map(|eni| {
                    Ok(Interface {
                        id: required(eni, "networkInterfaceId")?,
                        groups: items(eni, "groupSet")
                            .filter_map(|g| text_of(g, "groupId").map(str::to_owned))
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let ipv6 = items(i, "networkInterfaceSet")
                .flat_map(|eni| items(eni, "ipv6AddressesSet").collect::<Vec<_>>())
                .filter_map(|a| text_of(a, "ipv6Address")?.parse().ok())
                .collect();
            found.push(Instance {
                id: required(i, "instanceId")?,
                state: child(i, "instanceState")
                    .and_then(|s| text_of(s, "name"))
                    .unwrap_or("")
                    .to_owned(),
                vpc_id: text_of(i, "vpcId").map(str::to_owned),
                private_ip: text_of(i, "privateIpAddress").and_then(|a| a.parse().ok()),
                public_ip: text_of(i, "ipAddress").and_then(|a| a.parse().ok()),
                ipv6,
                windows: text_of(i, "platform").is_some_and(|p| p.eq_ignore_ascii_case("windows")),
                tags: tags(i),
                interfaces,
            });
        }
    }
    Ok(found)
}

fn read_groups(set: roxmltree::Node<'_, '_>) -> Result<Vec<Group>, String> {
    set.children()
        .filter(|n| n.tag_name().name() == "item")
        .map(|g| {
            Ok(Group {
                id: required(g, "groupId")?,
                name: text_of(g, "groupName").unwrap_or("").to_owned(),
                vpc_id: text_of(g, "vpcId").map(str::to_owned),
                tags: tags(g),
            })
        })
        .collect()
}

fn read_rules(set: roxmltree::Node<'_, '_>) -> Result<Vec<FoundRule>, String> {
    set.children()
        .filter(|n| n.tag_name().name() == "item")
        .map(|r| {
            let port = |name: &str| {
                text_of(r, name)
                    .map(|p| {
                        p.parse::<i32>()
                            .map_err(|_| format!("{name} {p:?} is not a number"))
                    })
                    .transpose()
                    .map(|p| p.unwrap_or(-1))
            };
            let cidr = text_of(r, "cidrIpv4")
                .or_else(|| text_of(r, "cidrIpv6"))
                .map(|c| {
                    c.parse::<IpNet>()
                        .map_err(|_| format!("CIDR {c:?} is not a network"))
                })
                .transpose()?;
            Ok(FoundRule {
                id: required(r, "securityGroupRuleId")?,
                group_id: required(r, "groupId")?,
                egress: text_of(r, "isEgress") == Some("true"),
                protocol: required(r, "ipProtocol")?,
                from_port: port("fromPort")?,
                to_port: port("toPort")?,
                cidr,
                description: text_of(r, "description").map(str::to_owned),
            })
        })
        .collect()
}

/// The code and message of an EC2 error answer.
pub fn error_of(text: &str) -> Option<(String, String)> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let error = doc
        .descendants()
        .find(|n| n.is_element() && n.tag_name().name() == "Error")?;
    Some((
        text_of(error, "Code")?.to_owned(),
        text_of(error, "Message").unwrap_or("").to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_as_the_query_api_wants() {
        let mut p = Params::new();
        p.filters(&[
            ("group-id", vec!["sg-1", "sg-2"]),
            ("vpc-id", vec!["vpc-9"]),
        ])
        .permissions(
            &[
                Rule {
                    key: RuleKey {
                        proto: Proto::Tcp,
                        port: 22,
                        cidr: "10.0.0.0/8".parse().unwrap(),
                    },
                    description: "ajar:x".into(),
                },
                Rule {
                    key: RuleKey {
                        proto: Proto::Udp,
                        port: 53,
                        cidr: "::/0".parse().unwrap(),
                    },
                    description: "d".into(),
                },
            ],
            true,
        );
        let body = p.encode("AuthorizeSecurityGroupIngress");
        assert_eq!(
            body,
            "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15\
             &Filter.1.Name=group-id&Filter.1.Value.1=sg-1&Filter.1.Value.2=sg-2\
             &Filter.2.Name=vpc-id&Filter.2.Value.1=vpc-9\
             &IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22\
             &IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0%2F8&IpPermissions.1.IpRanges.1.Description=ajar%3Ax\
             &IpPermissions.2.IpProtocol=udp&IpPermissions.2.FromPort=53&IpPermissions.2.ToPort=53\
             &IpPermissions.2.Ipv6Ranges.1.CidrIpv6=%3A%3A%2F0&IpPermissions.2.Ipv6Ranges.1.Description=d"
        );
    }

    #[test]
    fn an_error_answer_gives_its_code_and_message() {
        let text = "<?xml version=\"1.0\"?><Response><Errors><Error><Code>InvalidPermission.Duplicate</Code>\
                    <Message>the rule exists</Message></Error></Errors><RequestID>x</RequestID></Response>";
        assert_eq!(
            error_of(text),
            Some((
                "InvalidPermission.Duplicate".into(),
                "the rule exists".into()
            ))
        );
        assert_eq!(error_of("<html>oops</html>"), None);
    }

    #[test]
    fn rules_are_read_and_only_single_port_network_rules_have_a_key() {
        let text = r#"<DescribeSecurityGroupRulesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
          <securityGroupRuleSet>
            <item><securityGroupRuleId>sgr-1</securityGroupRuleId><groupId>sg-1</groupId><isEgress>false</isEgress>
              <ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><cidrIpv4>10.1.0.0/16</cidrIpv4>
              <description>ajar:2026-12-01T10:00:00Z:0:/r</description></item>
            <item><securityGroupRuleId>sgr-2</securityGroupRuleId><groupId>sg-1</groupId><isEgress>false</isEgress>
              <ipProtocol>-1</ipProtocol><cidrIpv6>::/0</cidrIpv6></item>
            <item><securityGroupRuleId>sgr-3</securityGroupRuleId><groupId>sg-1</groupId><isEgress>true</isEgress>
              <ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><cidrIpv4>0.0.0.0/0</cidrIpv4></item>
          </securityGroupRuleSet></DescribeSecurityGroupRulesResponse>"#;
        let doc = roxmltree::Document::parse(text).unwrap();
        let rules = read_rules(child(doc.root_element(), "securityGroupRuleSet").unwrap()).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0].key(),
            Some(RuleKey {
                proto: Proto::Tcp,
                port: 22,
                cidr: "10.1.0.0/16".parse().unwrap()
            })
        );
        assert_eq!((rules[1].from_port, rules[1].to_port), (-1, -1));
        assert_eq!(rules[1].key(), None, "all protocols is not ajar's shape");
        assert_eq!(rules[2].key(), None, "outbound");
    }
}
