#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| glimpse_fuzz::targets::image(data));
