//! What to say about a path no route serves: what shape was expected, so a typo, a doubled
//! base URL or a resource id where a name belongs is named rather than just refused.

use ajar_core::id::{MAX_NAME_LEN, Name};

/// The API's prefix.
const PREFIX: &str = "/api/v1";

/// Most single-character edits between a path's fixed words and a route's for the route to be
/// offered as the one meant.
const MAX_EDITS: usize = 3;

/// Why `path` matches none of `patterns` (route patterns such as
/// `/api/v1/subscriptions/{sub}/machines`), and what was expected.
pub fn explain<'a>(path: &str, patterns: impl IntoIterator<Item = &'a str>) -> String {
    let shown: String = path.chars().take(200).collect();
    let head = format!("no such API path {shown:?}");
    if path.starts_with("/api/v1/api/v1") {
        return format!(
            "{head}: it repeats /api/v1; the server URL (AJAR_URL or --url) should be the \
             server's root, e.g. http://host:8600, not …/api/v1"
        );
    }
    if !path.starts_with("/api/") {
        return format!("{head}: API paths start with {PREFIX}/ (the console's pages with /)");
    }
    if path.matches("/subscriptions/").count() > 1 {
        return format!(
            "{head}: it holds a full resource id where a name belongs; put the id's last \
             segment there, or use the id alone after {PREFIX} (e.g. {PREFIX}/subscriptions/…/jitRequests/NAME/approve)"
        );
    }
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    // The fewest edits, its route, and the first segment there that is not a name.
    let mut best: Option<(usize, &str, Option<&str>)> = None;
    for pattern in patterns {
        let words: Vec<&str> = pattern.split('/').collect();
        if words.len() != segments.len() {
            continue;
        }
        let mut edits = 0;
        let mut bad_name = None;
        for (word, seg) in words.iter().zip(&segments) {
            if word.starts_with('{') {
                if bad_name.is_none() && Name::parse(seg).is_err() {
                    bad_name = Some(*seg);
                }
            } else if seg.len().abs_diff(word.len()) > MAX_EDITS {
                // Too far apart to be a typo: not worth comparing (and a long segment would
                // make the comparison cost its length times the word's).
                edits += MAX_EDITS + 1;
                break;
            } else {
                edits += distance(word, seg);
            }
        }
        if edits <= MAX_EDITS && best.is_none_or(|(e, _, _)| edits < e) {
            best = Some((edits, pattern, bad_name));
        }
    }
    match best {
        Some((0, pattern, Some(seg))) => format!(
            "{head}: {seg:?} is not a name, as {pattern} expects there: a name is 1 to \
             {MAX_NAME_LEN} letters, digits, '-', '_' or '.', starting with a letter or digit"
        ),
        Some((_, pattern, _)) => format!("{head}; the closest route is {pattern}"),
        None => format!("{head}; GET {PREFIX}/openapi.json lists every route"),
    }
}

/// Single-character edits (insert, delete, substitute) between `a` and `b`.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &[&str] = &[
        "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name}",
        "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}",
        "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}/approve",
        "/api/v1/tokens",
    ];

    fn says(path: &str, expected: &str) {
        let message = explain(path, ROUTES.iter().copied());
        assert!(message.contains(expected), "{path}: {message}");
    }

    #[test]
    fn a_segment_far_longer_than_any_word_is_not_compared() {
        let long = "x".repeat(64 * 1024);
        says(
            &format!("/api/v1/subscriptions/s1/resourceGroups/rg/{long}/vm1"),
            "openapi.json lists every route",
        );
    }

    #[test]
    fn each_kind_of_miss_says_what_was_expected() {
        says(
            "/api/v1/api/v1/tokens",
            "AJAR_URL or --url) should be the server's root",
        );
        says("/subscriptions/s1", "API paths start with /api/v1/");
        says(
            "/api/v1/subscriptions/s1/resourceGroups/rg/jitRequests//subscriptions/s1/resourceGroups/rg/jitRequests/x/approve",
            "a full resource id where a name belongs",
        );
        says(
            "/api/v1/subscriptions/s1/resourcegroups/rg/machines/vm1",
            "the closest route is /api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name}",
        );
        says(
            "/api/v1/subscriptions/s1/resourceGroups/rg/jitNetworkAccessPolicy/default",
            "closest route is /api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}",
        );
        says(
            "/api/v1/subscriptions/s1/resourceGroups//machines/vm1",
            "\"\" is not a name, as /api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name} expects there",
        );
        says(
            "/api/v1/nothing/like/this",
            "openapi.json lists every route",
        );
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
    }
}
