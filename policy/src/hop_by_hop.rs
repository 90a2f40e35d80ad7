//! Hop-by-hop header fields (RFC 9110 §7.6.1): the fields that describe one
//! connection and must not be forwarded past it. The SDK's client and
//! host-runner both strip them, so that a guest copying headers across (a
//! proxy) forwards exactly the end-to-end ones; this module is the one list
//! of them and the one reading of `Connection`.
//!
//! It names fields and does not remove them: that takes a header map, and
//! this crate stays free of dependencies for guests. Each side removes what
//! [`fields`] names from its own map.

/// The hop-by-hop fields that go whether or not `Connection` names them;
/// `keep-alive` and `proxy-connection` are the pre-standard ones that RFC
/// 9110 §7.6.1 says to drop too.
pub const ALWAYS: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Every hop-by-hop field of a message whose `Connection` fields hold
/// `connection` (one item a field, each a comma-separated list of names):
/// the names they list, as written, then [`ALWAYS`].
///
/// ```
/// let fields: Vec<&str> = reprise_policy::hop_by_hop::fields(["close, X-Secret"]).collect();
/// assert_eq!(fields[..2], ["close", "X-Secret"]);
/// assert_eq!(fields[2..], reprise_policy::hop_by_hop::ALWAYS);
/// ```
pub fn fields<'a>(connection: impl IntoIterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    connection
        .into_iter()
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .chain(ALWAYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_every_connection_field_come_first_trimmed_and_without_empty_ones() {
        let fields: Vec<&str> = fields(["close, X-Hop-Secret", " x-other ,,", ""]).collect();
        assert_eq!(fields[..3], ["close", "X-Hop-Secret", "x-other"]);
        assert_eq!(fields[3..], ALWAYS);
    }
}
