//! OAR's policy: what a request must sign, the time window, the authority binding, the body
//! digest, and which error is reported.

use oar_httpsig::oar::{self, authenticate_head, keyid_of, sign_request, verify_request, Verified};
use oar_httpsig::{
    content_digest, sign, ComponentId, ContentDigest, Error, Message, Request, SignatureInput,
    SignatureParams, SigningKey,
};

const NOW: i64 = 1_700_000_000;
const WINDOW: i64 = 300;
const URL: &str = "http://holder-a.example:8420/v1/runs?x=1";
const BODY: &[u8] = br#"{"module_hash":"abc","params":{}}"#;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn keys(keyid: &str) -> Option<[u8; 32]> {
    let public = key().verifying_key().to_bytes();
    oar::key_from_keyid(keyid).filter(|k| *k == public)
}

fn oar_params() -> SignatureParams {
    SignatureParams {
        created: Some(NOW),
        keyid: Some(keyid_of(&key().verifying_key())),
        alg: Some("ed25519".into()),
        nonce: Some("nonce-1".into()),
        ..SignatureParams::default()
    }
}

/// A request to `url` signed by the generic signer with these components, params and label.
fn signed_with(url: &str, label: &str, components: &[&str], params: SignatureParams) -> Request {
    let mut req = Request::new("POST", url)
        .unwrap()
        .with_header("Date", "Tue, 14 Nov 2023 22:13:20 GMT")
        .with_header("Content-Type", "application/json")
        .with_header("Content-Digest", &content_digest(BODY));
    let components = components
        .iter()
        .map(|c| ComponentId::parse(c).unwrap())
        .collect();
    let input = SignatureInput::new(label, components, params).unwrap();
    let headers = sign(&req, &input, &key()).unwrap();
    req.set_header("signature-input", &headers.signature_input);
    req.set_header("signature", &headers.signature);
    req
}

/// A request signed exactly as OAR's client signs it.
fn oar_request(url: &str, created: i64, nonce: &str) -> Request {
    let mut req = Request::new("POST", url).unwrap();
    let signed = sign_request(&req, BODY, &key(), created, nonce).unwrap();
    req.set_header("content-digest", &signed.content_digest);
    req.set_header("signature-input", &signed.signature_input);
    req.set_header("signature", &signed.signature);
    req
}

fn check(req: &Request) -> Result<Verified, Error> {
    verify_request(req, BODY, NOW, WINDOW, &keys)
}

