//! The plan JSON a module sends to the host's `query` call, parsed as the host parses it,
//! with the size limits checked before any data is touched, and a round trip: a parsed plan
//! serializes to JSON that parses to the same plan. Depends on `oar-guest` alone; the
//! host's further checks against a dataset's schema and the policy are `plan_host`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oar_guest::plan::Plan;

/// The host's limit on a plan's size (`oar_host::session::MAX_PLAN_BYTES`), repeated here so
/// this target needs no `oar-host`.
const MAX_PLAN_BYTES: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    // A module's plan arrives as a WIT string: always UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > MAX_PLAN_BYTES {
        return;
    }
    let Ok(plan) = serde_json::from_str::<Plan>(text) else {
        return;
    };
    let _ = plan.over_size_limit();
    let json = serde_json::to_string(&plan).expect("a parsed plan serializes");
    let again: Plan = serde_json::from_str(&json).expect("a serialized plan parses");
    assert_eq!(again, plan, "a plan changed in a JSON round trip");
});
