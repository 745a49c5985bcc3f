//! Response heads as wharf's HTTP/1.1 client (the proxy's) parses them: any bytes never
//! panic, and a head found does not depend on the bytes after it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wharf_h1::client::fuzz(data);
});
