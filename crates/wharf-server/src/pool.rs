//! Buffers lent to connections only while they have bytes to move.
//!
//! An idle keep-alive connection holds no buffer: it waits for readability with an
//! empty one, takes a read buffer from this pool when bytes arrive, and gives it back
//! once they are consumed; its write buffer goes back once flushed. A thread keeps a
//! few spare buffers of each kind, so a busy connection costs no allocation per request
//! and thousands of idle ones cost none at all. HTTP/1.1 and HTTP/2 connections share
//! the write buffers; their read buffers differ in size.

use std::cell::RefCell;

use wharf_http::spares::{self, Spares};

/// Size of an HTTP/1.1 read buffer: a request head, or a pipelined batch of them, fits.
pub(crate) const READ_BUF: usize = 8 * 1024;

/// Size of an HTTP/2 read buffer: a frame of the largest size wharf announces (16 KiB
/// and its header) fits, with room for the frames around it.
pub(crate) const FRAME_READ_BUF: usize = 32 * 1024;

/// Write buffers that grew beyond this are freed rather than kept.
const MAX_KEPT_WRITE: usize = 64 * 1024;

/// Spare buffers of each kind one thread keeps.
const SPARE: usize = 16;

thread_local! {
    static READ: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static FRAME_READ: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static WRITE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An initialised read buffer of [`READ_BUF`] bytes (its length is its size).
pub(crate) fn take_read() -> Vec<u8> {
    take_sized(&READ, READ_BUF)
}

/// Returns a read buffer; buffers of another size are freed.
pub(crate) fn give_read(buf: Vec<u8>) {
    give_sized(&READ, READ_BUF, buf);
}

/// An initialised HTTP/2 read buffer of [`FRAME_READ_BUF`] bytes.
pub(crate) fn take_frame_read() -> Vec<u8> {
    take_sized(&FRAME_READ, FRAME_READ_BUF)
}

/// Returns an HTTP/2 read buffer.
pub(crate) fn give_frame_read(buf: Vec<u8>) {
    give_sized(&FRAME_READ, FRAME_READ_BUF, buf);
}

fn take_sized(kept: &'static Spares<Vec<u8>>, size: usize) -> Vec<u8> {
    spares::take(kept).unwrap_or_else(|| vec![0; size])
}

fn give_sized(kept: &'static Spares<Vec<u8>>, size: usize, buf: Vec<u8>) {
    if buf.len() == size {
        spares::keep(kept, buf, SPARE);
    }
}

/// An empty write buffer.
pub(crate) fn take_write() -> Vec<u8> {
    spares::take(&WRITE).unwrap_or_else(|| Vec::with_capacity(READ_BUF))
}

/// Returns a write buffer (emptied here).
pub(crate) fn give_write(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > MAX_KEPT_WRITE {
        return;
    }
    buf.clear();
    spares::keep(&WRITE, buf, SPARE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_bounded() {
        let a = take_read();
        assert_eq!(a.len(), READ_BUF);
        let ptr = a.as_ptr();
        give_read(a);
        let again = take_read();
        assert_eq!(again.as_ptr(), ptr, "the spare is lent again");
        give_read(vec![0; 10]); // another size: freed
        assert_eq!(take_read().len(), READ_BUF);
        let bufs: Vec<_> = (0..SPARE + 4).map(|_| take_write()).collect();
        bufs.into_iter().for_each(give_write);
        assert_eq!(WRITE.with(|w| w.borrow().len()), SPARE);
        let mut big = take_write();
        big.reserve(MAX_KEPT_WRITE * 2);
        let before = WRITE.with(|w| w.borrow().len());
        give_write(big);
        assert_eq!(
            WRITE.with(|w| w.borrow().len()),
            before,
            "grown buffers are freed"
        );
    }
}
