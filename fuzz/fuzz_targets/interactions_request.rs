#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| glimpse_fuzz::targets::interactions_request(data));
