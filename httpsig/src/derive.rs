//! The value of each covered component in a request (RFC 9421 sections 2.1 and 2.2).
//!
//! Supported: the derived components `@method`, `@target-uri`, `@authority`, `@scheme`,
//! `@request-target`, `@path`, `@query` and `@query-param` (with `name`), and HTTP fields by
//! name, optionally with `sf` (for fields known to be Dictionaries) or `key` (a Dictionary
//! member). `bs`, `req` and `tr` are refused, as is any parameter this code does not know.
//! A value that would not fit on one line of the signature base is refused, so no header can
//! forge a line.

use crate::query::{form_decode, form_encode, form_pairs};
use crate::{ComponentId, Error, Message};
use sfv::{BareItem, Dictionary, FieldType, List, ListEntry, Parser};

/// Fields whose structured type is Dictionary, the only ones `sf` is accepted on.
const DICTIONARY_FIELDS: [&str; 8] = [
    "content-digest",
    "repr-digest",
    "want-content-digest",
    "want-repr-digest",
    "signature",
    "signature-input",
    "accept-signature",
    "priority",
];

/// The value of component `c` in `msg`.
pub(crate) fn component_value<M: Message + ?Sized>(
    msg: &M,
    c: &ComponentId,
) -> Result<String, Error> {
    let value = if c.name().starts_with('@') {
        derived_value(msg, c)?
    } else {
        field_value(msg, c)?
    };
    check_one_line(c, &value)?;
    Ok(value)
}

fn derived_value<M: Message + ?Sized>(msg: &M, c: &ComponentId) -> Result<String, Error> {
    let allowed: &[&str] = if c.name() == "@query-param" {
        &["name"]
    } else {
        &[]
    };
    if let Some((param, _)) = c
        .params()
        .iter()
        .find(|(k, _)| !allowed.contains(&k.as_str()))
    {
        return Err(Error::UnsupportedComponentParameter {
            component: c.to_string(),
            param: param.as_str().to_string(),
        });
    }
    let path = if msg.path().is_empty() {
        "/"
    } else {
        msg.path()
    };
    let query = msg.query().map(|q| format!("?{q}")).unwrap_or_default();
    Ok(match c.name() {
        "@method" => msg.method().to_string(),
        "@target-uri" => format!(
            "{}://{}{path}{query}",
            msg.scheme().to_ascii_lowercase(),
            msg.authority()
        ),
        "@authority" => authority(msg.scheme(), msg.authority()),
        "@scheme" => msg.scheme().to_ascii_lowercase(),
        "@request-target" => format!("{path}{query}"),
        "@path" => path.to_string(),
        "@query" => format!("?{}", msg.query().unwrap_or("")),
        "@query-param" => query_param(msg, c)?,
        other => return Err(Error::UnknownComponent(other.to_string())),
    })
}

/// `@authority`: the host in lowercase, with the port unless it is the scheme's default
/// (RFC 9421 2.2.3).
fn authority(scheme: &str, raw: &str) -> String {
    let raw = raw.trim().to_ascii_lowercase();
    let port_at = match raw.rfind(']') {
        Some(end) => raw[end..].find(':').map(|i| end + i),
        None => raw.rfind(':'),
    };
    let Some(colon) = port_at else {
        return raw;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return raw,
    };
    if &raw[colon + 1..] == default {
        raw[..colon].to_string()
    } else {
        raw
    }
}

fn query_param<M: Message + ?Sized>(msg: &M, c: &ComponentId) -> Result<String, Error> {
    let name = c.param_str("name").ok_or_else(|| Error::InvalidComponent {
        component: c.to_string(),
        reason: "@query-param needs a name parameter that is a string".into(),
    })?;
    let wanted = form_decode(name);
    let pairs = form_pairs(msg.query().unwrap_or(""));
    let mut values = pairs.iter().filter(|(n, _)| *n == wanted).map(|(_, v)| v);
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(form_encode(value)),
        (None, _) => Err(Error::MissingQueryParam(name.to_string())),
        (Some(_), Some(_)) => Err(Error::RepeatedQueryParam(name.to_string())),
    }
}

fn field_value<M: Message + ?Sized>(msg: &M, c: &ComponentId) -> Result<String, Error> {
    let unsupported = |param: &str| Error::UnsupportedComponentParameter {
        component: c.to_string(),
        param: param.to_string(),
    };
    let mut sf = false;
    let mut key = None;
    for (param, value) in c.params() {
        match (param.as_str(), value) {
            ("sf", BareItem::Boolean(true)) => sf = true,
            ("key", BareItem::String(k)) => key = Some(k.as_str()),
            (other, _) => return Err(unsupported(other)),
        }
    }
    let lines = msg.header_values(c.name());
    if lines.is_empty() {
        return Err(Error::MissingField(c.name().to_string()));
    }
    let combined = lines
        .iter()
        .map(|v| v.trim_matches([' ', '\t']))
        .collect::<Vec<_>>()
        .join(", ");
    if key.is_none() && !sf {
        return Ok(combined);
    }
    if key.is_none() && !DICTIONARY_FIELDS.contains(&c.name()) {
        return Err(Error::InvalidComponent {
            component: c.to_string(),
            reason: format!(
                "\"sf\" is only supported on fields known to be Dictionaries ({})",
                DICTIONARY_FIELDS.join(", ")
            ),
        });
    }
    let dict: Dictionary =
        Parser::new(&combined)
            .parse()
            .map_err(|e: sfv::Error| Error::InvalidValue {
                component: c.to_string(),
                reason: format!("the field is not a structured-field Dictionary ({e})"),
            })?;
    match key {
        None => Ok(dict.serialize().unwrap_or_default()),
        Some(k) => match dict.get(k) {
            Some(ListEntry::Item(item)) => Ok(item.serialize()),
            Some(inner @ ListEntry::InnerList(_)) => {
                let list: List = vec![inner.clone()];
                Ok(list.serialize().unwrap_or_default())
            }
            None => Err(Error::InvalidValue {
                component: c.to_string(),
                reason: format!("the Dictionary has no member {k:?}"),
            }),
        },
    }
}

/// Refuses a value that is not printable ASCII (tabs allowed inside field values), so that no
/// value can add a line to the signature base or smuggle bytes the signer did not see.
fn check_one_line(c: &ComponentId, value: &str) -> Result<(), Error> {
    let derived = c.name().starts_with('@');
    let bad = value
        .bytes()
        .find(|&b| !((0x20..=0x7e).contains(&b) || (b == b'\t' && !derived)));
    match bad {
        None => Ok(()),
        Some(b) => Err(Error::InvalidValue {
            component: c.to_string(),
            reason: format!("it contains the byte 0x{b:02x}; only printable ASCII can be signed"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn authority_is_lowercase_without_the_default_port() {
        assert_eq!(authority("https", "WWW.Example.com:443"), "www.example.com");
        assert_eq!(authority("http", "example.com:80"), "example.com");
        assert_eq!(authority("http", "example.com:443"), "example.com:443");
        assert_eq!(authority("HTTP", "127.0.0.1:8420"), "127.0.0.1:8420");
        assert_eq!(authority("http", "[::1]:80"), "[::1]");
        assert_eq!(authority("http", "[::1]"), "[::1]");
        assert_eq!(authority("https", "[::1]:8443"), "[::1]:8443");
        assert_eq!(authority("http", ":"), ":");
    }
}
