//! A fuzz smoke test without a fuzzer: thousands of random and mutated `Signature-Input`,
//! `Signature`, `Content-Digest` values, component identifiers and request targets. Every one
//! must come back as a result (never a panic), and a mutated header that still verifies must
//! mean exactly what the original meant.

use oar_httpsig::oar::{self, sign_request, verify_request};
use oar_httpsig::{
    signature_base, verify, ComponentId, ContentDigest, Message, Request, SignatureSet, SigningKey,
};

const NOW: i64 = 1_700_000_000;
const BODY: &[u8] = b"{\"module_hash\":\"abc\"}";
/// Characters that matter to structured fields, signature bases and URLs.
const ALPHABET: &[u8] =
    b"\"();=:,@ \t\\?*-_.%+/&#[]0123456789abcdefghijklmnopqrstuvwxyzAZ\n\r\x00\x7f";

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        if self.below(4) == 0 {
            (self.next() & 0xff) as u8
        } else {
            ALPHABET[self.below(ALPHABET.len())]
        }
    }
    fn random_string(&mut self, max: usize) -> String {
        let len = self.below(max + 1);
        let bytes: Vec<u8> = (0..len).map(|_| self.byte()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
    /// One to three random edits of `s`: flip, insert, delete a range, duplicate a range,
    /// truncate.
    fn mutate(&mut self, s: &str) -> String {
        let mut b = s.as_bytes().to_vec();
        for _ in 0..=self.below(3) {
            let at = self.below(b.len() + 1);
            match self.below(5) {
                0 if !b.is_empty() => {
                    let i = self.below(b.len());
                    b[i] = self.byte();
                }
                1 => b.insert(at, self.byte()),
                2 if at < b.len() => {
                    let end = (at + 1 + self.below(8)).min(b.len());
                    b.drain(at..end);
                }
                3 if at < b.len() => {
                    let end = (at + 1 + self.below(16)).min(b.len());
                    let chunk = b[at..end].to_vec();
                    b.splice(at..at, chunk);
                }
                _ => b.truncate(at),
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    }
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn keys(keyid: &str) -> Option<[u8; 32]> {
    oar::key_from_keyid(keyid)
}

fn valid_request() -> Request {
    let mut req = Request::new("POST", "http://127.0.0.1:8420/v1/runs?a=1&b=x+y").unwrap();
    let signed = sign_request(&req, BODY, &key(), NOW, "nonce").unwrap();
    req.set_header("content-digest", &signed.content_digest);
    req.set_header("signature-input", &signed.signature_input);
    req.set_header("signature", &signed.signature);
    req
}

/// Everything a server or a tool might call on an untrusted request; the results are ignored,
/// only panics matter (and the caller's property).
fn exercise(req: &Request) -> bool {
    if let Ok(set) = SignatureSet::from_message(req) {
        for label in set.labels() {
            if let Ok(input) = set.input(label) {
                let _ = signature_base(req, &input);
                let _ = input.signature_params();
            }
            let _ = set.signature(label);
            let _ = verify(req, label, &keys);
        }
    }
    for value in req.header_values("content-digest") {
        let _ = ContentDigest::parse(value);
    }
    verify_request(req, BODY, NOW, 300, &keys).is_ok()
}

fn parsed(req: &Request) -> (String, Vec<u8>) {
    let set = SignatureSet::from_message(req).unwrap();
    let input = set.input("oar").unwrap();
    (
        input.signature_params(),
        set.signature("oar").unwrap().to_vec(),
    )
}

#[test]
fn mutated_signature_headers_never_panic_and_only_verify_when_they_mean_the_same() {
    let valid = valid_request();
    assert!(exercise(&valid));
    let original = parsed(&valid);
    let mut rng = Rng(0x5eed_0001);
    let mut accepted = 0;
    for round in 0..6000 {
        let mut req = valid.clone();
        let header = ["signature-input", "signature", "content-digest"][round % 3];
        let mutated = rng.mutate(req.header_values(header)[0]);
        req.set_header(header, &mutated);
        if exercise(&req) {
            // Only a change the parsers read as the same header (e.g. a space after ";")
            // can still verify.
            assert_eq!(parsed(&req), original, "{header}: {mutated:?}");
            accepted += 1;
        }
    }
    assert!(accepted < 6000 / 2, "almost every mutation must be refused");
}

#[test]
fn random_headers_never_panic_and_never_verify() {
    let valid = valid_request();
    let mut rng = Rng(0x5eed_0002);
    for round in 0..3000 {
        let mut req = valid.clone();
        let random = rng.random_string(160);
        let header = ["signature-input", "signature", "content-digest"][round % 3];
        req.set_header(header, &random);
        if round % 5 == 0 {
            req.set_header("signature-input", &format!("oar={random}"));
        }
        assert!(!exercise(&req), "{header}: {random:?}");
    }
}

#[test]
fn random_component_identifiers_and_targets_never_panic() {
    let valid = valid_request();
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..3000 {
        let text = rng.random_string(40);
        let _ = ComponentId::parse(&text);
        let quoted = format!("\"{}\";{}", rng.random_string(12), rng.random_string(20));
        let _ = ComponentId::parse(&quoted);

        // A signature covering random components, on a request with random parts.
        let url = format!("http://{}", rng.mutate("h.example:80/p/a?q=1&r=%2F+x"));
        let Ok(mut req) = Request::new(&rng.random_string(6), &url) else {
            continue;
        };
        let list = format!(
            "s=(\"@method\" {} {} \"@query-param\";name=\"{}\" \"x\";key=\"{}\" \"x\";sf);created=1",
            quoted,
            rng.mutate("\"@authority\" \"@target-uri\" \"@request-target\""),
            rng.random_string(4).replace(['"', '\\'], ""),
            rng.random_string(4).replace(['"', '\\'], ""),
        );
        req.set_header("signature-input", &list);
        req.set_header("signature", valid.header_values("signature")[0]);
        req.set_header("x", &rng.random_string(30));
        let _ = exercise(&req);
    }
}
