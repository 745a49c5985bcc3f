//! Arbitrary inputs for the property tests of wharf's parsers (this crate's HTTP/1.1
//! ones, `wharf-server`'s, and the HTTP/2 and HTTP/3 codecs'): a seeded generator, so
//! every run checks the same thousands of cases and a failure names its seed. Not
//! for production use.

/// xorshift64*: small, fast, and good enough to explore a parser's input space.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `len` bytes drawn from `alphabet`.
    pub fn string(&mut self, alphabet: &[u8], len: usize) -> Vec<u8> {
        (0..len).map(|_| *self.pick(alphabet)).collect()
    }

    /// `len` uniformly random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Random bytes, biased towards the ones HTTP/1.1 framing turns on.
    pub fn noise(&mut self, len: usize) -> Vec<u8> {
        const SPECIAL: &[u8] = b"\r\n :;/0123456789abcdefABCDEF\t%,";
        (0..len)
            .map(|_| {
                if self.below(3) == 0 {
                    self.next_u64() as u8
                } else {
                    *self.pick(SPECIAL)
                }
            })
            .collect()
    }

    /// Splits `len` bytes into a random sequence of piece lengths.
    pub fn pieces(&mut self, len: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut left = len;
        while left > 0 {
            let n = 1 + self.below(left.min(64));
            out.push(n);
            left -= n;
        }
        out
    }
}

/// Token characters (RFC 9110 §5.6.2).
pub const TCHAR: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Visible characters and spaces for field values (no leading/trailing space added).
pub const VCHAR: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 !\"#$%&'()*+,-./:;<=>?@[]^_`{|}~";
/// Characters of an origin-form path and query.
pub const PCHAR: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?";
