//! Component identifiers (RFC 9421 section 2): a lowercase name, as a structured-field String,
//! with optional parameters, e.g. `"@query-param";name="Pet"` or `"content-digest"`.

use crate::Error;
use sfv::{BareItem, FieldType, Item, Parameters, Parser};
use std::fmt;

/// One covered component: its name and parameters, exactly as listed in `Signature-Input`.
///
/// ```
/// use oar_httpsig::ComponentId;
/// let c = ComponentId::parse(r#""@query-param";name="Pet""#).unwrap();
/// assert_eq!((c.name(), c.param_str("name")), ("@query-param", Some("Pet")));
/// assert_eq!(c.to_string(), r#""@query-param";name="Pet""#);
/// assert_eq!(ComponentId::parse("@method").unwrap().to_string(), r#""@method""#);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentId {
    item: Item,
    name: String,
}

impl ComponentId {
    /// Parses an identifier: either a bare name (`@method`, `content-type`) or a serialized
    /// structured-field String with parameters (`"@query-param";name="Pet"`).
    pub fn parse(text: &str) -> Result<ComponentId, Error> {
        let invalid = |reason: String| Error::InvalidComponent {
            component: text.to_string(),
            reason,
        };
        let item = if text.starts_with('"') {
            Parser::new(text)
                .parse::<Item>()
                .map_err(|e| invalid(e.to_string()))?
        } else {
            let name = sfv::StringRef::from_str(text).map_err(|e| invalid(e.to_string()))?;
            Item::new(name)
        };
        ComponentId::from_item(item).map_err(invalid)
    }

    /// A component from a parsed inner-list item; the reason when it is not a valid identifier.
    pub(crate) fn from_item(item: Item) -> Result<ComponentId, String> {
        let name = match &item.bare_item {
            BareItem::String(s) => s.as_str().to_string(),
            _ => return Err("a component identifier must be a quoted string".into()),
        };
        if name.is_empty() {
            return Err("the component name is empty".into());
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("component names are lowercase (RFC 9421 2.1)".into());
        }
        if name == "@signature-params" {
            return Err("@signature-params cannot be a covered component".into());
        }
        Ok(ComponentId { item, name })
    }

    /// The component's name (`@method`, `content-digest`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the identifier has any parameter.
    pub fn has_params(&self) -> bool {
        !self.item.params.is_empty()
    }

    /// The value of the parameter `key` when it is a String.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.item
            .params
            .get(key)
            .and_then(|v| v.as_string())
            .map(|s| s.as_str())
    }

    pub(crate) fn params(&self) -> &Parameters {
        &self.item.params
    }

    pub(crate) fn item(&self) -> &Item {
        &self.item
    }

    /// What makes two identifiers the same component: the name and the set of parameters,
    /// whatever their order (RFC 9421 section 2).
    pub(crate) fn identity(&self) -> (String, Vec<String>) {
        let mut params: Vec<String> = self
            .item
            .params
            .iter()
            .map(|(k, v)| Item::new(v.clone()).serialize() + "=" + k.as_str())
            .collect();
        params.sort();
        (self.name.clone(), params)
    }
}

impl fmt::Display for ComponentId {
    /// The serialized identifier, as it starts a line of the signature base.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.item.serialize())
    }
}
