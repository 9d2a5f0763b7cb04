//! libFuzzer entry for the `address` target (see `ajar_fuzz::address`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ajar_fuzz::address(data));
