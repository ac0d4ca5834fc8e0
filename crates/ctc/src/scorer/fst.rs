//! OpenFST's `ConstFst` over `StdArc` (the `const` / `standard` binary format), the vocabulary
//! trie of a DeepSpeech `.scorer`: read in place from a memory-mapped file and written from a
//! word list.
//!
//! Written by hand: no Rust crate reads or writes OpenFST's binary format, and the part a
//! scorer needs is small. Layout (OpenFST 1.6, little-endian):
//! - header: magic `2125659606` (i32); the FST type `"const"` and arc type `"standard"` (each
//!   an i32 length and bytes); version (i32: 1 aligned, 2 unaligned); flags (i32: 1 input
//!   symbols, 2 output symbols, 4 aligned); properties (u64); start, state count, arc count
//!   (i64 each);
//! - with the aligned flag (or version 1), zero padding to a multiple of 16 of the *file*
//!   offset, then the states, 20 bytes each (final weight f32, first arc u32, arc count u32,
//!   input-epsilon count u32, output-epsilon count u32), padding again, then the arcs, 16
//!   bytes each (input label i32, output label i32, weight f32, next state i32), each state's
//!   arcs sorted by input label.
//!
//! The decoder only asks two questions of a state — "which state follows on label `l`" and
//! "is this state final" — so any deterministic automaton for the same word set decodes the
//! same; the writer builds the minimal one (Daciuk's incremental construction over the sorted
//! words) rather than reproducing OpenFST's `Determinize` + `Minimize` state numbering.

use std::collections::HashMap;
use std::io::Write;

use super::{Bytes, ScorerError};

const MAGIC: i32 = 2_125_659_606;
const ALIGN: usize = 16;
const STATE_BYTES: usize = 20;
const ARC_BYTES: usize = 16;
const FLAG_ISYMBOLS: i32 = 1;
const FLAG_OSYMBOLS: i32 = 2;
const FLAG_ALIGNED: i32 = 4;

/// Properties the writer declares (all true of a trimmed, minimal, acyclic, unweighted
/// deterministic acceptor with sorted arcs): expanded, acceptor, input/output deterministic,
/// no epsilons, label-sorted, unweighted, acyclic, initial-acyclic, accessible, co-accessible.
const PROPERTIES: u64 = 0x1
    | 0x1_0000
    | 0x4_0000
    | 0x10_0000
    | 0x80_0000
    | 0x200_0000
    | 0x800_0000
    | 0x1000_0000
    | 0x4000_0000
    | 0x2_0000_0000
    | 0x8_0000_0000
    | 0x20_0000_0000
    | 0x100_0000_0000
    | 0x400_0000_0000;

fn bad(detail: impl Into<String>) -> ScorerError {
    ScorerError::Trie(detail.into())
}

/// A cursor over the mapped bytes that refuses to read past the end.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], ScorerError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| {
            bad(format!("the vocabulary trie ends inside its {what} (offset {})", self.pos))
        })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn i32(&mut self, what: &str) -> Result<i32, ScorerError> {
        let s = self.take(4, what)?;
        Ok(i32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn i64(&mut self, what: &str) -> Result<i64, ScorerError> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(i64::from_le_bytes(a))
    }
    fn string(&mut self, what: &str) -> Result<String, ScorerError> {
        let n = self.i32(what)?;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= 64)
            .ok_or_else(|| bad(format!("bad {what} length {n}")))?;
        Ok(String::from_utf8_lossy(self.take(n, what)?).into_owned())
    }
    fn align(&mut self) {
        self.pos = self.pos.div_ceil(ALIGN) * ALIGN;
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// A `ConstFst` in a mapped file: the header is parsed at load, states and arcs are read
/// where they lie, bounds-checked on every access (a damaged trie answers "no arc", never
/// reads out of bounds; [`ConstFst::verify`] checks it whole).
#[derive(Clone)]
pub struct ConstFst {
    data: Bytes,
    states: usize,
    arcs: usize,
    n_states: usize,
    n_arcs: usize,
    start: Option<u32>,
    end: usize,
}

impl std::fmt::Debug for ConstFst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstFst")
            .field("states", &self.n_states)
            .field("arcs", &self.n_arcs)
            .field("start", &self.start)
            .finish()
    }
}

