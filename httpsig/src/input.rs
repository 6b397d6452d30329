//! `Signature-Input` and `Signature` (RFC 9421 section 4): parsed as structured-field
//! Dictionaries keyed by label; each label's covered components and signature parameters.

use crate::{ComponentId, Error, Message};
use sfv::{BareItem, Dictionary, FieldType, InnerList, Item, KeyRef, List, ListEntry, Parser};

const CREATED: &KeyRef = KeyRef::constant("created");
const EXPIRES: &KeyRef = KeyRef::constant("expires");
const KEYID: &KeyRef = KeyRef::constant("keyid");
const ALG: &KeyRef = KeyRef::constant("alg");
const NONCE: &KeyRef = KeyRef::constant("nonce");
const TAG: &KeyRef = KeyRef::constant("tag");

/// The signature parameters this crate understands (RFC 9421 section 2.3).
///
/// A received signature may carry other parameters; they stay in
/// [`SignatureInput::signature_params`] (they were signed) but are not interpreted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureParams {
    /// `created`: when the signature was made, Unix seconds.
    pub created: Option<i64>,
    /// `expires`: when the signature stops being valid, Unix seconds.
    pub expires: Option<i64>,
    /// `keyid`: which key made the signature.
    pub keyid: Option<String>,
    /// `alg`: the signature algorithm (only `ed25519` is supported).
    pub alg: Option<String>,
    /// `nonce`: a value unique to this signature, for replay detection.
    pub nonce: Option<String>,
    /// `tag`: the application the signature is meant for.
    pub tag: Option<String>,
}

/// One label's entry in `Signature-Input`: its covered components in order, and its
/// parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureInput {
    label: String,
    components: Vec<ComponentId>,
    params: SignatureParams,
    list: InnerList,
}

impl SignatureInput {
    /// An input to sign: `components` in order, then the parameters that are set, in the order
    /// `created`, `expires`, `keyid`, `alg`, `nonce`, `tag`.
    pub fn new(
        label: &str,
        components: Vec<ComponentId>,
        params: SignatureParams,
    ) -> Result<SignatureInput, Error> {
        let signing = |reason: String| Error::Signing(reason);
        KeyRef::from_str(label)
            .map_err(|e| signing(format!("the label {label:?} is not a valid key ({e})")))?;
        let mut list = InnerList::new(components.iter().map(|c| c.item().clone()).collect());
        for (name, value) in [(CREATED, params.created), (EXPIRES, params.expires)] {
            if let Some(v) = value {
                let v = sfv::Integer::try_from(v)
                    .map_err(|_| signing(format!("{} {v} is out of range", name.as_str())))?;
                list.params.insert(name.to_owned(), BareItem::Integer(v));
            }
        }
        for (name, value) in [
            (KEYID, &params.keyid),
            (ALG, &params.alg),
            (NONCE, &params.nonce),
            (TAG, &params.tag),
        ] {
            if let Some(v) = value {
                let s = sfv::String::from_string(v.clone()).map_err(|(e, _)| {
                    signing(format!("{} must be printable ASCII ({e})", name.as_str()))
                })?;
                list.params.insert(name.to_owned(), BareItem::String(s));
            }
        }
        check_unique(&components)?;
        Ok(SignatureInput {
            label: label.to_string(),
            components,
            params,
            list,
        })
    }

    /// The member `label` of a `Signature-Input` header value.
    ///
    /// ```
    /// use oar_httpsig::SignatureInput;
    /// let input = SignatureInput::parse(r#"sig1=("@method" "@path");created=1618884473;keyid="k""#, "sig1").unwrap();
    /// assert_eq!((input.components().len(), input.params().created), (2, Some(1618884473)));
    /// ```
    pub fn parse(header: &str, label: &str) -> Result<SignatureInput, Error> {
        let dict = parse_dictionary(header, "Signature-Input")?;
        let entry = dict
            .get(label)
            .ok_or_else(|| Error::UnknownLabel(label.to_string()))?;
        SignatureInput::from_entry(label, entry)
    }

