//! `Signature-Input`, `Signature` and `Content-Digest` headers, the request target they cover
//! and the body they bind, through the server's whole check (the input format is
//! `oar_httpsig::fuzz::FIELDS`). Depends on `oar-httpsig` alone.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oar_httpsig::fuzz::signature_headers(data);
});
