//! Request and response bodies, one module per resource, all re-exported here. JSON field names
//! follow the vendor's JIT API (`virtualMachines`, `allowedSourceAddressPrefix`,
//! `maxRequestAccessDuration`, `endTimeUtc`, …) so its examples port over.

use ajar_core::FieldError;
use ajar_core::net::SourcePrefix;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// Declares a closed set of names the API returns, with its wire form, parsing and `Display`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema,
        )]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every value, in the order the API documents them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }

            /// Parses the wire form.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mod activity;
mod agents;
mod applications;
mod machines;
mod notifications;
mod policies;
mod rbac;
mod requests;
mod settings;

pub use activity::*;
pub use agents::*;
pub use applications::*;
pub use machines::*;
pub use notifications::*;
pub use policies::*;
pub use rbac::*;
pub use requests::*;
pub use settings::*;

/// A list response (`{"value":[...]}`), with a link to the next page where lists are paged.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct List<T> {
    /// The items.
    pub value: Vec<T>,
    /// Path and query of the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// Source prefixes given either as one string or as an array of strings (an array is accepted
/// in the singular field too).
#[derive(Debug, Clone, PartialEq, Eq, Default, ToSchema)]
#[schema(value_type = Vec<String>)]
pub struct SourceList(pub Vec<SourcePrefix>);

impl<'de> Deserialize<'de> for SourceList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SourceList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a source prefix or an array of source prefixes")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SourceList, E> {
                SourcePrefix::parse(s)
                    .map(|p| SourceList(vec![p]))
                    .map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SourceList, A::Error> {
                let mut out = Vec::new();
                while let Some(p) = seq.next_element::<SourcePrefix>()? {
                    out.push(p);
                    if out.len() > MAX_SOURCES {
                        return Err(de::Error::custom(format!(
                            "at most {MAX_SOURCES} source prefixes are allowed"
                        )));
                    }
                }
                Ok(SourceList(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for SourceList {
    /// One prefix is written as a string, several as an array.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

/// Most source prefixes one port rule or request may list.
pub const MAX_SOURCES: usize = 100;

/// Merges the singular and plural source fields, refusing both at once.
pub(crate) fn sources(
    single: &Option<SourceList>,
    plural: &Option<SourceList>,
) -> Result<Vec<SourcePrefix>, FieldError> {
    match (single, plural) {
        (Some(_), Some(_)) => Err(FieldError::new(
            "allowedSourceAddressPrefixes",
            "give allowedSourceAddressPrefix or allowedSourceAddressPrefixes, not both",
        )),
        (Some(s), None) | (None, Some(s)) => Ok(s.0.clone()),
        (None, None) => Ok(Vec::new()),
    }
}

/// Writes sources back in the vendor's shape: one prefix in the singular field, several in the
/// plural one.
pub(crate) fn split_sources(
    all: &[SourcePrefix],
) -> (Option<SourcePrefix>, Option<Vec<SourcePrefix>>) {
    match all {
        [one] => (Some(*one), None),
        many => (None, Some(many.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: serde_json::Value) -> Result<PolicyBody, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn the_vendors_policy_example_parses() {
        let b = body(json!({"kind":"Basic","properties":{"virtualMachines":[{
            "id":"/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM",
            "ports":[{"number":22,"protocol":"*","allowedSourceAddressPrefix":["*"],"maxRequestAccessDuration":"PT3H"},
                     {"number":3389,"protocol":"*","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}))
        .unwrap();
        let rules = b.to_domain().unwrap();
        assert_eq!(rules.machines[0].ports.len(), 2);
        assert_eq!(
            rules.machines[0].ports[0].allowed_sources,
            vec![SourcePrefix::Any]
        );
    }

    #[test]
    fn field_errors_name_the_field() {
        let e = body(json!({"properties":{"virtualMachines":[{"id":"/subscriptions/s/resourceGroups/r/machines/m",
            "ports":[{"number":70000,"protocol":"*","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}))
        .unwrap_err();
        assert!(e.contains("70000"), "{e}");
        assert!(body(json!({"properties":{"virtualMachines":[]},"extra":1})).is_err());
    }

    #[test]
    fn both_source_fields_are_refused() {
        let b = body(json!({"properties":{"virtualMachines":[{"id":"/subscriptions/s/resourceGroups/r/machines/m",
            "ports":[{"number":22,"protocol":"*","allowedSourceAddressPrefix":"*","allowedSourceAddressPrefixes":["10.0.0.0/8"],"maxRequestAccessDuration":"PT3H"}]}]}}))
        .unwrap();
        assert_eq!(
            b.to_domain().unwrap_err().target,
            "properties.virtualMachines[0].ports[0].allowedSourceAddressPrefixes"
        );
    }
}
