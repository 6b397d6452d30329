//! The request as the signature sees it: a [`Message`] trait a server fills from its own request
//! type, and a small owned [`Request`] for clients and tests.

use crate::Error;

/// A request, as received, from which signature components are derived.
///
/// A server implements this over its own request type (for axum, the method, the `Host`
/// header or URI authority, the URI's path and query, and the header map). Every value is
/// given as it was received: the components that RFC 9421 normalizes (`@authority`,
/// `@scheme`) are normalized by this crate, not by the implementation.
pub trait Message {
    /// The method, exactly as received (`POST`).
    fn method(&self) -> &str;
    /// The scheme the request was received over (`http` or `https`).
    fn scheme(&self) -> &str;
    /// The authority (`host[:port]`) the request was sent to: the `Host` header in HTTP/1.1,
    /// `:authority` in HTTP/2.
    fn authority(&self) -> &str;
    /// The path, still percent-encoded as received (`/v1/runs`); empty means `/`.
    fn path(&self) -> &str;
    /// The query without its `?`, still percent-encoded; `None` when the target had no `?`.
    fn query(&self) -> Option<&str>;
    /// Every value of the header `name` (given in lowercase), in the order received; empty when
    /// the header is absent. A value that is not valid UTF-8 should be left out by the
    /// implementation (a covered field then fails as missing, never as a different value).
    fn header_values(&self, name: &str) -> Vec<&str>;
}

/// An owned request: method, target URL parts and headers.
///
/// ```
/// use oar_httpsig::{Message, Request};
/// let r = Request::new("POST", "http://example.com/foo?param=Value&Pet=dog")
///     .unwrap()
///     .with_header("Content-Type", "application/json");
/// assert_eq!((r.authority(), r.path(), r.query()), ("example.com", "/foo", Some("param=Value&Pet=dog")));
/// assert_eq!(r.header_values("content-type"), ["application/json"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    scheme: String,
    authority: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
}

impl Request {
    /// A request with `method` to the absolute URL `url` (`scheme://authority/path?query`;
    /// a fragment is dropped), with no headers.
    pub fn new(method: &str, url: &str) -> Result<Request, Error> {
        let bad = |reason: &str| Error::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://authority/path"))?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(bad("invalid scheme"));
        }
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        if authority.is_empty() {
            return Err(bad("no authority"));
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (target, None),
        };
        Ok(Request {
            method: method.to_string(),
            scheme: scheme.to_string(),
            authority: authority.to_string(),
            path: path.to_string(),
            query,
            headers: Vec::new(),
        })
    }

    /// A request from its parts as received (see [`Message`] for what each one is).
    pub fn from_parts(
        method: &str,
        scheme: &str,
        authority: &str,
        path: &str,
        query: Option<&str>,
    ) -> Request {
        Request {
            method: method.to_string(),
            scheme: scheme.to_string(),
            authority: authority.to_string(),
            path: path.to_string(),
            query: query.map(str::to_string),
            headers: Vec::new(),
        }
    }

    /// Adds a header line (the name is matched case-insensitively).
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Replaces every line of the header `name` with one line `value`.
    pub fn set_header(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_string()));
    }
}

impl Message for Request {
    fn method(&self) -> &str {
        &self.method
    }
    fn scheme(&self) -> &str {
        &self.scheme
    }
    fn authority(&self) -> &str {
        &self.authority
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A message seen with one header replaced: the signer uses it to sign a `Content-Digest` it
/// has just computed without changing the caller's request.
pub(crate) struct WithHeader<'a, M: ?Sized> {
    pub(crate) inner: &'a M,
    pub(crate) name: &'static str,
    pub(crate) value: &'a str,
}

impl<M: Message + ?Sized> Message for WithHeader<'_, M> {
    fn method(&self) -> &str {
        self.inner.method()
    }
    fn scheme(&self) -> &str {
        self.inner.scheme()
    }
    fn authority(&self) -> &str {
        self.inner.authority()
    }
    fn path(&self) -> &str {
        self.inner.path()
    }
    fn query(&self) -> Option<&str> {
        self.inner.query()
    }
    fn header_values(&self, name: &str) -> Vec<&str> {
        if name.eq_ignore_ascii_case(self.name) {
            vec![self.value]
        } else {
            self.inner.header_values(name)
        }
    }
}
