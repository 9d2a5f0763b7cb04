//! libFuzzer entry for the `api_body` target (see `ajar_fuzz::api_body`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ajar_fuzz::api_body(data));
