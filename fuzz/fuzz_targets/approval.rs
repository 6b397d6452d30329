//! See `oar_host::untrusted::approval`, which this target runs (it needs `--features host`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oar_host::untrusted::approval(data);
});