impl ConstFst {
    /// Parse the FST that starts at byte `offset` of `data` (alignment counts from the start
    /// of `data`, as OpenFST counts from the start of the file).
    pub fn parse(data: Bytes, offset: usize) -> Result<ConstFst, ScorerError> {
        let b: &[u8] = &data;
        let mut r = Reader { b, pos: offset };
        if r.i32("header")? != MAGIC {
            return Err(bad("no OpenFST header (wrong magic number)"));
        }
        let fst_type = r.string("FST type")?;
        if fst_type != "const" {
            return Err(bad(format!("the FST is of type {fst_type:?}, not \"const\"")));
        }
        let arc_type = r.string("arc type")?;
        if arc_type != "standard" {
            return Err(bad(format!("the FST has arcs of type {arc_type:?}, not \"standard\"")));
        }
        let version = r.i32("header")?;
        if !(1..=2).contains(&version) {
            return Err(bad(format!("unsupported ConstFst version {version}")));
        }
        let flags = r.i32("header")?;
        if flags & (FLAG_ISYMBOLS | FLAG_OSYMBOLS) != 0 {
            return Err(bad("the FST carries symbol tables, which a scorer's trie never has"));
        }
        r.take(8, "header")?; // properties: advisory
        let start = r.i64("header")?;
        let n_states = r.i64("header")?;
        let n_arcs = r.i64("header")?;
        let count = |v: i64, what: &str| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v <= u32::MAX as usize)
                .ok_or_else(|| bad(format!("bad {what} count {v}")))
        };
        let n_states = count(n_states, "state")?;
        let n_arcs = count(n_arcs, "arc")?;
        let aligned = version == 1 || flags & FLAG_ALIGNED != 0;
        if aligned {
            r.align();
        }
        let states = r.pos;
        r.take(n_states * STATE_BYTES, "states")?;
        if aligned {
            r.align();
        }
        let arcs = r.pos;
        r.take(n_arcs * ARC_BYTES, "arcs")?;
        let start = u32::try_from(start).ok().filter(|&s| (s as usize) < n_states);
        Ok(ConstFst { end: r.pos, data, states, arcs, n_states, n_arcs, start })
    }

    /// Where the FST ends in the data.
    pub fn end(&self) -> usize {
        self.end
    }

    /// State count.
    pub fn num_states(&self) -> usize {
        self.n_states
    }

    /// Arc count.
    pub fn num_arcs(&self) -> usize {
        self.n_arcs
    }

    /// The start state (`None` for an empty FST).
    pub fn start(&self) -> Option<u32> {
        self.start
    }

    fn state(&self, s: u32) -> Option<(f32, usize, usize)> {
        if s as usize >= self.n_states {
            return None;
        }
        let at = self.states + s as usize * STATE_BYTES;
        let w = f32::from_bits(u32_at(&self.data, at)?);
        let pos = u32_at(&self.data, at + 4)? as usize;
        let n = u32_at(&self.data, at + 8)? as usize;
        (pos.checked_add(n)? <= self.n_arcs).then_some((w, pos, n))
    }

    fn arc(&self, i: usize) -> Option<(u32, u32)> {
        let at = self.arcs + i * ARC_BYTES;
        Some((u32_at(&self.data, at)?, u32_at(&self.data, at + 12)?))
    }

    /// Whether `s` is final (its weight is not the tropical zero, +∞).
    pub fn is_final(&self, s: u32) -> bool {
        self.state(s).is_some_and(|(w, _, _)| w != f32::INFINITY)
    }

    /// The state reached from `s` on input `label` (OpenFST's `SortedMatcher::Find` for a
    /// non-epsilon label: binary search over the state's sorted arcs).
    pub fn find(&self, s: u32, label: u32) -> Option<u32> {
        let (_, pos, n) = self.state(s)?;
        let (mut lo, mut hi) = (pos, pos + n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (l, next) = self.arc(mid)?;
            match l.cmp(&label) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    return ((next as usize) < self.n_states).then_some(next);
                }
            }
        }
        None
    }

    /// Check every state and arc: arc ranges inside the arc table, next states inside the
    /// state table, arcs of each state sorted by input label.
    pub fn verify(&self) -> Result<(), ScorerError> {
        for s in 0..self.n_states as u32 {
            let (_, pos, n) = self
                .state(s)
                .ok_or_else(|| bad(format!("state {s} points past the end of the arc table")))?;
            let mut last = None;
            for i in pos..pos + n {
                let (l, next) = self.arc(i).ok_or_else(|| bad("arc table truncated"))?;
                if next as usize >= self.n_states {
                    return Err(bad(format!("arc {i} leads to state {next}, past the last")));
                }
                if last.is_some_and(|p| p >= l) {
                    return Err(bad(format!("the arcs of state {s} are not sorted by label")));
                }
                last = Some(l);
            }
        }
        Ok(())
    }

    /// Every label sequence the FST accepts, in label order (at most `limit`).
    pub fn words(&self, limit: usize) -> Vec<Vec<u32>> {
        let mut out = Vec::new();
        let Some(start) = self.start else { return out };
        // Depth-first with an explicit stack of (state, next arc index, end); `path` holds the
        // labels taken. Acyclic tries are the norm; the depth cap guards a cyclic FST.
        let mut path: Vec<u32> = Vec::new();
        let mut stack: Vec<(usize, usize)> = Vec::new();
        let push = |s: u32, stack: &mut Vec<(usize, usize)>| {
            if let Some((_, pos, n)) = self.state(s) {
                stack.push((pos, pos + n));
            }
        };
        if self.is_final(start) {
            out.push(Vec::new());
        }
        push(start, &mut stack);
        while let Some(top) = stack.last_mut() {
            if out.len() >= limit {
                break;
            }
            if top.0 >= top.1 || path.len() > 4096 {
                stack.pop();
                path.pop();
                continue;
            }
            let i = top.0;
            top.0 += 1;
            let Some((l, next)) = self.arc(i) else { continue };
            path.push(l);
            if self.is_final(next) {
                out.push(path.clone());
            }
            let before = stack.len();
            push(next, &mut stack);
            if stack.len() == before {
                path.pop();
            }
        }
        out
    }
}

