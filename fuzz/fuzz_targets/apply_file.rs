//! libFuzzer entry for the `apply_file` target (see `ajar_fuzz::apply_file`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ajar_fuzz::apply_file(data));