    /// A received label's member: an inner list of component identifiers with parameters.
    fn from_entry(label: &str, entry: &ListEntry) -> Result<SignatureInput, Error> {
        let malformed = |reason: String| Error::MalformedSignatureInput {
            label: label.to_string(),
            reason,
        };
        let ListEntry::InnerList(list) = entry else {
            return Err(malformed(
                "expected an inner list of covered components, e.g. (\"@method\" \"@path\");created=...".into(),
            ));
        };
        let components = list
            .items
            .iter()
            .map(|item| {
                ComponentId::from_item(item.clone()).map_err(|reason| Error::InvalidComponent {
                    component: item.serialize(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_unique(&components)?;
        let mut params = SignatureParams::default();
        for (name, value) in &list.params {
            match name.as_str() {
                "created" => params.created = Some(integer("created", value)?),
                "expires" => params.expires = Some(integer("expires", value)?),
                "keyid" => params.keyid = Some(string("keyid", value)?),
                "alg" => params.alg = Some(string("alg", value)?),
                "nonce" => params.nonce = Some(string("nonce", value)?),
                "tag" => params.tag = Some(string("tag", value)?),
                _ => {}
            }
        }
        Ok(SignatureInput {
            label: label.to_string(),
            components,
            params,
            list: list.clone(),
        })
    }

    /// The label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The covered components, in the order they are signed.
    pub fn components(&self) -> &[ComponentId] {
        &self.components
    }

    /// The parameters this crate understands.
    pub fn params(&self) -> &SignatureParams {
        &self.params
    }

    /// Whether `name` is covered whole (without parameters such as `key`).
    pub fn covers(&self, name: &str) -> bool {
        self.components
            .iter()
            .any(|c| c.name() == name && !c.has_params())
    }

    /// The value of `@signature-params`: the inner list with all its parameters, serialized
    /// as received (RFC 9421 section 2.3), e.g. `("@method" "@path");created=1618884473`.
    pub fn signature_params(&self) -> String {
        let list: List = vec![ListEntry::InnerList(self.list.clone())];
        list.serialize().unwrap_or_default()
    }

    /// This input as a `Signature-Input` header value: `label=(...);params`.
    pub fn header_value(&self) -> String {
        format!("{}={}", self.label, self.signature_params())
    }
}

fn check_unique(components: &[ComponentId]) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::with_capacity(components.len());
    match components.iter().find(|c| !seen.insert(c.identity())) {
        Some(c) => Err(Error::DuplicateComponent(c.to_string())),
        None => Ok(()),
    }
}

fn integer(param: &'static str, value: &BareItem) -> Result<i64, Error> {
    value
        .as_integer()
        .map(i64::from)
        .ok_or_else(|| Error::InvalidParameter {
            param,
            reason: "must be an integer (Unix seconds)".into(),
        })
}

fn string(param: &'static str, value: &BareItem) -> Result<String, Error> {
    value
        .as_string()
        .map(|s| s.as_str().to_string())
        .ok_or_else(|| Error::InvalidParameter {
            param,
            reason: "must be a quoted string".into(),
        })
}

/// The most labels [`SignatureSet::from_message`] accepts in one `Signature-Input`.
pub const MAX_LABELS: usize = 8;

/// A request's `Signature-Input` and `Signature` headers, parsed as Dictionaries.
///
/// Parsing the headers fails only when a header is absent or not a Dictionary; a label whose
/// member is malformed fails when that label is read, so other labels can still be checked.
#[derive(Debug, Clone)]
pub struct SignatureSet {
    inputs: Dictionary,
    signatures: Dictionary,
}

impl SignatureSet {
    /// Parses the request's `Signature-Input` and `Signature` (every line of each, combined).
    pub fn from_message<M: Message + ?Sized>(msg: &M) -> Result<SignatureSet, Error> {
        let inputs = dictionary(msg, "signature-input", "Signature-Input")?;
        let signatures = dictionary(msg, "signature", "Signature")?;
        if inputs.len() > MAX_LABELS {
            return Err(Error::TooManySignatures {
                count: inputs.len(),
                max: MAX_LABELS,
            });
        }
        Ok(SignatureSet { inputs, signatures })
    }

    /// The labels in `Signature-Input`, in order.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.inputs.keys().map(|k| k.as_str())
    }

    /// The covered components and parameters of `label`.
    pub fn input(&self, label: &str) -> Result<SignatureInput, Error> {
        let entry = self
            .inputs
            .get(label)
            .ok_or_else(|| Error::UnknownLabel(label.to_string()))?;
        SignatureInput::from_entry(label, entry)
    }

    /// The signature bytes of `label` (an ed25519 signature is 64 bytes).
    pub fn signature(&self, label: &str) -> Result<[u8; 64], Error> {
        let malformed = |reason: &str| Error::MalformedSignature {
            label: label.to_string(),
            reason: reason.to_string(),
        };
        let entry = self
            .signatures
            .get(label)
            .ok_or_else(|| malformed("there is no member with this label"))?;
        let ListEntry::Item(Item { bare_item, .. }) = entry else {
            return Err(malformed(
                "the member is an inner list, not a byte sequence",
            ));
        };
        let bytes = bare_item
            .as_byte_sequence()
            .ok_or_else(|| malformed("the member is not a byte sequence (:BASE64:)"))?;
        <[u8; 64]>::try_from(bytes).map_err(|_| malformed("an ed25519 signature is 64 bytes"))
    }
}

fn dictionary<M: Message + ?Sized>(
    msg: &M,
    name: &str,
    header: &'static str,
) -> Result<Dictionary, Error> {
    let lines = msg.header_values(name);
    if lines.is_empty() {
        return Err(Error::MissingHeader(header));
    }
    parse_dictionary(&lines.join(", "), header)
}

fn parse_dictionary(value: &str, header: &'static str) -> Result<Dictionary, Error> {
    let dict: Dictionary =
        Parser::new(value)
            .parse()
            .map_err(|e: sfv::Error| Error::MalformedHeader {
                header,
                expected: "Dictionary",
                reason: e.to_string(),
            })?;
    if dict.is_empty() {
        return Err(Error::MalformedHeader {
            header,
            expected: "Dictionary",
            reason: "it is empty".into(),
        });
    }
    Ok(dict)
}
