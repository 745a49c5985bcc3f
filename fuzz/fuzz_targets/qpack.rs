//! QPACK header sections: any bytes decode or fail cleanly, and what decodes encodes
//! and decodes back to the same fields.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wharf_h3::fuzz::qpack(data);
});
