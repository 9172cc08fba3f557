#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| codex_helper_fuzz::checks::catalog::check(data));
