//! The vocabulary trie: which symbol sequences can still complete a known word.
//!
//! File form (little-endian, documented in `docs/ctc-format.md`): a 32-byte header — magic
//! `HKNTRIE1`, alphabet size (u32), node count (u32), word count (u32), FNV-1a 64 checksum of
//! the node table (u64), 4 reserved bytes — then one 8-byte record per node in breadth-first
//! order: first child (u32), child count (u16), symbol (u8), flags (u8, bit 0 = a word ends
//! here). A node's children are contiguous and sorted by symbol, so lookups are a short binary
//! search and the table is used in place.

use std::collections::BTreeMap;

use crate::{Alphabet, Error, Result};

const MAGIC: &[u8; 8] = b"HKNTRIE1";
const HEADER: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    first_child: u32,
    n_children: u16,
    symbol: u8,
    word_end: bool,
}

/// A set of words over an alphabet, as a prefix tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabTrie {
    nodes: Vec<Node>,
    alphabet_len: u32,
    words: u32,
}

impl VocabTrie {
    /// The root node (the empty prefix).
    pub const ROOT: u32 = 0;

    /// Build from words; words with characters outside the alphabet (or holding its space) are
    /// skipped and counted in the second value.
    pub fn from_words<'a>(
        alphabet: &Alphabet,
        words: impl IntoIterator<Item = &'a str>,
    ) -> (Self, usize) {
        let mut tree: Vec<BTreeMap<u32, usize>> = vec![BTreeMap::new()];
        let mut ends = vec![false];
        let mut skipped = 0;
        let mut count = 0u32;
        for w in words {
            let Ok(ids) = alphabet.encode(w) else {
                skipped += 1;
                continue;
            };
            if ids.is_empty() || ids.iter().any(|&i| Some(i) == alphabet.space()) {
                skipped += 1;
                continue;
            }
            let mut at = 0;
            for s in ids {
                at = match tree[at].get(&s) {
                    Some(&c) => c,
                    None => {
                        tree.push(BTreeMap::new());
                        ends.push(false);
                        let c = tree.len() - 1;
                        tree[at].insert(s, c);
                        c
                    }
                };
            }
            if !ends[at] {
                ends[at] = true;
                count += 1;
            }
        }
        // Breadth-first renumbering makes every node's children one contiguous run.
        let mut nodes = vec![Node { first_child: 0, n_children: 0, symbol: 0, word_end: ends[0] }];
        let mut queue = std::collections::VecDeque::from([(0usize, 0usize)]);
        while let Some((old, new)) = queue.pop_front() {
            nodes[new].first_child = nodes.len() as u32;
            nodes[new].n_children = tree[old].len() as u16;
            for (&s, &c) in &tree[old] {
                queue.push_back((c, nodes.len()));
                nodes.push(Node {
                    first_child: 0,
                    n_children: 0,
                    symbol: s as u8,
                    word_end: ends[c],
                });
            }
        }
        (VocabTrie { nodes, alphabet_len: alphabet.len() as u32, words: count }, skipped)
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.words as usize
    }

    /// Whether the trie holds no word.
    pub fn is_empty(&self) -> bool {
        self.words == 0
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Size of the alphabet the trie was built over.
    pub fn alphabet_len(&self) -> usize {
        self.alphabet_len as usize
    }

    /// The node reached from `node` by `symbol`, if any word continues that way.
    pub fn child(&self, node: u32, symbol: u32) -> Option<u32> {
        let n = self.nodes.get(node as usize)?;
        let lo = n.first_child as usize;
        let kids = self.nodes.get(lo..lo + usize::from(n.n_children))?;
        kids.binary_search_by_key(&symbol, |k| u32::from(k.symbol)).ok().map(|i| (lo + i) as u32)
    }

    /// The children of `node`.
    pub fn children(&self, node: u32) -> std::ops::Range<u32> {
        self.nodes
            .get(node as usize)
            .map_or(0..0, |n| n.first_child..n.first_child + u32::from(n.n_children))
    }

    /// Whether a word ends at `node`.
    pub fn is_word(&self, node: u32) -> bool {
        self.nodes.get(node as usize).is_some_and(|n| n.word_end)
    }

    /// Whether `word` (alphabet indices) is in the trie.
    pub fn contains(&self, word: &[u32]) -> bool {
        let mut at = Self::ROOT;
        for &s in word {
            match self.child(at, s) {
                Some(c) => at = c,
                None => return false,
            }
        }
        self.is_word(at)
    }

    /// The file form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut table = Vec::with_capacity(self.nodes.len() * 8);
        for n in &self.nodes {
            table.extend_from_slice(&n.first_child.to_le_bytes());
            table.extend_from_slice(&n.n_children.to_le_bytes());
            table.push(n.symbol);
            table.push(u8::from(n.word_end));
        }
        let mut out = Vec::with_capacity(HEADER + table.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.alphabet_len.to_le_bytes());
        out.extend_from_slice(&(self.nodes.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.words.to_le_bytes());
        out.extend_from_slice(&fnv1a(&table).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&table);
        out
    }

    /// Parse and fully validate the file form: a damaged file is an error, never a panic or
    /// a lookup outside the table.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let bad = |m: String| Error::Trie(m);
        if b.len() < HEADER || &b[..8] != MAGIC {
            return Err(bad("not a Harken vocabulary trie (bad magic or short file)".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let alphabet_len = u32_at(8);
        let n = u32_at(12) as usize;
        let words = u32_at(16);
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&b[20..28]);
        let table = &b[HEADER..];
        if n == 0 || table.len() != n * 8 {
            return Err(bad(format!(
                "header says {n} nodes, the file holds {} bytes of nodes",
                table.len()
            )));
        }
        if fnv1a(table) != u64::from_le_bytes(sum) {
            return Err(bad("checksum mismatch: the file is damaged".into()));
        }
        let mut nodes = Vec::with_capacity(n);
        let mut word_ends = 0u32;
        for (i, r) in table.chunks_exact(8).enumerate() {
            let node = Node {
                first_child: u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
                n_children: u16::from_le_bytes([r[4], r[5]]),
                symbol: r[6],
                word_end: r[7] & 1 == 1,
            };
            let end = node.first_child as usize + usize::from(node.n_children);
            if node.n_children > 0 && (node.first_child as usize <= i || end > n) {
                return Err(bad(format!("node {i}: children outside the table")));
            }
            if u32::from(node.symbol) >= alphabet_len.max(1) || r[7] > 1 {
                return Err(bad(format!("node {i}: bad symbol or flags")));
            }
            word_ends += u32::from(node.word_end);
            nodes.push(node);
        }
        for (i, node) in nodes.iter().enumerate() {
            // A leaf's `first_child` is never followed, so it may hold anything: only a node
            // with children has its range checked (above) and read.
            let lo = node.first_child as usize;
            let kids = nodes.get(lo..lo + usize::from(node.n_children)).unwrap_or(&[]);
            if kids.windows(2).any(|w| w[0].symbol >= w[1].symbol) {
                return Err(bad(format!("node {i}: children not sorted")));
            }
        }
        if word_ends != words {
            return Err(bad(format!("header says {words} words, the table ends {word_ends}")));
        }
        Ok(VocabTrie { nodes, alphabet_len, words })
    }
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `trie` fuzz target: a leaf whose `first_child` points past the table made
    /// the sortedness check slice out of range.
    #[test]
    fn a_leaf_pointing_outside_the_table_is_not_a_panic() {
        let crash: &[u8] = &[
            72, 75, 78, 84, 82, 73, 69, 49, 28, 0, 0, 0, 10, 0, 0, 0, 3, 0, 0, 0, 62, 109, 155,
            145, 165, 165, 227, 82, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1, 0, 3, 0, 5,
            0, 0, 0, 1, 0, 19, 0, 6, 0, 0, 0, 1, 0, 20, 0, 7, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 1,
            0, 1, 0, 9, 0, 0, 0, 1, 0, 8, 0, 10, 16, 0, 0, 0, 0, 20, 1, 10, 0, 0, 0, 0, 0, 20, 1,
            10, 0, 0, 0, 0, 0, 5, 1,
        ];
        // Valid or not, it must come back as a value; a leaf's pointer is never followed.
        if let Ok(t) = VocabTrie::from_bytes(crash) {
            for node in 0..t.nodes() as u32 {
                for c in t.children(node) {
                    assert!((c as usize) < t.nodes());
                }
            }
        }
    }

    fn trie() -> (Alphabet, VocabTrie) {
        let a = Alphabet::english();
        let (t, skipped) = VocabTrie::from_words(
            &a,
            ["the", "then", "cat", "cats", "a", "café", "two words", "the"],
        );
        assert_eq!(skipped, 2);
        (a, t)
    }

    #[test]
    fn lookups() {
        let (a, t) = trie();
        assert_eq!(t.len(), 5);
        for w in ["the", "then", "cat", "cats", "a"] {
            assert!(t.contains(&a.encode(w).unwrap()), "{w}");
        }
        for w in ["th", "ca", "dog", "catss", ""] {
            assert!(!t.contains(&a.encode(w).unwrap()), "{w}");
        }
        let th = a.encode("th").unwrap();
        let node = th.iter().try_fold(VocabTrie::ROOT, |n, &s| t.child(n, s)).unwrap();
        assert!(!t.is_word(node));
        assert!(t.child(node, a.index('x').unwrap()).is_none());
    }

    #[test]
    fn round_trip_and_damage() {
        let (_, t) = trie();
        let bytes = t.to_bytes();
        assert_eq!(VocabTrie::from_bytes(&bytes).unwrap(), t);
        // Every single-byte change and every truncation is refused or yields a valid trie.
        for i in 0..bytes.len() {
            for flip in [1u8, 0x80, 0xff] {
                let mut m = bytes.clone();
                m[i] ^= flip;
                if let Ok(t2) = VocabTrie::from_bytes(&m) {
                    assert!(t2.nodes() > 0);
                }
            }
            assert!(VocabTrie::from_bytes(&bytes[..i]).is_err());
        }
    }
}
