//! HTTP/1.1 request heads: any bytes, whole or fed in two pieces, never panic, and a
//! parsed head never depends on the bytes after it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wharf_server::fuzz::h1_head(data);
});
