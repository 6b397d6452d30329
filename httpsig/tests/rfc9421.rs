//! RFC 9421's own examples: the test request of Appendix B.2, the ed25519 key of B.1.4, the
//! signature bases of B.2.1, B.2.2, B.2.3 and B.2.6, the B.2.6 signature, and the
//! derived-component examples of section 2.2. Only the RFC's constants are used.

use base64::Engine as _;
use oar_httpsig::{
    sign, signature_base, verify, ComponentId, ContentDigest, Error, Request, SignatureInput,
    SignatureParams, SigningKey,
};

/// B.1.4 `test-key-ed25519`, JWK `d` (the private seed) and `x` (the public key), base64url.
const B14_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
const B14_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";

/// B.2's `Content-Digest` of the body `{"hello": "world"}`.
const B2_DIGEST: &str = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";
const B2_BODY: &[u8] = br#"{"hello": "world"}"#;

const B26_INPUT: &str = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
const B26_SIGNATURE: &str = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";
const B26_BASE: &str = r#""date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;

fn key32(b64url: &str) -> [u8; 32] {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64url)
        .unwrap()
        .try_into()
        .unwrap()
}

/// The test request of Appendix B.2:
/// `POST /foo?param=Value&Pet=dog` to `example.com`, with its four headers.
fn b2_request() -> Request {
    Request::new("POST", "http://example.com/foo?param=Value&Pet=dog")
        .unwrap()
        .with_header("Host", "example.com")
        .with_header("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
        .with_header("Content-Type", "application/json")
        .with_header("Content-Digest", B2_DIGEST)
        .with_header("Content-Length", "18")
}

fn base_of(req: &Request, signature_input: &str, label: &str) -> String {
    let input = SignatureInput::parse(signature_input, label).unwrap();
    signature_base(req, &input).unwrap()
}

#[test]
fn b26_ed25519_signature_base_is_the_rfcs_byte_for_byte() {
    assert_eq!(base_of(&b2_request(), B26_INPUT, "sig-b26"), B26_BASE);
}

#[test]
fn b26_ed25519_signature_from_the_rfc_verifies() {
    let req = b2_request()
        .with_header("Signature-Input", B26_INPUT)
        .with_header("Signature", B26_SIGNATURE);
    let keys = |keyid: &str| (keyid == "test-key-ed25519").then(|| key32(B14_X));
    let verified = verify(&req, "sig-b26", &keys).unwrap();
    assert_eq!(verified.key, key32(B14_X));
    assert_eq!(verified.input.params().created, Some(1618884473));
    assert_eq!(
        verified.input.params().keyid.as_deref(),
        Some("test-key-ed25519")
    );

    // The same signature at another authority, or with another date, does not verify.
    let mut moved = req.clone();
    moved.set_header("date", "Tue, 20 Apr 2021 02:07:56 GMT");
    assert_eq!(
        verify(&moved, "sig-b26", &keys).unwrap_err(),
        Error::BadSignature("sig-b26".into())
    );
    let elsewhere = Request::new("POST", "http://example.org/foo?param=Value&Pet=dog")
        .unwrap()
        .with_header("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
        .with_header("Content-Type", "application/json")
        .with_header("Content-Length", "18")
        .with_header("Signature-Input", B26_INPUT)
        .with_header("Signature", B26_SIGNATURE);
    assert_eq!(
        verify(&elsewhere, "sig-b26", &keys).unwrap_err(),
        Error::BadSignature("sig-b26".into())
    );
}

#[test]
fn b26_our_signer_reproduces_the_rfcs_signature() {
    let key = SigningKey::from_bytes(&key32(B14_D));
    assert_eq!(key.verifying_key().to_bytes(), key32(B14_X));
    let components = [
        "date",
        "@method",
        "@path",
        "@authority",
        "content-type",
        "content-length",
    ]
    .map(|c| ComponentId::parse(c).unwrap())
    .to_vec();
    let params = SignatureParams {
        created: Some(1618884473),
        keyid: Some("test-key-ed25519".into()),
        ..SignatureParams::default()
    };
    let input = SignatureInput::new("sig-b26", components, params).unwrap();
    assert_eq!(signature_base(&b2_request(), &input).unwrap(), B26_BASE);
    let headers = sign(&b2_request(), &input, &key).unwrap();
    assert_eq!(headers.signature_input, B26_INPUT);
    assert_eq!(headers.signature, B26_SIGNATURE);
}

#[test]
fn b2_content_digest_is_the_sha_512_of_the_body() {
    let digest = ContentDigest::parse(B2_DIGEST).unwrap();
    digest.check(B2_BODY).unwrap();
    assert_eq!(
        digest.check(b"{\"hello\": \"world\"}\n"),
        Err(Error::DigestMismatch("sha-512".into()))
    );
}

#[test]
fn b21_minimal_signature_base() {
    let input =
        r#"sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd""#;
    assert_eq!(
        base_of(&b2_request(), input, "sig-b21"),
        r#""@signature-params": ();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd""#
    );
    let parsed = SignatureInput::parse(input, "sig-b21").unwrap();
    assert_eq!(
        parsed.params().nonce.as_deref(),
        Some("b3k2pp5k7z-50gnwp.yemd")
    );
}

#[test]
fn b22_selective_components_base_with_authority_digest_and_query_param() {
    let input = r#"sig-b22=("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example""#;
    let expected = [
        r#""@authority": example.com"#,
        r#""content-digest": sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"#,
        r#""@query-param";name="Pet": dog"#,
        r#""@signature-params": ("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example""#,
    ]
    .join("\n");
    assert_eq!(base_of(&b2_request(), input, "sig-b22"), expected);
    let parsed = SignatureInput::parse(input, "sig-b22").unwrap();
    assert_eq!(parsed.params().tag.as_deref(), Some("header-example"));
}

#[test]
fn b23_full_coverage_base() {
    let input = r#"sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss""#;
    let expected = [
        r#""date": Tue, 20 Apr 2021 02:07:55 GMT"#,
        r#""@method": POST"#,
        r#""@path": /foo"#,
        r#""@query": ?param=Value&Pet=dog"#,
        r#""@authority": example.com"#,
        r#""content-type": application/json"#,
        r#""content-digest": sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"#,
        r#""content-length": 18"#,
        r#""@signature-params": ("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss""#,
    ]
    .join("\n");
    assert_eq!(base_of(&b2_request(), input, "sig-b23"), expected);
}

/// One line of the base for `component` on `req`, without the `@signature-params` line.
fn line(req: &Request, component: &str) -> Result<String, Error> {
    let input = SignatureInput::new(
        "s",
        vec![ComponentId::parse(component)?],
        SignatureParams::default(),
    )?;
    let base = signature_base(req, &input)?;
    Ok(base.lines().next().unwrap_or_default().to_string())
}

#[test]
fn derived_components_follow_section_2_2() {
    let req = Request::new("POST", "https://www.example.com/path?param=value").unwrap();
    assert_eq!(
        line(&req, "@target-uri").unwrap(),
        r#""@target-uri": https://www.example.com/path?param=value"#
    );
    assert_eq!(
        line(&req, "@authority").unwrap(),
        r#""@authority": www.example.com"#
    );
    assert_eq!(line(&req, "@scheme").unwrap(), r#""@scheme": https"#);
    assert_eq!(
        line(&req, "@request-target").unwrap(),
        r#""@request-target": /path?param=value"#
    );
    assert_eq!(line(&req, "@path").unwrap(), r#""@path": /path"#);
    assert_eq!(line(&req, "@method").unwrap(), r#""@method": POST"#);

    let q = Request::new(
        "GET",
        "https://www.example.com/path?param=value&foo=bar&baz=bat%2Dman",
    )
    .unwrap();
    assert_eq!(
        line(&q, "@query").unwrap(),
        r#""@query": ?param=value&foo=bar&baz=bat%2Dman"#
    );
    let none = Request::new("GET", "https://www.example.com/path").unwrap();
    assert_eq!(line(&none, "@query").unwrap(), r#""@query": ?"#);
    let root = Request::new("GET", "https://www.example.com").unwrap();
    assert_eq!(line(&root, "@path").unwrap(), r#""@path": /"#);
}

#[test]
fn query_params_follow_section_2_2_8() {
    let req = Request::new(
        "GET",
        "https://www.example.com/path?param=value&foo=bar&baz=batman&qux=",
    )
    .unwrap();
    assert_eq!(
        line(&req, r#""@query-param";name="baz""#).unwrap(),
        r#""@query-param";name="baz": batman"#
    );
    assert_eq!(
        line(&req, r#""@query-param";name="qux""#).unwrap(),
        r#""@query-param";name="qux": "#
    );
    assert_eq!(
        line(&req, r#""@query-param";name="param""#).unwrap(),
        r#""@query-param";name="param": value"#
    );
    let enc = Request::new("GET", "https://www.example.com/parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something").unwrap();
    assert_eq!(
        line(&enc, r#""@query-param";name="var""#).unwrap(),
        r#""@query-param";name="var": this%20is%20a%20big%0Amultiline%20value"#
    );
    assert_eq!(
        line(&enc, r#""@query-param";name="bar""#).unwrap(),
        r#""@query-param";name="bar": with%20plus%20whitespace"#
    );
    assert_eq!(
        line(&enc, r#""@query-param";name="fa%C3%A7ade%22%3A%20""#).unwrap(),
        r#""@query-param";name="fa%C3%A7ade%22%3A%20": something"#
    );
    assert_eq!(
        line(&req, r#""@query-param";name="nope""#),
        Err(Error::MissingQueryParam("nope".into()))
    );
    let twice = Request::new("GET", "https://e.example/?a=1&a=2").unwrap();
    assert_eq!(
        line(&twice, r#""@query-param";name="a""#),
        Err(Error::RepeatedQueryParam("a".into()))
    );
}

#[test]
fn fields_are_trimmed_and_combined_and_dictionary_members_can_be_selected() {
    let req = Request::new("GET", "https://example.com/")
        .unwrap()
        .with_header("Cache-Control", "  max-age=60 ")
        .with_header("cache-control", "\tmust-revalidate")
        .with_header(
            "Content-Digest",
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:,   sha-512=:AAAA:;p",
        );
    assert_eq!(
        line(&req, "cache-control").unwrap(),
        r#""cache-control": max-age=60, must-revalidate"#
    );
    assert_eq!(
        line(&req, r#""content-digest";sf"#).unwrap(),
        r#""content-digest";sf: sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:AAAA:;p"#
    );
    assert_eq!(
        line(&req, r#""content-digest";key="sha-512""#).unwrap(),
        r#""content-digest";key="sha-512": :AAAA:;p"#
    );
    for refused in [
        r#""cache-control";bs"#,
        r#""cache-control";req"#,
        r#""cache-control";tr"#,
    ] {
        assert!(
            matches!(
                line(&req, refused),
                Err(Error::UnsupportedComponentParameter { .. })
            ),
            "{refused}"
        );
    }
    assert!(matches!(
        line(&req, r#""cache-control";sf"#),
        Err(Error::InvalidComponent { .. })
    ));
    assert_eq!(line(&req, "date"), Err(Error::MissingField("date".into())));
}