/// A state of the automaton being built: final flag and (label, target) arcs, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BuildState {
    is_final: bool,
    arcs: Vec<(u32, u32)>,
}

/// The minimal deterministic acyclic automaton of a word set (labels > 0).
#[derive(Debug, Default)]
pub struct FstBuilder {
    states: Vec<BuildState>,
    register: HashMap<BuildState, u32>,
    /// The unfinished path: states of the last word, not yet registered.
    open: Vec<BuildState>,
    last: Vec<u32>,
    words: usize,
}

impl FstBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        FstBuilder {
            open: vec![BuildState { is_final: false, arcs: Vec::new() }],
            ..Default::default()
        }
    }

    /// Words added so far (duplicates counted once).
    pub fn len(&self) -> usize {
        self.words
    }

    /// Whether no word was added.
    pub fn is_empty(&self) -> bool {
        self.words == 0
    }

    /// Add a word; words must come in ascending label order (duplicates are ignored).
    pub fn add(&mut self, word: &[u32]) -> Result<(), ScorerError> {
        if word.is_empty() || word.contains(&0) {
            return Err(bad("a vocabulary word must be non-empty and free of label 0"));
        }
        if self.words > 0 {
            match word.cmp(&self.last) {
                std::cmp::Ordering::Less => {
                    return Err(bad("vocabulary words must be added in sorted order"));
                }
                std::cmp::Ordering::Equal => return Ok(()),
                std::cmp::Ordering::Greater => {}
            }
        }
        let common = word.iter().zip(&self.last).take_while(|(a, b)| a == b).count();
        self.freeze(common);
        for &l in &word[common..] {
            let _ = l;
            self.open.push(BuildState { is_final: false, arcs: Vec::new() });
        }
        if let Some(s) = self.open.last_mut() {
            s.is_final = true;
        }
        self.last = word.to_vec();
        self.words += 1;
        Ok(())
    }

    /// Register the open states deeper than `depth` (replacing each by an equal registered
    /// state where one exists) and link them into their parents.
    fn freeze(&mut self, depth: usize) {
        while self.open.len() > depth + 1 {
            let Some(s) = self.open.pop() else { break };
            let id = match self.register.get(&s) {
                Some(&id) => id,
                None => {
                    let id = self.states.len() as u32;
                    self.states.push(s.clone());
                    self.register.insert(s, id);
                    id
                }
            };
            let label = self.last[self.open.len() - 1];
            if let Some(parent) = self.open.last_mut() {
                parent.arcs.push((label, id));
            }
        }
    }

    /// Finish and write the FST as OpenFST writes a `ConstFst` with alignment (version 1),
    /// `pos` being the file offset `out` starts at. Returns the bytes written.
    pub fn write(mut self, out: &mut impl Write, pos: u64) -> std::io::Result<u64> {
        self.freeze(0);
        let root = self.open.pop().unwrap_or(BuildState { is_final: false, arcs: Vec::new() });
        // Number states breadth-first from the start state so that it is state 0, as
        // OpenFST's minimization leaves it in practice.
        let mut all = self.states;
        all.push(root);
        let root_id = all.len() - 1;
        let mut order = vec![u32::MAX; all.len()];
        let mut queue = std::collections::VecDeque::from([root_id]);
        let mut seq: Vec<usize> = Vec::with_capacity(all.len());
        order[root_id] = 0;
        while let Some(s) = queue.pop_front() {
            seq.push(s);
            for &(_, t) in &all[s].arcs {
                if order[t as usize] == u32::MAX {
                    order[t as usize] = seq.len() as u32 + queue.len() as u32;
                    queue.push_back(t as usize);
                }
            }
        }
        let n_arcs: usize = seq.iter().map(|&s| all[s].arcs.len()).sum();
        let mut w = Counting { out, n: 0 };
        w.write_all(&MAGIC.to_le_bytes())?;
        for s in ["const", "standard"] {
            w.write_all(&(s.len() as i32).to_le_bytes())?;
            w.write_all(s.as_bytes())?;
        }
        w.write_all(&1i32.to_le_bytes())?;
        w.write_all(&FLAG_ALIGNED.to_le_bytes())?;
        w.write_all(&PROPERTIES.to_le_bytes())?;
        let start: i64 = if seq.is_empty() { -1 } else { 0 };
        w.write_all(&start.to_le_bytes())?;
        w.write_all(&(seq.len() as i64).to_le_bytes())?;
        w.write_all(&(n_arcs as i64).to_le_bytes())?;
        w.pad(pos)?;
        let mut first = 0u32;
        for &s in &seq {
            let st = &all[s];
            let weight = if st.is_final { 0.0f32 } else { f32::INFINITY };
            w.write_all(&weight.to_le_bytes())?;
            w.write_all(&first.to_le_bytes())?;
            w.write_all(&(st.arcs.len() as u32).to_le_bytes())?;
            w.write_all(&[0u8; 8])?;
            first += st.arcs.len() as u32;
        }
        w.pad(pos)?;
        for &s in &seq {
            let mut arcs = all[s].arcs.clone();
            arcs.sort_unstable();
            for (l, t) in arcs {
                w.write_all(&l.to_le_bytes())?;
                w.write_all(&l.to_le_bytes())?;
                w.write_all(&0.0f32.to_le_bytes())?;
                w.write_all(&order[t as usize].to_le_bytes())?;
            }
        }
        Ok(w.n)
    }
}

