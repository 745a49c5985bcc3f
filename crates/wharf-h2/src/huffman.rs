//! HPACK's static Huffman code (RFC 7541 §5.2, Appendix B).
//!
//! Encoding packs each byte's code into a 64-bit accumulator. Decoding walks the code
//! four bits at a time through a table built once from the code itself (one state per
//! inner node of the code tree, sixteen transitions each), so a byte costs two table
//! lookups rather than eight branchy steps down the tree.

use std::sync::OnceLock;

use crate::huffman_table::CODES;

/// The end-of-string symbol, which must never be decoded (§5.2).
const EOS: usize = 256;

/// The Huffman-coded length of `src`, in bytes.
pub(crate) fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(CODES[usize::from(b)].1))
        .sum();
    bits.div_ceil(8)
}

/// Appends `src`, Huffman-coded and padded with the EOS prefix (all ones), to `dst`.
pub(crate) fn encode(src: &[u8], dst: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in src {
        let (code, len) = CODES[usize::from(b)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            dst.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        dst.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
    }
}

/// Why a Huffman string is not valid (all are COMPRESSION_ERROR to the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

/// Appends the decoding of `src` to `dst`: an error for the EOS symbol, for padding
/// longer than 7 bits, and for padding that is not a prefix of EOS (§5.2).
pub(crate) fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), Invalid> {
    let fsm = fsm();
    let mut state = 0usize;
    for &b in src {
        for nibble in [b >> 4, b & 0x0f] {
            let t = fsm.steps[state][usize::from(nibble)];
            if t.fail {
                return Err(Invalid);
            }
            if let Some(sym) = t.emit {
                dst.push(sym);
            }
            state = usize::from(t.next);
        }
    }
    if fsm.accepting[state] {
        Ok(())
    } else {
        Err(Invalid)
    }
}

/// One transition of the decoder: four bits read from an inner node.
#[derive(Clone, Copy, Default)]
struct Step {
    next: u8,
    emit: Option<u8>,
    fail: bool,
}

struct Fsm {
    /// By inner node (0 is the root), by the next four bits.
    steps: Vec<[Step; 16]>,
    /// Whether input may end at this node: the root, or at most seven bits along the
    /// all-ones path (padding).
    accepting: Vec<bool>,
}

fn fsm() -> &'static Fsm {
    static FSM: OnceLock<Fsm> = OnceLock::new();
    FSM.get_or_init(build)
}

/// A child in the code tree: another inner node, or a symbol.
#[derive(Clone, Copy)]
enum Child {
    Node(usize),
    Symbol(usize),
    Empty,
}

fn build() -> Fsm {
    // The code tree: 257 leaves, so 256 inner nodes.
    let mut children: Vec<[Child; 2]> = vec![[Child::Empty; 2]];
    let mut ones_depth: Vec<Option<u8>> = vec![Some(0)];
    for (sym, &(code, len)) in CODES.iter().enumerate() {
        let mut node = 0;
        for i in (0..len).rev() {
            let bit = ((code >> i) & 1) as usize;
            if i == 0 {
                children[node][bit] = Child::Symbol(sym);
                break;
            }
            node = match children[node][bit] {
                Child::Node(n) => n,
                _ => {
                    let n = children.len();
                    children.push([Child::Empty; 2]);
                    let parent = ones_depth[node];
                    ones_depth.push(parent.filter(|_| bit == 1).map(|d| d + 1));
                    children[node][bit] = Child::Node(n);
                    n
                }
            };
        }
    }
    let steps = (0..children.len())
        .map(|start| {
            std::array::from_fn(|nibble| {
                let mut node = start;
                let mut step = Step::default();
                for i in (0..4).rev() {
                    match children[node][(nibble >> i) & 1] {
                        Child::Node(n) => node = n,
                        Child::Symbol(EOS) | Child::Empty => {
                            step.fail = true;
                            return step;
                        }
                        Child::Symbol(sym) => {
                            step.emit = Some(sym as u8);
                            node = 0;
                        }
                    }
                }
                step.next = node as u8;
                step
            })
        })
        .collect();
    let accepting = ones_depth
        .iter()
        .map(|d| matches!(d, Some(0..=7)))
        .collect();
    Fsm { steps, accepting }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode(s, &mut v);
        assert_eq!(v.len(), encoded_len(s));
        v
    }

    fn dec(s: &[u8]) -> Result<Vec<u8>, Invalid> {
        let mut v = Vec::new();
        decode(s, &mut v).map(|()| v)
    }

    /// RFC 7541 Appendix C.4 and C.6: the Huffman-coded strings of the examples.
    #[test]
    fn rfc_examples() {
        let cases: [(&str, &[u8]); 6] = [
            (
                "www.example.com",
                &[
                    0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
                ],
            ),
            ("no-cache", &[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]),
            (
                "custom-key",
                &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f],
            ),
            (
                "custom-value",
                &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf],
            ),
            ("302", &[0x64, 0x02]),
            ("private", &[0xae, 0xc3, 0x77, 0x1a, 0x4b]),
        ];
        for (plain, coded) in cases {
            assert_eq!(enc(plain.as_bytes()), coded, "{plain}");
            assert_eq!(dec(coded).unwrap(), plain.as_bytes(), "{plain}");
        }
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(dec(&enc(&all)).unwrap(), all);
        for b in 0..=255u8 {
            assert_eq!(dec(&enc(&[b, b, b])).unwrap(), [b, b, b]);
        }
        assert_eq!(dec(&[]).unwrap(), b"");
    }

    /// §5.2: padding longer than 7 bits, padding that is not all ones, and EOS itself
    /// are decoding errors.
    #[test]
    fn invalid_padding_and_eos() {
        // '0' is 00000 (5 bits): one byte of it leaves 3 padding bits.
        assert_eq!(dec(&[0b0000_0111]).unwrap(), b"0");
        assert_eq!(dec(&[0b0000_0011]), Err(Invalid), "padding not all ones");
        assert_eq!(dec(&[0xff]), Err(Invalid), "8 bits of padding");
        assert_eq!(
            dec(&[0b0000_0111, 0xff]),
            Err(Invalid),
            "11 bits of padding"
        );
        assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(Invalid), "EOS");
    }
}
