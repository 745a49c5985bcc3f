//! HTTP/2 frames after the preface, in two pieces, every request answered: the codec
//! never panics, writes whole frames, and ends a broken connection with GOAWAY.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wharf_h2::fuzz::frames(data);
});
