//! libFuzzer entry for the `resource_id` target (see `ajar_fuzz::resource_id`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ajar_fuzz::resource_id(data));
