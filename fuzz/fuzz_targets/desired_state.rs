//! libFuzzer entry for the `desired_state` target (see `ajar_fuzz::desired_state`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ajar_fuzz::desired_state(data));
