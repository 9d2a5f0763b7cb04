//! What a list may read, given to the store so that a page read for someone who may see only
//! part of the store reads only that part, through an index, instead of everything in order.

use crate::sql::SqlBuilder;

/// The rows a newest-first list may read: the caller's own, and those at or beneath some
/// scopes. The store reads each part through its own index and merges the parts in order, so a
/// page costs what the parts' first pages hold, however much else the store holds.
///
/// The store only narrows what it reads: deciding what a caller may see stays with the caller,
/// who must give at least every row it may show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readable {
    /// Rows whose requester is this principal.
    pub own: Option<String>,
    /// Subscriptions (by name) whose rows may all be read.
    pub subscriptions: Vec<String>,
    /// Resource groups (subscription and group names) whose rows may all be read.
    pub groups: Vec<(String, String)>,
    /// Single resources: a role activation request's id, or a policy's id for the network
    /// requests made under it.
    pub resources: Vec<String>,
}

/// One part of a [`Readable`], read on its own through an index.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arm<'a> {
    /// Rows of this requester.
    Own(&'a str),
    /// Rows in this subscription.
    Subscription(&'a str),
    /// Rows in this resource group.
    Group(&'a str, &'a str),
    /// The rows of this resource.
    Resource(&'a str),
    /// Rows whose subscription is not known (stored before it was kept).
    Unplaced,
    /// Nothing: the set is empty.
    Nothing,
}

impl Readable {
    /// The parts to read; `unplaced` adds the rows whose subscription is not stored. Never
    /// empty: an empty set is [`Arm::Nothing`].
    pub(crate) fn arms(&self, unplaced: bool) -> Vec<Arm<'_>> {
        let mut arms: Vec<Arm<'_>> = self.own.as_deref().map(Arm::Own).into_iter().collect();
        arms.extend(self.subscriptions.iter().map(|s| Arm::Subscription(s)));
        arms.extend(self.groups.iter().map(|(s, g)| Arm::Group(s, g)));
        arms.extend(self.resources.iter().map(|r| Arm::Resource(r)));
        if unplaced && !arms.is_empty() {
            arms.push(Arm::Unplaced);
        }
        if arms.is_empty() {
            arms.push(Arm::Nothing);
        }
        arms
    }
}

/// Appends a newest-first page merged from one page per arm (each pushed by `push_page`, a
/// complete `SELECT … ORDER BY created_at DESC, id DESC LIMIT …` over `columns`): their union,
/// without duplicates, in `(created_at, id)` order, at most `limit` rows.
pub(crate) fn push_merged(
    sql: &mut SqlBuilder,
    columns: &str,
    arms: &[Arm<'_>],
    limit: u32,
    mut push_page: impl FnMut(&mut SqlBuilder, Arm<'_>),
) {
    for (i, arm) in arms.iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ");
        }
        sql.push(format_args!("SELECT {columns} FROM ("));
        push_page(sql, *arm);
        sql.push(format_args!(") AS arm{i}"));
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(limit));
}
