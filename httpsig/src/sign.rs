//! The signer: `Signature-Input` and `Signature` values for a request.

use crate::{signature_base, Error, Message, SignatureInput};
use ed25519_dalek::{Signer as _, SigningKey};
use sfv::{DictSerializer, KeyRef};

/// The two header values that carry a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `Signature-Input`, e.g. `sig1=("@method" "@path");created=1618884473;keyid="k"`.
    pub signature_input: String,
    /// `Signature`, e.g. `sig1=:BASE64:`.
    pub signature: String,
}

/// Signs `msg` with `key`: the components and parameters of `input`, under its label.
///
/// Every covered field must be present in `msg` (sign `content-digest` after setting it, or
/// use [`crate::oar::sign_request`], which computes it).
///
/// ```
/// use oar_httpsig::{sign, verify, ComponentId, Request, SignatureInput, SignatureParams, SigningKey};
/// let key = SigningKey::from_bytes(&[7; 32]);
/// let mut req = Request::new("GET", "https://example.com/x?y=1").unwrap();
/// let params = SignatureParams { created: Some(1_700_000_000), keyid: Some("k".into()), ..Default::default() };
/// let input = SignatureInput::new("sig1", vec![ComponentId::parse("@method").unwrap()], params).unwrap();
/// let headers = sign(&req, &input, &key).unwrap();
/// req.set_header("signature-input", &headers.signature_input);
/// req.set_header("signature", &headers.signature);
/// let public = key.verifying_key().to_bytes();
/// assert_eq!(verify(&req, "sig1", &|_: &str| Some(public)).unwrap().key, public);
/// ```
pub fn sign<M: Message + ?Sized>(
    msg: &M,
    input: &SignatureInput,
    key: &SigningKey,
) -> Result<SignatureHeaders, Error> {
    let base = signature_base(msg, input)?;
    let signature = key.sign(base.as_bytes()).to_bytes();
    let label = KeyRef::from_str(input.label())
        .map_err(|e| Error::Signing(format!("invalid label ({e})")))?;
    let mut ser = DictSerializer::new();
    let _ = ser.bare_item(label, &signature[..]);
    Ok(SignatureHeaders {
        signature_input: input.header_value(),
        signature: ser.finish().unwrap_or_default(),
    })
}