#[test]
fn oar_client_signature_verifies_and_returns_the_signer_and_nonce() {
    let req = oar_request(URL, NOW - 10, "n-1");
    let v = check(&req).unwrap();
    assert_eq!(v.key, key().verifying_key().to_bytes());
    assert_eq!(v.keyid, keyid_of(&key().verifying_key()));
    assert_eq!(
        (v.created, v.expires, v.nonce.as_str(), v.label.as_str()),
        (NOW - 10, None, "n-1", "oar")
    );
    assert!(req.header_values("signature-input")[0].starts_with(
        r#"oar=("@method" "@authority" "@path" "@query" "content-digest");created=1699999990;keyid=""#
    ));
    assert!(req.header_values("signature-input")[0].ends_with(r#"";alg="ed25519";nonce="n-1""#));
}

#[test]
fn the_head_is_authenticated_before_the_body_is_read() {
    let req = oar_request(URL, NOW, "n-2");
    let pending = authenticate_head(&req, NOW, WINDOW, &keys).unwrap();
    assert_eq!((pending.nonce(), pending.label()), ("n-2", "oar"));
    assert_eq!(pending.key(), &key().verifying_key().to_bytes());
    assert_eq!(
        pending.clone().check_body(b"{}"),
        Err(Error::DigestMismatch("sha-256".into()))
    );
    assert_eq!(pending.check_body(BODY).unwrap().nonce, "n-2");
}

#[test]
fn every_required_component_is_required() {
    let all = oar::COMPONENTS;
    for missing in all {
        let fewer: Vec<&str> = all.iter().copied().filter(|c| *c != missing).collect();
        let req = signed_with(URL, "oar", &fewer, oar_params());
        assert_eq!(
            check(&req),
            Err(Error::MissingComponent(missing)),
            "{missing}"
        );
    }
    // Covering only a member of the digest is not covering the digest.
    let mut member: Vec<&str> = all[..4].to_vec();
    member.push(r#""content-digest";key="sha-256""#);
    let req = signed_with(URL, "oar", &member, oar_params());
    assert_eq!(check(&req), Err(Error::MissingComponent("content-digest")));
}

/// A parameter's name and how to remove it.
type Removal = (&'static str, fn(&mut SignatureParams));

#[test]
fn every_required_parameter_is_required() {
    let cases: [Removal; 4] = [
        ("created", |p| p.created = None),
        ("keyid", |p| p.keyid = None),
        ("alg", |p| p.alg = None),
        ("nonce", |p| p.nonce = None),
    ];
    for (name, remove) in cases {
        let mut params = oar_params();
        remove(&mut params);
        let req = signed_with(URL, "oar", &oar::COMPONENTS, params);
        assert_eq!(check(&req), Err(Error::MissingParameter(name)), "{name}");
    }
    let mut params = oar_params();
    params.alg = Some("rsa-pss-sha512".into());
    let req = signed_with(URL, "oar", &oar::COMPONENTS, params);
    assert_eq!(check(&req), Err(Error::Algorithm("rsa-pss-sha512".into())));
    let mut params = oar_params();
    params.nonce = Some(String::new());
    let req = signed_with(URL, "oar", &oar::COMPONENTS, params);
    assert!(matches!(
        check(&req),
        Err(Error::InvalidParameter { param: "nonce", .. })
    ));
}

#[test]
fn an_expired_signature_is_refused() {
    let mut params = oar_params();
    params.created = Some(NOW - 60);
    params.expires = Some(NOW);
    let req = signed_with(URL, "oar", &oar::COMPONENTS, params);
    assert_eq!(
        check(&req),
        Err(Error::Expired {
            expires: NOW,
            now: NOW
        })
    );
    let mut params = oar_params();
    params.expires = Some(NOW);
    let req = signed_with(URL, "oar", &oar::COMPONENTS, params);
    assert!(matches!(
        check(&req),
        Err(Error::InvalidParameter {
            param: "expires",
            ..
        })
    ));
}

#[test]
fn created_outside_the_window_is_refused() {
    let old = oar_request(URL, NOW - WINDOW - 1, "n");
    assert_eq!(
        check(&old),
        Err(Error::Stale {
            created: NOW - WINDOW - 1,
            now: NOW,
            window: WINDOW
        })
    );
    let future = oar_request(URL, NOW + WINDOW + 1, "n");
    assert!(matches!(check(&future), Err(Error::FromTheFuture { .. })));
    assert!(check(&oar_request(URL, NOW - WINDOW, "n")).is_ok());
    assert!(check(&oar_request(URL, NOW + WINDOW, "n")).is_ok());
}

#[test]
fn extra_components_extra_parameters_other_orders_and_any_label_are_accepted() {
    let mut params = oar_params();
    params.expires = Some(NOW + 300);
    params.tag = Some("oar-api".into());
    let components = [
        "date",
        "content-digest",
        "@query",
        "content-type",
        "@path",
        "@authority",
        "@method",
        "@target-uri",
    ];
    let req = signed_with(URL, "sig1", &components, params);
    let v = check(&req).unwrap();
    assert_eq!((v.label.as_str(), v.expires), ("sig1", Some(NOW + 300)));
}

/// `second` carrying both its own signature and `first`'s (listed first).
fn with_both(first: &Request, second: &Request) -> Request {
    let mut both = second.clone();
    for header in ["signature-input", "signature"] {
        both.set_header(
            header,
            &format!(
                "{}, {}",
                first.header_values(header)[0],
                second.header_values(header)[0]
            ),
        );
    }
    both
}

#[test]
fn the_first_acceptable_label_wins_and_the_furthest_error_is_reported() {
    let good = oar_request(URL, NOW, "good");
    let weak = signed_with(URL, "pyhms", &["@method"], oar_params());
    assert_eq!(check(&with_both(&weak, &good)).unwrap().label, "oar");

    // Two bad signatures: one misses a component (policy), one is stale (time): the stale
    // one got further, so its error is the one reported.
    let stale = oar_request(URL, NOW - 10 * WINDOW, "old");
    assert!(matches!(
        check(&with_both(&weak, &stale)),
        Err(Error::Stale { .. })
    ));
}

#[test]
fn a_signature_for_holder_a_does_not_verify_at_holder_b() {
    let req = oar_request(URL, NOW, "n");
    let at_b = |authority: &str| {
        let mut r = Request::from_parts("POST", "http", authority, "/v1/runs", Some("x=1"));
        for name in ["content-digest", "signature-input", "signature"] {
            r.set_header(name, req.header_values(name)[0]);
        }
        r
    };
    assert!(check(&at_b("holder-a.example:8420")).is_ok());
    assert!(check(&at_b("HOLDER-A.example:8420")).is_ok());
    assert_eq!(
        check(&at_b("holder-b.example:8420")),
        Err(Error::BadSignature("oar".into()))
    );
    assert_eq!(
        check(&at_b("holder-a.example:8421")),
        Err(Error::BadSignature("oar".into()))
    );
    // The default port is not part of @authority.
    let plain = oar_request("http://holder-a.example/v1/runs?x=1", NOW, "n");
    let mut explicit = Request::from_parts(
        "POST",
        "http",
        "holder-a.example:80",
        "/v1/runs",
        Some("x=1"),
    );
    for name in ["content-digest", "signature-input", "signature"] {
        explicit.set_header(name, plain.header_values(name)[0]);
    }
    assert!(check(&explicit).is_ok());
}

#[test]
fn any_change_to_method_path_or_query_breaks_the_signature() {
    let req = oar_request(URL, NOW, "n");
    let copy = |method: &str, path: &str, query: Option<&str>| {
        let mut r = Request::from_parts(method, "http", "holder-a.example:8420", path, query);
        for name in ["content-digest", "signature-input", "signature"] {
            r.set_header(name, req.header_values(name)[0]);
        }
        r
    };
    assert!(check(&copy("POST", "/v1/runs", Some("x=1"))).is_ok());
    for changed in [
        copy("GET", "/v1/runs", Some("x=1")),
        copy("post", "/v1/runs", Some("x=1")),
        copy("POST", "/v1/runs/1", Some("x=1")),
        copy("POST", "/v1/runs", Some("x=2")),
        copy("POST", "/v1/runs", None),
    ] {
        assert_eq!(check(&changed), Err(Error::BadSignature("oar".into())));
    }
}

#[test]
fn a_tampered_body_fails_the_digest() {
    let req = oar_request(URL, NOW, "n");
    assert_eq!(
        verify_request(&req, b"{\"module_hash\":\"evil\"}", NOW, WINDOW, &keys),
        Err(Error::DigestMismatch("sha-256".into()))
    );
    // A digest header swapped to match the new body breaks the signature instead.
    let mut swapped = req.clone();
    swapped.set_header("content-digest", &content_digest(b"evil"));
    assert_eq!(
        verify_request(&swapped, b"evil", NOW, WINDOW, &keys),
        Err(Error::BadSignature("oar".into()))
    );
}

#[test]
fn unknown_invalid_and_weak_keys_are_refused() {
    let req = oar_request(URL, NOW, "n");
    let keyid = keyid_of(&key().verifying_key());
    assert_eq!(
        verify_request(&req, BODY, NOW, WINDOW, &|_: &str| None),
        Err(Error::UnknownKey(keyid.clone()))
    );
    // The identity point (y = 1) has order 1: a weak key.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        verify_request(&req, BODY, NOW, WINDOW, &|_: &str| Some(identity)),
        Err(Error::WeakKey(keyid.clone()))
    );
    // y = 2 is not on the curve.
    let mut off_curve = [0u8; 32];
    off_curve[0] = 2;
    assert_eq!(
        verify_request(&req, BODY, NOW, WINDOW, &|_: &str| Some(off_curve)),
        Err(Error::InvalidKey(keyid))
    );
    // Another valid key: the signature does not verify.
    let other = SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes();
    assert_eq!(
        verify_request(&req, BODY, NOW, WINDOW, &|_: &str| Some(other)),
        Err(Error::BadSignature("oar".into()))
    );
}

#[test]
fn keyids_are_64_lowercase_hex_digits() {
    let id = keyid_of(&key().verifying_key());
    assert_eq!(
        oar::key_from_keyid(&id),
        Some(key().verifying_key().to_bytes())
    );
    assert_eq!(oar::key_from_keyid(&id.to_uppercase()), None);
    assert_eq!(oar::key_from_keyid(&id[..62]), None);
    assert_eq!(oar::key_from_keyid(&format!("{id}00")), None);
    assert_eq!(oar::key_from_keyid("é"), None);
}

fn sha512_digest_header(body: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha512::digest(body);
    format!(
        "sha-512=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[test]
fn content_digest_accepts_sha_256_and_sha_512_and_every_known_member_must_match() {
    let both = format!("{}, {}", content_digest(BODY), sha512_digest_header(BODY));
    ContentDigest::parse(&both).unwrap().check(BODY).unwrap();
    ContentDigest::parse(&sha512_digest_header(BODY))
        .unwrap()
        .check(BODY)
        .unwrap();
    let one_wrong = format!("{}, {}", content_digest(BODY), sha512_digest_header(b"x"));
    assert_eq!(
        ContentDigest::parse(&one_wrong).unwrap().check(BODY),
        Err(Error::DigestMismatch("sha-512".into()))
    );
    assert_eq!(
        ContentDigest::parse("md5=:AAAA:, unixsum=:AAAA:"),
        Err(Error::DigestAlgorithm)
    );
    assert_eq!(
        ContentDigest::parse("sha-256=:AAAA:"),
        Err(Error::MalformedDigest("sha-256".into()))
    );
    assert_eq!(
        ContentDigest::parse("sha-256=\"abc\""),
        Err(Error::MalformedDigest("sha-256".into()))
    );
    assert!(matches!(
        ContentDigest::parse("sha-256=:not base64!:"),
        Err(Error::MalformedHeader { .. })
    ));
    // Unknown members beside a known one are ignored.
    let extra = format!("md5=:AAAA:, {}", content_digest(BODY));
    ContentDigest::parse(&extra).unwrap().check(BODY).unwrap();
    oar_httpsig::verify_content_digest(&extra, BODY).unwrap();
}

#[test]
fn malformed_components_and_headers_are_refused_with_specific_errors() {
    let dup = {
        let mut r = signed_with(URL, "oar", &oar::COMPONENTS, oar_params());
        r.set_header(
            "signature-input",
            &r.header_values("signature-input")[0]
                .replace("(\"@method\"", "(\"@method\" \"@method\""),
        );
        r
    };
    assert_eq!(
        check(&dup),
        Err(Error::DuplicateComponent("\"@method\"".into()))
    );

    let req = signed_with(URL, "oar", &oar::COMPONENTS, oar_params());
    let unknown = {
        let mut r = req.clone();
        r.set_header(
            "signature-input",
            &r.header_values("signature-input")[0]
                .replace("\"content-digest\")", "\"content-digest\" \"@status\")"),
        );
        r
    };
    assert_eq!(
        check(&unknown),
        Err(Error::UnknownComponent("@status".into()))
    );

    let mut no_sig = req.clone();
    no_sig.set_header("signature", "other=:AAAA:");
    assert!(matches!(
        check(&no_sig),
        Err(Error::MalformedSignature { .. })
    ));
    let mut short = req.clone();
    short.set_header("signature", "oar=:AAAA:");
    assert!(matches!(
        check(&short),
        Err(Error::MalformedSignature { .. })
    ));
    let mut token = req.clone();
    token.set_header("signature", "oar=abc");
    assert!(matches!(
        check(&token),
        Err(Error::MalformedSignature { .. })
    ));

    let mut garbage = req.clone();
    garbage.set_header("signature-input", "oar=(\"@method\"");
    assert!(matches!(
        check(&garbage),
        Err(Error::MalformedHeader {
            header: "Signature-Input",
            ..
        })
    ));
    let mut item = req.clone();
    item.set_header("signature-input", "oar=\"@method\"");
    assert!(matches!(
        check(&item),
        Err(Error::MalformedSignatureInput { .. })
    ));
    let mut upper = req.clone();
    upper.set_header(
        "signature-input",
        &upper.header_values("signature-input")[0].replace("content-digest", "Content-Digest"),
    );
    assert!(matches!(check(&upper), Err(Error::InvalidComponent { .. })));
    let mut typed = req.clone();
    typed.set_header(
        "signature-input",
        &typed.header_values("signature-input")[0].replace("alg=\"ed25519\"", "alg=ed25519"),
    );
    assert!(matches!(
        check(&typed),
        Err(Error::InvalidParameter { param: "alg", .. })
    ));

    let no_headers = Request::new("POST", URL).unwrap();
    assert_eq!(
        check(&no_headers),
        Err(Error::MissingHeader("Signature-Input"))
    );
    let mut only_input = no_headers.clone();
    only_input.set_header("signature-input", req.header_values("signature-input")[0]);
    assert_eq!(check(&only_input), Err(Error::MissingHeader("Signature")));

    let many = (0..=oar_httpsig::MAX_LABELS)
        .map(|i| format!("s{i}=()"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut too_many = req.clone();
    too_many.set_header("signature-input", &many);
    assert!(matches!(
        check(&too_many),
        Err(Error::TooManySignatures { .. })
    ));
}

#[test]
fn a_header_that_would_add_a_line_to_the_base_is_refused() {
    let mut req = signed_with(
        URL,
        "sig1",
        &[
            "date",
            "@method",
            "@authority",
            "@path",
            "@query",
            "content-digest",
        ],
        oar_params(),
    );
    req.set_header("date", "x\n\"@method\": GET");
    assert!(matches!(check(&req), Err(Error::InvalidValue { .. })));
    req.set_header("date", "caf\u{e9}");
    assert!(matches!(check(&req), Err(Error::InvalidValue { .. })));
}
