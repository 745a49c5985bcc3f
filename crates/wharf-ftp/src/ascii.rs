//! `TYPE A` (RFC 959 §3.1.1.1): on the wire, lines end with CRLF; on disk (Unix),
//! with LF. Both directions convert chunk by chunk, carrying state across chunk
//! boundaries, and leave everything else alone: a lone CR is data, and a file that
//! already has CRLF line ends is not given a second CR. So a file with CRLF on disk,
//! downloaded and uploaded again in ASCII mode, comes back with LF: binary mode
//! (`TYPE I`) is the one that keeps bytes as they are.

/// Disk to network: LF → CRLF unless the LF already follows a CR.
#[derive(Debug, Default)]
pub(crate) struct ToNetwork {
    last_was_cr: bool,
}

impl ToNetwork {
    /// Appends `input`, converted, to `out`.
    pub(crate) fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            if b == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_was_cr = b == b'\r';
        }
    }
}

/// Network to disk: CRLF → LF.
#[derive(Debug, Default)]
pub(crate) struct FromNetwork {
    pending_cr: bool,
}

impl FromNetwork {
    /// Appends `input`, converted, to `out` (a CR at the end waits for the next chunk).
    pub(crate) fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            if self.pending_cr && b != b'\n' {
                out.push(b'\r');
            }
            self.pending_cr = b == b'\r';
            if !self.pending_cr {
                out.push(b);
            }
        }
    }

    /// The end of the data: a CR still waiting is data.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

/// How many bytes `data` takes on the wire in ASCII mode (for `SIZE`): its length
/// plus one for every LF not already after a CR. Blocking.
pub(crate) fn network_len(mut data: impl std::io::Read) -> std::io::Result<u64> {
    let mut buf = [0u8; 64 << 10];
    let (mut total, mut last_was_cr) = (0u64, false);
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for &b in &buf[..n] {
            total += 1 + u64::from(b == b'\n' && !last_was_cr);
            last_was_cr = b == b'\r';
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both_ways(disk: &[u8], wire: &[u8]) {
        // Every split into two chunks gives the same result.
        for cut in 0..=disk.len() {
            let mut out = Vec::new();
            let mut c = ToNetwork::default();
            c.convert(&disk[..cut], &mut out);
            c.convert(&disk[cut..], &mut out);
            assert_eq!(out, wire, "to network, cut at {cut}");
        }
        for cut in 0..=wire.len() {
            let mut out = Vec::new();
            let mut c = FromNetwork::default();
            c.convert(&wire[..cut], &mut out);
            c.convert(&wire[cut..], &mut out);
            c.finish(&mut out);
            assert_eq!(out, disk, "from network, cut at {cut}");
        }
    }

    #[test]
    fn line_ends_are_converted_across_chunks() {
        both_ways(b"a\nb\n", b"a\r\nb\r\n");
        both_ways(b"\n\n", b"\r\n\r\n");
        both_ways(b"lone\rcr\r", b"lone\rcr\r");
        both_ways(b"", b"");
        assert_eq!(network_len(&b"a\nb\r\nc"[..]).unwrap(), 7);
    }

    #[test]
    fn crlf_on_disk_is_not_doubled() {
        let mut out = Vec::new();
        ToNetwork::default().convert(b"dos\r\nline", &mut out);
        assert_eq!(out, b"dos\r\nline");
    }
}
