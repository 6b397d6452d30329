//! Why a signature, a digest or a request was refused.
//!
//! Every message says what was wrong and, where the sender can fix it, what to do. Messages
//! quote labels, component names and parameter names (which the signer chose), never header
//! values beyond what is needed to find the problem.

/// Why a signature, a digest or a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A header the check needs is absent.
    #[error("the request has no {0} header; sign it as RFC 9421 describes (Signature-Input, Signature, Content-Digest)")]
    MissingHeader(&'static str),
    /// A header is not the structured field it must be.
    #[error("the {header} header is not a valid structured-field {expected} ({reason}); send it as RFC 9421 / RFC 8941 define")]
    MalformedHeader {
        /// The header's name.
        header: &'static str,
        /// The structured type it must have (`Dictionary`, ...).
        expected: &'static str,
        /// What the parser reported.
        reason: String,
    },
    /// `Signature-Input` has too many labels to try.
    #[error("Signature-Input has {count} signatures, more than the {max} this server checks; send one signature per request")]
    TooManySignatures {
        /// How many labels were sent.
        count: usize,
        /// The most that are checked.
        max: usize,
    },
    /// `Signature-Input` has no signature with the wanted label.
    #[error("Signature-Input has no signature labelled {0:?}")]
    UnknownLabel(String),
    /// A label's member in `Signature-Input` is not a list of covered components.
    #[error("Signature-Input member {label:?} is malformed: {reason}")]
    MalformedSignatureInput {
        /// The label.
        label: String,
        /// What is wrong.
        reason: String,
    },
    /// A label in `Signature-Input` has no usable value in `Signature`.
    #[error("the Signature header has no valid value for label {label:?}: {reason}; send Signature as label=:BASE64:, with the same label as Signature-Input")]
    MalformedSignature {
        /// The label.
        label: String,
        /// What is wrong.
        reason: String,
    },
    /// A component identifier is not valid.
    #[error("invalid component identifier {component}: {reason}")]
    InvalidComponent {
        /// The identifier as sent.
        component: String,
        /// What is wrong.
        reason: String,
    },
    /// The same component is covered twice.
    #[error("the component {0} is covered more than once; list each component once")]
    DuplicateComponent(String),
    /// A derived component this verifier does not know.
    #[error("unknown derived component {0}; supported: @method, @target-uri, @authority, @scheme, @request-target, @path, @query, @query-param")]
    UnknownComponent(String),
    /// A component parameter this verifier does not support.
    #[error("the parameter {param:?} on component {component} is not supported (supported: \"sf\" and \"key\" on Dictionary fields, \"name\" on @query-param)")]
    UnsupportedComponentParameter {
        /// The component identifier.
        component: String,
        /// The parameter's name.
        param: String,
    },
    /// A covered header field is absent from the request.
    #[error("the signature covers the field {0:?} but the request has no such header")]
    MissingField(String),
    /// A covered query parameter is absent from the request.
    #[error("the signature covers @query-param {0:?} but the query has no such parameter")]
    MissingQueryParam(String),
    /// A covered query parameter occurs more than once.
    #[error("the signature covers @query-param {0:?} but the query has it more than once (RFC 9421 2.2.8); sign @query instead")]
    RepeatedQueryParam(String),
    /// A covered value cannot be put in a signature base.
    #[error("the value of {component} cannot be signed: {reason}")]
    InvalidValue {
        /// The component identifier.
        component: String,
        /// What is wrong.
        reason: String,
    },
    /// A signature parameter has the wrong type or value.
    #[error("the signature parameter {param:?} is invalid: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        param: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A signature parameter the check requires is absent.
    #[error("the signature has no {0:?} parameter; add it to Signature-Input")]
    MissingParameter(&'static str),
    /// The signature's algorithm is not ed25519.
    #[error("the signature algorithm {0:?} is not supported; sign with alg=\"ed25519\"")]
    Algorithm(String),
    /// No key is known for the signature's `keyid`.
    #[error("no key is registered for keyid {0:?}; keyid must be the hex of a registered ed25519 public key")]
    UnknownKey(String),
    /// The key for the `keyid` is not a valid ed25519 public key.
    #[error("the key for keyid {0:?} is not a valid ed25519 public key")]
    InvalidKey(String),
    /// The key for the `keyid` is a weak (small-order) ed25519 key.
    #[error("the key for keyid {0:?} is a weak (small-order) ed25519 key and is never accepted")]
    WeakKey(String),
    /// The signature does not verify over the signature base.
    #[error("the signature labelled {0:?} does not verify; the signer must sign exactly the components and parameters it lists, as this request was received (method, authority, path, query, headers)")]
    BadSignature(String),
    /// The signature does not cover a component the policy requires.
    #[error("the signature must cover {0}; OAR requires \"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\"")]
    MissingComponent(&'static str),
    /// `expires` is not later than now.
    #[error("the signature expired at {expires} (now {now}); sign the request again")]
    Expired {
        /// `expires`, Unix seconds.
        expires: i64,
        /// The server's time, Unix seconds.
        now: i64,
    },
    /// `created` is too far in the past.
    #[error("the signature was created at {created}, more than {window} s before now ({now}); sign the request again (and check the client's clock)")]
    Stale {
        /// `created`, Unix seconds.
        created: i64,
        /// The server's time, Unix seconds.
        now: i64,
        /// The accepted window, seconds.
        window: i64,
    },
    /// `created` is too far in the future.
    #[error("the signature claims to be created at {created}, more than {window} s after now ({now}); check the client's clock")]
    FromTheFuture {
        /// `created`, Unix seconds.
        created: i64,
        /// The server's time, Unix seconds.
        now: i64,
        /// The accepted window, seconds.
        window: i64,
    },
    /// `Content-Digest` has no algorithm this verifier knows.
    #[error(
        "Content-Digest has no sha-256 or sha-512 member; send Content-Digest: sha-256=:BASE64:"
    )]
    DigestAlgorithm,
    /// A `Content-Digest` member has the wrong length or type.
    #[error("Content-Digest member {0:?} is not a byte sequence of the algorithm's length")]
    MalformedDigest(String),
    /// The body does not match `Content-Digest`.
    #[error("the body does not match Content-Digest ({0}); send the digest of the exact bytes of the body")]
    DigestMismatch(String),
    /// The signer was given something it cannot sign.
    #[error("cannot sign: {0}")]
    Signing(String),
    /// A URL given to build a request does not parse.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}
