//! libFuzzer entry for the `jwt` target (see `ajar_fuzz::jwt`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ajar_fuzz::jwt(data));
