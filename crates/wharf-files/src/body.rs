//! The response body of every wharf service: a queue of chunks, each either bytes in
//! memory or a byte range of an open file read on the blocking pool as the client
//! consumes it. One type serves whole files, single ranges and multipart/byteranges.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::task::JoinHandle;

/// How much of a file one read takes.
const READ_CHUNK: u64 = 256 * 1024;

/// A piece of a response body.
#[derive(Debug)]
pub(crate) enum Chunk {
    Bytes(Bytes),
    File {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
}

impl Chunk {
    fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::File { len, .. } => *len,
        }
    }
}

/// The chunks still to yield: the first in place (most bodies have only one, and
/// need no allocation), any others queued behind it. `first` is empty only when
/// `rest` is.
#[derive(Debug, Default)]
struct Chunks {
    first: Option<Chunk>,
    rest: VecDeque<Chunk>,
}

impl Chunks {
    fn push_back(&mut self, chunk: Chunk) {
        match self.first {
            None => self.first = Some(chunk),
            Some(_) => self.rest.push_back(chunk),
        }
    }

    fn push_front(&mut self, chunk: Chunk) {
        if let Some(next) = self.first.replace(chunk) {
            self.rest.push_front(next);
        }
    }

    fn pop_front(&mut self) -> Option<Chunk> {
        let chunk = self.first.take()?;
        self.first = self.rest.pop_front();
        Some(chunk)
    }
}

/// A response body (see the module docs).
#[derive(Debug, Default)]
pub struct Body {
    chunks: Chunks,
    remaining: u64,
    reading: Option<JoinHandle<io::Result<Bytes>>>,
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A body of bytes in memory.
    pub fn from_bytes(b: impl Into<Bytes>) -> Self {
        let mut body = Self::empty();
        body.push(Chunk::Bytes(b.into()));
        body
    }

    pub(crate) fn push(&mut self, chunk: Chunk) {
        if chunk.len() > 0 {
            self.remaining += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Total bytes still to be yielded.
    pub fn len(&self) -> u64 {
        self.remaining
    }

    /// True when nothing is left to yield.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(task) = this.reading.as_mut() {
                let res = match Pin::new(task).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r.unwrap_or_else(|e| Err(io::Error::other(e))),
                };
                this.reading = None;
                return Poll::Ready(Some(res.map(|b| {
                    this.remaining -= b.len() as u64;
                    Frame::data(b)
                })));
            }
            match this.chunks.pop_front() {
                None => return Poll::Ready(None),
                Some(Chunk::Bytes(b)) => {
                    this.remaining -= b.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                Some(Chunk::File { file, offset, len }) => {
                    let take = len.min(READ_CHUNK);
                    if len > take {
                        let rest = Chunk::File {
                            file: file.clone(),
                            offset: offset + take,
                            len: len - take,
                        };
                        this.chunks.push_front(rest);
                    }
                    this.reading = Some(tokio::task::spawn_blocking(move || {
                        read_exact_at(&file, offset, take)
                    }));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Reads exactly `len` bytes at `offset`; a file that shrank is an error, never a short body.
fn read_exact_at(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Write;

    #[tokio::test]
    async fn yields_bytes_and_file_ranges_in_order() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let file = Arc::new(f);
        let mut body = Body::from_bytes("head|");
        body.push(Chunk::File {
            file: file.clone(),
            offset: 10,
            len: 500_000,
        });
        body.push(Chunk::Bytes(Bytes::from_static(b"|tail")));
        assert_eq!(body.len(), 500_010);
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..5], b"head|");
        assert_eq!(&out[5..500_005], &data[10..500_010]);
        assert_eq!(&out[500_005..], b"|tail");
    }

    #[tokio::test]
    async fn truncated_file_is_an_error() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"short").unwrap();
        let mut body = Body::empty();
        body.push(Chunk::File {
            file: Arc::new(f),
            offset: 0,
            len: 100,
        });
        assert!(body.collect().await.is_err());
    }
}
