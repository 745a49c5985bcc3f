//! Chunked request bodies: any bytes never panic, and what the decoder reports stays
//! within its input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wharf_h1::chunked::fuzz(data);
});