/// A writer that counts its bytes, for OpenFST's alignment padding.
struct Counting<'a, W: Write> {
    out: &'a mut W,
    n: u64,
}

impl<W: Write> Counting<'_, W> {
    fn pad(&mut self, base: u64) -> std::io::Result<()> {
        let at = base + self.n;
        let pad = (ALIGN as u64 - at % ALIGN as u64) % ALIGN as u64;
        self.write_all(&vec![0u8; pad as usize])
    }
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(words: &[&[u32]], base: u64) -> Vec<u8> {
        let mut sorted: Vec<Vec<u32>> = words.iter().map(|w| w.to_vec()).collect();
        sorted.sort();
        let mut b = FstBuilder::new();
        for w in &sorted {
            b.add(w).unwrap();
        }
        let mut out = vec![0xAA; base as usize];
        b.write(&mut out, base).unwrap();
        out
    }

    #[test]
    fn accepts_exactly_its_words_at_any_offset() {
        let words: &[&[u32]] = &[&[3, 1, 2, 9], &[3, 1, 9], &[3, 2, 2, 9], &[4, 9], &[5, 1, 2, 9]];
        for base in [0u64, 5, 16, 25] {
            let bytes = build(words, base);
            let fst = ConstFst::parse(Bytes::from(bytes), base as usize).unwrap();
            fst.verify().unwrap();
            assert_eq!(fst.end(), fst.data.len());
            let mut got = fst.words(100);
            got.sort();
            let mut want: Vec<Vec<u32>> = words.iter().map(|w| w.to_vec()).collect();
            want.sort();
            assert_eq!(got, want);
            let s = fst.start().unwrap();
            assert!(!fst.is_final(s));
            let s1 = fst.find(s, 3).unwrap();
            assert!(fst.find(s1, 9).is_none());
            assert!(fst.find(s, 6).is_none());
        }
    }

    #[test]
    fn shares_common_suffixes() {
        // "a b 9" and "c b 9" end the same way: the minimal automaton shares their tails.
        let bytes = build(&[&[1, 2, 9], &[3, 2, 9], &[4, 2, 9]], 0);
        let fst = ConstFst::parse(Bytes::from(bytes), 0).unwrap();
        assert_eq!(fst.num_states(), 4);
        assert_eq!(fst.num_arcs(), 5);
    }

    #[test]
    fn damaged_tries_are_errors_not_panics() {
        let bytes = build(&[&[1, 2, 9], &[1, 3, 9], &[2, 9]], 3);
        for cut in 0..bytes.len() {
            let _ = ConstFst::parse(Bytes::from(bytes[..cut].to_vec()), 3);
        }
        for i in 3..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5A;
            if let Ok(f) = ConstFst::parse(Bytes::from(b), 3) {
                let _ = f.verify();
                let _ = f.words(1000);
                if let Some(s) = f.start() {
                    let _ = f.find(s, 1);
                }
            }
        }
    }

    #[test]
    fn rejects_unsorted_input() {
        let mut b = FstBuilder::new();
        b.add(&[2, 1]).unwrap();
        assert!(b.add(&[1, 5]).is_err());
        assert!(b.add(&[]).is_err());
    }
}
