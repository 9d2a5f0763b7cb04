//! How stored values become domain values. Each wrapper here reads one column in its stored
//! form (microsecond instants, integer port numbers and flags, enum names, JSON text) and holds
//! the domain value; row types name the wrapper in `#[sqlx(try_from = "...")]` and derive
//! `sqlx::FromRow`, so no query maps columns by hand. A value that cannot be read fails as
//! [`StoreError::Corrupt`](crate::StoreError::Corrupt) naming its column.

use crate::rows::from_db;
use ajar_core::lifecycle::{Lifecycle, RequestState};
use ajar_core::policy::PolicyRules;
use ajar_core::request::{PortStatus, StatusReason};
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyTypeInfo, AnyValueRef};
use sqlx::error::BoxDynError;
use sqlx::{Any, Decode, Type};
use std::collections::BTreeMap;

/// Declares that a wrapper is read from a column of the stored type `$stored`.
macro_rules! stored_as {
    ($stored:ty => $($wrapper:ident $(<$param:ident>)?),+ $(,)?) => {$(
        impl$(<$param>)? Type<Any> for $wrapper$(<$param>)? {
            fn type_info() -> AnyTypeInfo {
                <$stored as Type<Any>>::type_info()
            }

            fn compatible(ty: &AnyTypeInfo) -> bool {
                <$stored as Type<Any>>::compatible(ty)
            }
        }
    )+};
}

/// Lets a field of type `$target` be read through `$wrapper` (its value, as is).
macro_rules! read_through {
    ($($wrapper:ty => $target:ty),+ $(,)?) => {$(
        impl From<$wrapper> for $target {
            fn from(column: $wrapper) -> Self {
                column.0
            }
        }
    )+};
}

/// An instant, stored as microseconds since the Unix epoch (see [`from_db`]).
pub(crate) struct Micros(Timestamp);

/// An instant that may be absent (`NULL`).
pub(crate) struct NullableMicros(Option<Timestamp>);

/// A port number, stored as an integer.
pub(crate) struct PortNumber(u16);

/// A port number that may be absent (`NULL`).
pub(crate) struct NullablePortNumber(Option<u16>);

/// A yes/no setting, stored as `0` or `1`.
pub(crate) struct Flag(bool);

/// An enum, stored as its name.
pub(crate) struct Named<T>(T);

/// A value stored as JSON text.
pub(crate) struct Json<T>(T);

/// A value stored as JSON text, or `NULL`.
pub(crate) struct NullableJson<T>(Option<T>);

stored_as!(i64 => Micros, NullableMicros, PortNumber, NullablePortNumber, Flag);
stored_as!(String => Named<T>, Json<T>, NullableJson<T>);

impl<'r> Decode<'r, Any> for Micros {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(from_db(<i64 as Decode<Any>>::decode(value)?)))
    }
}

impl<'r> Decode<'r, Any> for NullableMicros {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(
            <Option<i64> as Decode<Any>>::decode(value)?.map(from_db),
        ))
    }
}

fn port_number(n: i64) -> Result<u16, BoxDynError> {
    u16::try_from(n).map_err(|_| format!("port number {n} out of range").into())
}

impl<'r> Decode<'r, Any> for PortNumber {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(port_number(<i64 as Decode<Any>>::decode(value)?)?))
    }
}

impl<'r> Decode<'r, Any> for NullablePortNumber {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(
            <Option<i64> as Decode<Any>>::decode(value)?
                .map(port_number)
                .transpose()?,
        ))
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<i64 as Decode<Any>>::decode(value)? != 0))
    }
}

/// An enum the store keeps by name.
pub(crate) trait StoredName: Sized {
    /// What the error calls it.
    const WHAT: &'static str;
    /// The value with this stored name.
    fn from_name(name: &str) -> Option<Self>;
}

impl StoredName for PortStatus {
    const WHAT: &'static str = "port status";
    fn from_name(name: &str) -> Option<Self> {
        PortStatus::parse(name)
    }
}

impl StoredName for StatusReason {
    const WHAT: &'static str = "status reason";
    fn from_name(name: &str) -> Option<Self> {
        StatusReason::parse(name)
    }
}

impl StoredName for RequestState {
    const WHAT: &'static str = "request state";
    fn from_name(name: &str) -> Option<Self> {
        RequestState::parse(name)
    }
}

impl<'r, T: StoredName> Decode<'r, Any> for Named<T> {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        let name = <&str as Decode<Any>>::decode(value)?;
        T::from_name(name)
            .map(Self)
            .ok_or_else(|| format!("{name:?} is not a {}", T::WHAT).into())
    }
}

impl<'r, T: DeserializeOwned> Decode<'r, Any> for Json<T> {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(serde_json::from_str(<&str as Decode<Any>>::decode(
            value,
        )?)?))
    }
}

impl<'r, T: DeserializeOwned> Decode<'r, Any> for NullableJson<T> {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(
            <Option<&str> as Decode<Any>>::decode(value)?
                .map(serde_json::from_str)
                .transpose()?,
        ))
    }
}

read_through!(
    Micros => Timestamp,
    NullableMicros => Option<Timestamp>,
    PortNumber => u16,
    NullablePortNumber => Option<u16>,
    Flag => bool,
    Named<PortStatus> => PortStatus,
    Named<StatusReason> => StatusReason,
    Named<RequestState> => RequestState,
    Json<Vec<String>> => Vec<String>,
    Json<Lifecycle> => Lifecycle,
    Json<PolicyRules> => PolicyRules,
    NullableJson<Vec<String>> => Option<Vec<String>>,
    NullableJson<BTreeMap<String, String>> => Option<BTreeMap<String, String>>,
);

/// A list that may be absent reads as empty.
impl From<NullableJson<Vec<String>>> for Vec<String> {
    fn from(column: NullableJson<Vec<String>>) -> Self {
        column.0.unwrap_or_default()
    }
}

/// A gateway's mapped-port range, kept in two columns (`port_low`, `port_high`); absent unless
/// both are set.
#[derive(sqlx::FromRow)]
pub(crate) struct PortRangeColumns {
    #[sqlx(try_from = "NullablePortNumber")]
    port_low: Option<u16>,
    #[sqlx(try_from = "NullablePortNumber")]
    port_high: Option<u16>,
}

impl From<PortRangeColumns> for Option<(u16, u16)> {
    fn from(columns: PortRangeColumns) -> Self {
        columns.port_low.zip(columns.port_high)
    }
}

/// Encodes a value as the JSON text the store keeps.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> crate::StoreResult<String> {
    serde_json::to_string(value).map_err(|e| crate::StoreError::Other(e.to_string()))
}
