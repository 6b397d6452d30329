//! HTTP Message Signatures (RFC 9421) with ed25519, and `Content-Digest` (RFC 9530).
//!
//! Two layers:
//! - a generic verifier and signer: [`SignatureSet`] parses `Signature-Input` and `Signature`
//!   as structured-field Dictionaries; [`signature_base`] rebuilds the base from the
//!   components and parameters the signer listed; [`verify`] checks one label's ed25519
//!   signature; [`sign`] produces the two headers; [`content_digest`] and [`ContentDigest`]
//!   make and check body digests. Any conforming client (whatever its label, component order,
//!   extra components such as `date`, or extra parameters such as `expires`) verifies.
//! - OAR's policy in [`oar`]: which components and parameters a request must sign, the time
//!   window, and the split [`oar::authenticate_head`] → [`oar::Pending::check_body`] that lets
//!   a server authenticate a request before reading its body.
//!
//! The request is seen through the [`Message`] trait, which a server implements over its own
//! request type; [`Request`] is a small owned implementation.
//!
//! Nothing here panics on any input: every header is untrusted, and every refusal is an
//! [`Error`] that says what was wrong.
//!
//! ```
//! use oar_httpsig::{oar, Request, SigningKey};
//! let key = SigningKey::from_bytes(&[1; 32]);
//! let body = br#"{"module_hash":"abc"}"#;
//! let mut req = Request::new("POST", "http://127.0.0.1:8420/v1/runs").unwrap();
//! let signed = oar::sign_request(&req, body, &key, 1_700_000_000, "n-1").unwrap();
//! req.set_header("content-digest", &signed.content_digest);
//! req.set_header("signature-input", &signed.signature_input);
//! req.set_header("signature", &signed.signature);
//!
//! let public = key.verifying_key().to_bytes();
//! let keys = |keyid: &str| oar::key_from_keyid(keyid).filter(|k| *k == public);
//! let pending = oar::authenticate_head(&req, 1_700_000_010, 300, &keys).unwrap();
//! assert_eq!(pending.nonce(), "n-1"); // refuse it if already seen, then read the body
//! let verified = pending.check_body(body).unwrap();
//! assert_eq!(verified.key, public);
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod base;
mod component;
mod derive;
mod digest;
mod error;
pub mod fuzz;
mod input;
mod message;
pub mod oar;
mod query;
mod sign;
mod verify;

pub use base::signature_base;
pub use component::ComponentId;
pub use digest::{content_digest, verify_content_digest, ContentDigest};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::Error;
pub use input::{SignatureInput, SignatureParams, SignatureSet, MAX_LABELS};
pub use message::{Message, Request};
pub use sign::{sign, SignatureHeaders};
pub use verify::{verify, verify_input, KeyResolver, VerifiedSignature};
