//! HTTP/3 frames on request and control streams: any bytes, cut anywhere, read the
//! same or fail the same, and nothing panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wharf_h3::fuzz::frames(data);
});
