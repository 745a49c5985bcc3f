//! wharf's HTTP/2 server codec (RFC 9113) with HPACK (RFC 7541), sans-IO.
//!
//! The codec knows nothing of sockets or tasks: the transport feeds it the bytes it
//! reads and takes from it the bytes to write. In between, [`Connection`] checks every
//! frame against RFC 9113 (answering the errors with the codes the RFC names), keeps
//! both directions' flow control, and turns header blocks into `http` request heads.
//! Responses go the other way: heads, DATA as the peer's windows allow, trailers.
//! Everything ready is encoded into one buffer, so a transport writes once for any
//! number of streams.

mod conn;
mod frame;
pub mod head;
pub mod hpack;
mod huffman;
mod huffman_table;

pub use conn::{Config, ConnError, Connection, Event, DISCARD_LIMIT, PREFACE};
pub use frame::Reason;

/// Entry points for the cargo-fuzz targets in `fuzz/` (and this crate's property
/// tests); only under `cfg(fuzzing)` or tests.
#[cfg(any(test, fuzzing))]
pub mod fuzz;
