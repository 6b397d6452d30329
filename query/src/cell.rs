//! Cell codes for key selection, engine-free: a row's key combination as one text, and back.

use super::KeySpec;
use oar_guest::Value;

/// Per key, `<chars>:<text>` (the text is a public key's position in its domain, or a selected
/// key's value); the length prefixes make the code injective.
pub(crate) fn encode(texts: &[&str]) -> String {
    let mut code = String::new();
    for t in texts {
        code.push_str(&t.chars().count().to_string());
        code.push(':');
        code.push_str(t);
    }
    code
}

/// The keys of a cell code made by [`encode`], or None if it is not one.
pub(crate) fn decode(code: &str, keys: &[KeySpec]) -> Option<Vec<Value>> {
    let mut rest = code;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let (len, tail) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let end = tail.char_indices().nth(len).map_or(tail.len(), |(i, _)| i);
        let (text, tail) = tail.split_at(end);
        rest = tail;
        out.push(match k.selected {
            Some(oar_guest::ColumnType::Int) => Value::Int(text.parse().ok()?),
            Some(_) => Value::Str(text.to_string()),
            None => k.domain.get(text.parse::<usize>().ok()?)?.clone(),
        });
    }
    rest.is_empty().then_some(out)
}

/// Orders key tuples for release: integers by value, everything else by its text.
pub(crate) fn compare_keys(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Value::Int(x), Value::Int(y)) => x.cmp(y),
            _ => x.key_text().cmp(&y.key_text()),
        };
        if o.is_ne() {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}
