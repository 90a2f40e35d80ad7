//! [`Url`]: outgoing URLs built from parts, each part encoded, so a value
//! from a request or a user cannot change the URL's shape. It does not
//! parse, normalise or resolve URLs: the base is used as it is given.

use super::{Error, ErrorKind};

/// An outgoing URL: a base, then path segments and query pairs, each
/// percent-encoded, so values from a request or a user cannot change the
/// URL's shape (a `/` in a segment, a `&` in a value).
///
/// ```
/// use reprise::client::Url;
///
/// let uri = Url::new("http://127.0.0.1:8081/v1")
///     .segment("cities")
///     .segment("São Paulo")
///     .query("city", "São Paulo")
///     .query("q", "a&b=c")
///     .to_uri()
///     .unwrap();
/// assert_eq!(
///     uri,
///     "http://127.0.0.1:8081/v1/cities/S%C3%A3o%20Paulo?city=S%C3%A3o+Paulo&q=a%26b%3Dc"
/// );
/// ```
#[derive(Clone, Debug)]
pub struct Url {
    base: String,
    path: String,
    /// The query so far, already encoded.
    query: String,
}

impl Url {
    /// Starts from `base`, an absolute URL (`http://host:port/prefix`),
    /// which is used as it is: encode what you put in it.
    pub fn new(base: impl Into<String>) -> Self {
        let base = base.into();
        let (base, query) = match base.split_once('?') {
            Some((base, query)) => (base.to_owned(), query.to_owned()),
            None => (base, String::new()),
        };
        Url {
            base,
            path: String::new(),
            query,
        }
    }

    /// Appends one path segment, percent-encoded (a `/` in it stays part of
    /// the segment).
    pub fn segment(mut self, segment: &str) -> Self {
        self.path.push('/');
        for byte in segment.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                self.path.push(char::from(byte));
            } else {
                self.path.push_str(&format!("%{byte:02X}"));
            }
        }
        self
    }

    /// Appends the query pair `name=value`, form-encoded as browsers send
    /// forms (a space is `+`), which is how
    /// [`query_param`](crate::query_param) and most servers read it.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        form_urlencoded::Serializer::for_suffix(&mut self.query, 0).append_pair(name, value);
        self
    }

    /// The URL as a [`Uri`](http::Uri) for a request; fails, naming the URL,
    /// when the base is not an absolute URL.
    pub fn to_uri(&self) -> Result<http::Uri, Error> {
        let mut url = self.base.trim_end_matches('/').to_owned();
        if self.path.is_empty() && url.len() < self.base.len() {
            url.push('/');
        }
        url.push_str(&self.path);
        if !self.query.is_empty() {
            url.push('?');
            url.push_str(&self.query);
        }
        match url.parse::<http::Uri>() {
            Ok(uri) if uri.authority().is_some() => Ok(uri),
            _ => Err(Error::new(
                ErrorKind::InvalidRequest,
                format!(
                    "`{url}` is not an absolute URL; start from one such as http://127.0.0.1:8081/"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_segments_and_pairs_and_keep_the_bases_own_query() {
        let uri = |url: Url| url.to_uri().unwrap().to_string();
        assert_eq!(
            uri(Url::new("http://127.0.0.1:8081/")
                .segment("a/b")
                .segment("ü")),
            "http://127.0.0.1:8081/a%2Fb/%C3%BC"
        );
        assert_eq!(
            uri(Url::new("http://127.0.0.1:8081/s?key=1").query("q", "x y&z")),
            "http://127.0.0.1:8081/s?key=1&q=x+y%26z"
        );
        assert_eq!(
            uri(Url::new("http://127.0.0.1:8081/")),
            "http://127.0.0.1:8081/"
        );
        let error = Url::new("/relative").query("a", "b").to_uri().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest);
        assert!(
            error
                .to_string()
                .starts_with("`/relative?a=b` is not an absolute URL"),
            "{error}"
        );
    }
}
