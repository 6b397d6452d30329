//! The signature base (RFC 9421 section 2.5): what is actually signed.

use crate::derive::component_value;
use crate::{Error, Message, SignatureInput};

/// The signature base of `input` over `msg`: one line `"<identifier>": <value>` per covered
/// component, in the order listed, then `"@signature-params": <the inner list as received>`,
/// lines joined by `\n` with no trailing newline.
///
/// The base is rebuilt from what the signer listed, not from what this verifier expects, so
/// any conforming signer's choice of components, parameters and order verifies; the caller's
/// policy then decides whether what was signed is enough.
pub fn signature_base<M: Message + ?Sized>(
    msg: &M,
    input: &SignatureInput,
) -> Result<String, Error> {
    let mut base = String::new();
    for c in input.components() {
        let value = component_value(msg, c)?;
        base.push_str(&c.to_string());
        base.push_str(": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(&input.signature_params());
    Ok(base)
}
