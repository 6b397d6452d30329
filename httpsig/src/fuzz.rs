//! The fuzzing entry point for everything this crate parses: the `Signature-Input`,
//! `Signature` and `Content-Digest` headers of a request, the components they name, and the
//! body they bind. Shared by the fuzz target `signature_headers` (the repository's `fuzz/`),
//! which depends on this crate alone, and by `oar-host`'s `tests/fuzz_corpus.rs`.
//!
//! [`signature_headers`] takes arbitrary bytes and must return without panicking, whatever
//! they are: every header is untrusted.

use crate::{oar, verify, Request, SignatureSet};

/// The "now" (Unix seconds) [`signature_headers`] checks `created` and `expires` against. A
/// seed input signed at this instant passes the time window.
pub const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// The time window [`signature_headers`] allows around [`NOW`], in seconds (the server's).
pub const WINDOW: i64 = 300;

/// The method and scheme of every request [`signature_headers`] builds (a signature covers
/// `@method`, so a seed is signed for `POST`).
pub const METHOD: &str = "POST";

/// The header fields an input is made of, in order, one per line; what follows the sixth
/// line is the body.
///
/// Within a header line, `\r` separates the lines of a header sent several times (each
/// becomes one header value; a value that is not UTF-8 is left out, as the server leaves out
/// such a value). The query line is the query without its `?`, and an empty line means the
/// request had no `?`; a leading `?` gives an empty or explicit query.
pub const FIELDS: [&str; 6] = [
    "signature-input",
    "signature",
    "content-digest",
    "@authority",
    "@path",
    "@query",
];

/// Runs `data`, read as a request (see [`FIELDS`]), through the whole check a server makes:
/// the generic verifier on every label (which rebuilds a signature base from whatever
/// components the signer listed), then OAR's policy ([`oar::authenticate_head`]) with a
/// resolver that accepts any well-formed `keyid`, then [`oar::Pending::check_body`] on the
/// body.
///
/// Returns whether the request verified, body included (a seed made with
/// [`oar::sign_request`] at [`NOW`] does). Never panics.
pub fn signature_headers(data: &[u8]) -> bool {
    let mut lines = data.splitn(FIELDS.len() + 1, |&b| b == b'\n');
    let mut field = || lines.next().unwrap_or_default();
    let (input, signature, digest) = (field(), field(), field());
    let (authority, path, query) = (field(), field(), field());
    let body = lines.next().unwrap_or_default();

    let query = match query {
        [] => None,
        [b'?', rest @ ..] => Some(String::from_utf8_lossy(rest)),
        q => Some(String::from_utf8_lossy(q)),
    };
    let mut request = Request::from_parts(
        METHOD,
        "http",
        &String::from_utf8_lossy(authority),
        &String::from_utf8_lossy(path),
        query.as_deref(),
    );
    for (name, value) in FIELDS.iter().zip([input, signature, digest]) {
        for line in value.split(|&b| b == b'\r') {
            if let Ok(line) = std::str::from_utf8(line) {
                request = request.with_header(name, line);
            }
        }
    }

    let keys = |keyid: &str| oar::key_from_keyid(keyid);
    if let Ok(set) = SignatureSet::from_message(&request) {
        for label in set.labels() {
            let _ = verify(&request, label, &keys);
        }
    }
    oar::authenticate_head(&request, NOW, WINDOW, &keys)
        .and_then(|pending| pending.check_body(body))
        .is_ok()
}

/// An input for [`signature_headers`] made of a request's header values, target and body (the
/// inverse of how it reads one): for seeds and regression cases.
pub fn input_bytes(
    signature_input: &str,
    signature: &str,
    content_digest: &str,
    authority: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let head = [
        signature_input,
        signature,
        content_digest,
        authority,
        path,
        &query,
    ]
    .join("\n");
    [head.as_bytes(), b"\n", body].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;

    fn signed(body: &[u8]) -> Vec<u8> {
        let key = SigningKey::from_bytes(&[7; 32]);
        let req = Request::new(METHOD, "http://127.0.0.1:8420/v1/runs").unwrap();
        let s = oar::sign_request(&req, body, &key, NOW, "n-1").unwrap();
        input_bytes(
            &s.signature_input,
            &s.signature,
            &s.content_digest,
            "127.0.0.1:8420",
            "/v1/runs",
            None,
            body,
        )
    }

    #[test]
    fn a_signed_request_verifies_and_a_changed_body_does_not() {
        let body = br#"{"module_hash":"abc"}"#;
        let input = signed(body);
        assert!(signature_headers(&input));
        let mut changed = input.clone();
        *changed.last_mut().unwrap() = b']';
        assert!(!signature_headers(&changed));
    }

    #[test]
    fn a_body_may_hold_newlines_and_a_query_its_question_mark() {
        let body = b"line one\nline two\n";
        assert!(signature_headers(&signed(body)));
        let with_query = input_bytes("", "", "", "h", "/", Some(""), b"");
        assert!(with_query.ends_with(b"\n/\n?\n"));
        assert!(!signature_headers(&with_query));
    }

    #[test]
    fn arbitrary_bytes_are_refused_not_a_panic() {
        for data in [
            &b""[..],
            b"\n\n\n\n\n\n",
            b"\xff\r\xfe\n\r\r",
            b"sig=(\"@method\")",
        ] {
            assert!(!signature_headers(data));
        }
    }
}
