//! Signing in to the pages without a password and without the key leaving the browser.
//!
//! The sign-in page carries a one-time challenge. The browser signs it with the person's OAR
//! key file (ed25519, WebCrypto) in the context [`SIGNIN_CONTEXT`], exactly as OAR signs
//! everything else (the context, a zero byte, then the SHA-256 of the challenge text), and
//! sends back the public key and the signature. A key on the policy's committee roster or among
//! its requesters gets a session: a random token in an `HttpOnly`, `SameSite=Strict` cookie,
//! of which the server keeps only the hash. The operator signs in to the admin listener's page
//! with the admin token instead. Challenges and sessions are bounded in number (an
//! unauthenticated flood evicts the oldest, never grows memory) and in time.

use crate::keys::{PublicKey, Signature};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The signing context of a sign-in.
pub const SIGNIN_CONTEXT: &str = "oar-web-signin-v1";
/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Most challenges outstanding, and most sessions open.
pub const MAX_ENTRIES: usize = 4096;
/// The session cookie on the requester listener.
pub const COOKIE: &str = "oar_session";
/// The operator's session cookie on the admin listener.
pub const ADMIN_COOKIE: &str = "oar_operator";

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// A committee member or requester, by key.
    Key(PublicKey),
    /// The operator (admin token).
    Operator,
}

/// Outstanding challenges and open sessions.
#[derive(Default)]
pub struct Sessions {
    challenges: Mutex<HashMap<String, Instant>>,
    sessions: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

/// Keeps a map under `MAX_ENTRIES` before an insert: expired entries go, then the oldest.
fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    expiry: impl Fn(&V) -> Instant,
) {
    let now = Instant::now();
    map.retain(|_, v| expiry(v) > now);
    while map.len() >= MAX_ENTRIES {
        let oldest = map
            .iter()
            .min_by_key(|(_, v)| expiry(v))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => map.remove(&k),
            None => break,
        };
    }
}

fn random_hex() -> String {
    use rand_core::RngCore as _;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// A new challenge text, valid for [`CHALLENGE_TTL`], for the server at `authority`.
    pub fn challenge(&self, authority: &str) -> String {
        let text = format!("{SIGNIN_CONTEXT}\n{authority}\n{}", random_hex());
        let mut map = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        make_room(&mut map, |t| *t);
        map.insert(text.clone(), Instant::now() + CHALLENGE_TTL);
        text
    }

    /// Checks an answered challenge: issued here, not expired, not used before (it is used up
    /// now whatever the outcome), and signed by `key`.
    pub fn answer(&self, challenge: &str, key: &PublicKey, signature: &Signature) -> bool {
        let issued = self
            .challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(challenge);
        let fresh = issued.is_some_and(|until| until > Instant::now());
        fresh
            && key.verify(
                SIGNIN_CONTEXT,
                &crate::keys::sha256(challenge.as_bytes()),
                signature,
            )
    }

    /// Opens a session for `who`; returns the cookie value.
    pub fn open(&self, who: Principal) -> String {
        let token = random_hex();
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        make_room(&mut map, |(_, t)| *t);
        map.insert(
            crate::keys::sha256(token.as_bytes()),
            (who, Instant::now() + SESSION_TTL),
        );
        token
    }

    /// The principal of an open session.
    pub fn who(&self, token: &str) -> Option<Principal> {
        let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&crate::keys::sha256(token.as_bytes()))
            .filter(|(_, until)| *until > Instant::now())
            .map(|(p, _)| p.clone())
    }

    /// Ends a session.
    pub fn close(&self, token: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&crate::keys::sha256(token.as_bytes()));
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value for a session token (`None`: one that clears the cookie).
pub fn set_cookie(name: &str, token: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(t) => format!(
            "{name}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;

    #[test]
    fn a_challenge_signs_in_once_and_only_with_its_key() {
        let s = Sessions::default();
        let k = KeyPair::generate("member");
        let other = KeyPair::generate("other");
        let c = s.challenge("127.0.0.1:1");
        let digest = crate::keys::sha256(c.as_bytes());
        let sig = k.sign(SIGNIN_CONTEXT, &digest);
        assert!(!s.answer(&c, &other.public(), &sig), "another key");
        // Used up by the failed answer: even the right key cannot reuse it.
        assert!(!s.answer(&c, &k.public(), &sig));
        let c = s.challenge("127.0.0.1:1");
        let sig = k.sign(SIGNIN_CONTEXT, &crate::keys::sha256(c.as_bytes()));
        assert!(
            !s.answer(
                &c,
                &k.public(),
                &k.sign("oar-approval-v1", &crate::keys::sha256(c.as_bytes()))
            ),
            "another context"
        );
        let c = s.challenge("127.0.0.1:1");
        let sig2 = k.sign(SIGNIN_CONTEXT, &crate::keys::sha256(c.as_bytes()));
        assert!(s.answer(&c, &k.public(), &sig2));
        assert!(!s.answer(&c, &k.public(), &sig2), "replayed");
        assert!(!s.answer("made up", &k.public(), &sig), "never issued");
    }

    #[test]
    fn a_flood_of_challenges_keeps_the_map_bounded() {
        let s = Sessions::default();
        for _ in 0..MAX_ENTRIES + 10 {
            s.challenge("h");
        }
        assert!(s.challenges.lock().unwrap().len() <= MAX_ENTRIES);
    }

    #[test]
    fn sessions_open_resolve_and_close() {
        let s = Sessions::default();
        let t = s.open(Principal::Operator);
        assert_eq!(s.who(&t), Some(Principal::Operator));
        assert_eq!(s.who("forged"), None);
        s.close(&t);
        assert_eq!(s.who(&t), None);
    }

    #[test]
    fn cookies_are_read_from_any_cookie_header() {
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "a=1; oar_session=abc".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, ADMIN_COOKIE), None);
        assert!(set_cookie(COOKIE, Some("t"), true).contains("HttpOnly; SameSite=Strict"));
    }
}
