//! How every list is paged: `top` (the page size) and `skipToken`, an opaque key of the last item
//! of the previous page in the list's order, so the next page starts right after it (keyset
//! paging: an item added or removed elsewhere does not shift the pages). A list's `nextLink`
//! keeps the request's other query parameters (its filters).

use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::List;
use ajar_store::Cursor;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jiff::Timestamp;
use std::cmp::Reverse;

/// Most items a list answers at once.
pub const LIST_PAGE_MAX: usize = 1000;

/// Fewest items a batch of [`Page::gather`] reads.
pub const GATHER_BATCH_MIN: usize = 100;

/// Page size of lists read from the store in time order when `top` is absent.
pub const TIME_ORDERED_DEFAULT: usize = 100;

/// The key of a list item, as it appears in a `skipToken`.
pub trait PageKey: Sized {
    /// The token for this key.
    fn to_token(&self) -> String;
    /// The key in a token, or `None` when the token is not one of this list's.
    fn from_token(token: &str) -> Option<Self>;
}

/// Lists in name or id order.
impl PageKey for String {
    fn to_token(&self) -> String {
        self.clone()
    }

    fn from_token(token: &str) -> Option<Self> {
        (!token.is_empty()).then(|| token.to_owned())
    }
}

/// Lists in the order of a positive sequence number (the activity log).
impl PageKey for i64 {
    fn to_token(&self) -> String {
        self.to_string()
    }

    fn from_token(token: &str) -> Option<Self> {
        token.parse().ok().filter(|n| *n > 0)
    }
}

/// Lists in creation order (instant in microseconds, then id).
impl PageKey for Cursor {
    fn to_token(&self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }

    fn from_token(token: &str) -> Option<Self> {
        let (at, id) = token.split_once('.')?;
        Some(Cursor {
            created_at: at.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

/// Lists newest first: the reverse of a key's order, with the same token.
impl<K: PageKey> PageKey for Reverse<K> {
    fn to_token(&self) -> String {
        self.0.to_token()
    }

    fn from_token(token: &str) -> Option<Self> {
        K::from_token(token).map(Reverse)
    }
}

/// The key of an item in creation order.
pub fn time_key(at: Timestamp, id: impl Into<String>) -> Cursor {
    Cursor {
        created_at: ajar_store::to_db(at),
        id: id.into(),
    }
}

/// A list in name or id order.
pub type ByName = Page<String>;

/// A list oldest first.
pub type OldestFirst = Page<Cursor>;

/// A list newest first.
pub type NewestFirst<const DEFAULT: usize = LIST_PAGE_MAX> = Page<Reverse<Cursor>, DEFAULT>;

/// Requests (and history), newest first, [`TIME_ORDERED_DEFAULT`] to a page unless `top` says
/// otherwise.
pub type RequestPage = NewestFirst<TIME_ORDERED_DEFAULT>;

/// `top` and `skipToken` of a list request, checked. `DEFAULT` is the page size when `top` is
/// absent.
#[derive(Debug, Clone)]
pub struct Page<K, const DEFAULT: usize = LIST_PAGE_MAX> {
    /// Items on this page (1 to [`LIST_PAGE_MAX`]).
    pub top: usize,
    /// The key of the last item of the previous page; `None` on the first page.
    pub after: Option<K>,
    path: String,
    kept: Vec<(String, String)>,
}

impl<K: PageKey, const DEFAULT: usize> Page<K, DEFAULT> {
    /// Parses `top` and `skipToken` from a query string; other parameters are kept for the
    /// next page's link.
    pub fn parse(path: &str, query: &str) -> AppResult<Self> {
        let mut page = Page {
            top: DEFAULT,
            after: None,
            path: path.to_owned(),
            kept: Vec::new(),
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "top" => {
                    page.top = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=LIST_PAGE_MAX).contains(n))
                        .ok_or_else(|| {
                            AppError::new(
                                ErrorCode::InvalidParameter,
                                format!("top must be between 1 and {LIST_PAGE_MAX}"),
                            )
                            .at("top")
                        })?;
                }
                "skipToken" => {
                    page.after = Some(K::from_token(&value).ok_or_else(|| {
                        AppError::new(ErrorCode::InvalidParameter, "skipToken is not valid")
                            .at("skipToken")
                    })?);
                }
                _ => page.kept.push((name.into_owned(), value.into_owned())),
            }
        }
        Ok(page)
    }

    /// How many rows to read from the store: one more than the page, to know whether another
    /// page follows.
    pub fn limit(&self) -> usize {
        self.top + 1
    }

    /// The link to the page after the item with key `last`.
    pub fn link_after(&self, last: &K) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.kept {
            query.append_pair(name, value);
        }
        query.append_pair("top", &self.top.to_string());
        query.append_pair("skipToken", &last.to_token());
        format!("{}?{}", self.path, query.finish())
    }

