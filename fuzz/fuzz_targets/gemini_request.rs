#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| glimpse_fuzz::targets::gemini_request(data));
