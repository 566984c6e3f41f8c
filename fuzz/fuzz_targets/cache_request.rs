#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| glimpse_fuzz::targets::cache_request(data));