    /// Like [`Page::finish`] for items whose size varies widely: the page also ends with the
    /// item that brings its `weight` to `max` (one item at least, however heavy), so a page
    /// holds a bounded amount whatever `top` says. Rows come from a [`Gather`] that was told
    /// the same bound ([`Gather::full_by`]).
    pub fn finish_by<T>(
        &self,
        mut rows: Vec<T>,
        key_of: impl Fn(&T) -> K,
        weight: impl Fn(&T) -> usize,
        max: usize,
    ) -> (Vec<T>, Option<String>) {
        let mut held = 0;
        let mut n = rows.len().min(self.top);
        for (i, item) in rows.iter().enumerate().take(self.top) {
            held += weight(item);
            if held >= max {
                n = i + 1;
                break;
            }
        }
        let more = rows.len() > n;
        rows.truncate(n);
        let next_link = more
            .then(|| rows.last().map(|last| self.link_after(&key_of(last))))
            .flatten();
        (rows, next_link)
    }

    /// Rows read with [`Page::limit`], cut to the page, and the next page's link when more
    /// follow. `key_of` gives an item's key.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        key_of: impl Fn(&T) -> K,
    ) -> (Vec<T>, Option<String>) {
        let more = rows.len() > self.top;
        rows.truncate(self.top);
        let next_link = more
            .then(|| rows.last().map(|last| self.link_after(&key_of(last))))
            .flatten();
        (rows, next_link)
    }
}

impl<K: PageKey + Clone, const DEFAULT: usize> Page<K, DEFAULT> {
    /// Starts gathering the items of this page that the caller may see from batches read in
    /// key order (see [`Gather`]).
    pub fn gather<T>(&self) -> Gather<K, T> {
        Gather {
            limit: self.limit(),
            batch: self.limit().max(GATHER_BATCH_MIN),
            after: self.after.clone(),
            items: Vec::new(),
            done: false,
        }
    }
}

/// The items of a page (and one more, up to [`Page::limit`]) that a filter keeps, read from
/// the store in key order a batch at a time until the page is full or the store has no more:
/// a caller who may see few items costs a few batches, never the whole list in memory.
///
/// ```ignore
/// let mut gather = page.gather();
/// while gather.wants_more() {
///     let batch = tx.things_page(gather.after(), gather.batch()).await?;
///     gather.take(batch, |t| t.key(), |t| caller.may_see(t));
/// }
/// let (items, next_link) = page.finish(gather.into_items(), |t| t.key());
/// ```
pub struct Gather<K, T> {
    limit: usize,
    batch: usize,
    after: Option<K>,
    items: Vec<T>,
    done: bool,
}

impl<K: Clone, T> Gather<K, T> {
    /// Whether another batch is needed.
    pub fn wants_more(&self) -> bool {
        !self.done
    }

    /// How many items to read in the next batch: the page's [`Page::limit`], and never fewer
    /// than [`GATHER_BATCH_MIN`], so a caller who may see few items asks for small pages
    /// without multiplying round trips.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The key the next batch starts after.
    pub fn after(&self) -> Option<&K> {
        self.after.as_ref()
    }

    /// Reads batches of `n` items rather than a whole page: for items that are large each.
    pub fn in_batches_of(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Ends the gathering once the items kept weigh `max` or more by `weight`, with one item
    /// more to tell whether another page follows (see [`Page::finish_by`]).
    pub fn full_by(&mut self, weight: impl Fn(&T) -> usize, max: usize) {
        let mut held = 0;
        for (i, item) in self.items.iter().enumerate() {
            held += weight(item);
            if held >= max && i + 1 < self.items.len() {
                self.items.truncate(i + 2);
                self.done = true;
                return;
            }
        }
    }

    /// Takes a batch of at most [`Gather::batch`] items read after [`Gather::after`], keeping
    /// those `keep` accepts.
    pub fn take(&mut self, batch: Vec<T>, key_of: impl Fn(&T) -> K, keep: impl Fn(&T) -> bool) {
        let exhausted = batch.len() < self.batch;
        if let Some(last) = batch.last() {
            self.after = Some(key_of(last));
        }
        self.items
            .extend(batch.into_iter().filter(|item| keep(item)));
        if exhausted || self.items.len() >= self.limit {
            self.items.truncate(self.limit);
            self.done = true;
        }
    }

    /// The items kept, in key order.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

impl<K: PageKey + Ord, const DEFAULT: usize> Page<K, DEFAULT> {
    /// One page of a list held in memory: its items in key order, from just after the
    /// `skipToken`'s key. Only for lists that are short and bounded by nature (the built-in
    /// roles, merged with one page of custom roles read from the store); every stored list is
    /// read a page at a time (see [`Page::gather`]).
    pub fn list<T>(&self, mut items: Vec<T>, key_of: impl Fn(&T) -> K) -> List<T> {
        items.sort_by_key(|item| key_of(item));
        if let Some(after) = &self.after {
            let start = items.partition_point(|item| key_of(item) <= *after);
            items.drain(..start);
        }
        items.truncate(self.limit());
        let (value, next_link) = self.finish(items, key_of);
        List { value, next_link }
    }
}

impl<S: Send + Sync, K: PageKey, const DEFAULT: usize> FromRequestParts<S> for Page<K, DEFAULT> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Page::parse(parts.uri.path(), parts.uri.query().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(query: &str) -> Page<String> {
        Page::parse("/api/v1/things", query).unwrap()
    }

    fn names<'a>(list: &List<&'a str>) -> Vec<&'a str> {
        list.value.clone()
    }

