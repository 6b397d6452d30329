//! `application/x-www-form-urlencoded` parsing and re-encoding, as `@query-param` needs
//! (RFC 9421 section 2.2.8, which follows the WHATWG URL standard, section 5).

/// The query's `(name, value)` pairs, decoded: split on `&`, empty pieces skipped, split at the
/// first `=`, `+` read as a space, percent-escapes decoded (invalid ones kept as they are), and
/// the bytes read as UTF-8 with invalid sequences replaced.
pub(crate) fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

/// Decodes one name or value of a form-encoded query.
pub(crate) fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).and_then(|b| hex_value(*b)),
                bytes.get(i + 2).and_then(|b| hex_value(*b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes the UTF-8 bytes of `text` with the form-urlencoded percent-encode set: every
/// byte except ASCII letters, digits and `*-._` becomes `%XX`; a space becomes `%20`, not `+`
/// (RFC 9421 2.2.8).
pub(crate) fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_and_escapes_decode_and_reencode_as_rfc_9421_shows() {
        let pairs = form_pairs(
            "var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something",
        );
        let encoded: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, v)| (form_encode(n), form_encode(v)))
            .collect();
        assert_eq!(
            encoded,
            [
                ("var", "this%20is%20a%20big%0Amultiline%20value"),
                ("bar", "with%20plus%20whitespace"),
                ("fa%C3%A7ade%22%3A%20", "something"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }

    #[test]
    fn invalid_escapes_are_kept_and_empty_pieces_skipped() {
        assert_eq!(form_decode("a%zz%4"), "a%zz%4");
        assert_eq!(form_decode("%"), "%");
        assert_eq!(
            form_pairs("&a&&b=1="),
            [("a".into(), "".into()), ("b".into(), "1=".into())]
        );
        assert_eq!(form_encode("bat-man~"), "bat-man%7E");
    }
}
