//! libFuzzer entry for the `duration` target (see `ajar_fuzz::duration`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ajar_fuzz::duration(data));