    #[test]
    fn lists_page_by_key_and_keep_filters_encoded() {
        let items = vec!["d", "a", "c", "b", "e"];
        let first = page("top=2&owner=a%20b%26c").list(items.clone(), |s| s.to_string());
        assert_eq!(names(&first), ["a", "b"]);
        assert_eq!(
            first.next_link.as_deref(),
            Some("/api/v1/things?owner=a+b%26c&top=2&skipToken=b")
        );
        let query = first.next_link.unwrap();
        let second = page(query.split_once('?').unwrap().1).list(items.clone(), |s| s.to_string());
        assert_eq!(names(&second), ["c", "d"]);
        // An item removed before the next page is read does not shift it.
        let fewer = vec!["a", "c", "d", "e"];
        let again = page("top=2&skipToken=b").list(fewer, |s| s.to_string());
        assert_eq!(names(&again), ["c", "d"]);
        let last = page("top=2&skipToken=d").list(items, |s| s.to_string());
        assert_eq!((names(&last), last.next_link), (vec!["e"], None));
    }

    #[test]
    fn a_full_last_page_has_no_link() {
        let list = page("top=2").list(vec!["a", "b"], |s| s.to_string());
        assert_eq!((list.value.len(), list.next_link), (2, None));
    }

    #[test]
    fn bad_top_and_tokens_are_refused_with_the_parameter_named() {
        for (query, target) in [
            ("top=0", "top"),
            ("top=1001", "top"),
            ("top=x", "top"),
            ("skipToken=", "skipToken"),
        ] {
            let e = Page::<String>::parse("/p", query).unwrap_err();
            assert_eq!(e.0.target.as_deref(), Some(target), "{query}");
        }
        for token in ["-4", "0", "abc"] {
            assert!(Page::<i64>::parse("/p", &format!("skipToken={token}")).is_err());
        }
        assert!(Page::<ajar_store::Cursor>::parse("/p", "skipToken=garbage").is_err());
        let cursor = Page::<ajar_store::Cursor>::parse("/p", "skipToken=12.a.b").unwrap();
        assert_eq!(
            cursor.after.map(|c| (c.created_at, c.id)),
            Some((12, "a.b".to_owned()))
        );
    }

    #[test]
    fn a_page_of_heavy_items_ends_at_its_weight_and_links_on() {
        // Items `(key, weight)` in key order, read three at a time as a store would.
        let store: Vec<(String, usize)> =
            [("a", 300), ("b", 900), ("c", 50), ("d", 2000), ("e", 10)]
                .iter()
                .map(|(k, w)| ((*k).to_owned(), *w))
                .collect();
        let read = |p: &Page<String>| {
            let mut gather = p.gather().in_batches_of(3);
            while gather.wants_more() {
                let after = gather.after().cloned();
                let batch: Vec<(String, usize)> = store
                    .iter()
                    .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
                    .take(gather.batch())
                    .cloned()
                    .collect();
                gather.take(batch, |(k, _)| k.clone(), |_| true);
                gather.full_by(|(_, w)| *w, 1000);
            }
            p.finish_by(gather.into_items(), |(k, _)| k.clone(), |(_, w)| *w, 1000)
        };
        let keys =
            |rows: &[(String, usize)]| rows.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        // a + b reach 1,000: the page ends with b.
        let (rows, link) = read(&page(""));
        assert_eq!(keys(&rows), ["a", "b"]);
        let link = link.expect("more follow");
        assert_eq!(link, "/api/v1/things?top=1000&skipToken=b");
        // c + d: d alone is heavier than the bound, and still makes the page.
        let (rows, link) = read(&page(link.split_once('?').unwrap().1));
        assert_eq!(keys(&rows), ["c", "d"]);
        let (rows, link) = read(&page(link.unwrap().split_once('?').unwrap().1));
        assert_eq!((keys(&rows), link), (vec!["e".to_owned()], None));
        // `top` still bounds a page of light items.
        let (rows, link) = read(&page("top=1"));
        assert_eq!((keys(&rows), link.is_some()), (vec!["a".to_owned()], true));
    }

    #[test]
    fn defaults_follow_the_list() {
        assert_eq!(page("").top, LIST_PAGE_MAX);
        let p = Page::<i64, TIME_ORDERED_DEFAULT>::parse("/p", "").unwrap();
        assert_eq!((p.top, p.after), (TIME_ORDERED_DEFAULT, None));
    }
}
