//! Streaming ARPA reading and writing.
//!
//! The reader goes line by line (gzip is detected by its magic bytes) and never holds the text:
//! each n-gram becomes word ids and two floats in flat per-order arrays ([`Tables`]). ARPA lists
//! unigrams first, so ids are known before any higher order is read.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use crate::sort::{Order, Rec, Sorter, Spill};
use crate::{Error, MAX_ORDER, Result};

/// n-grams in flat arrays, one entry per order (index 0 = unigrams), records sorted by id tuple.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// Words, sorted; a word's id is its index.
    pub vocab: Vec<String>,
    /// For each order `k`: ids, `k` per record (unigrams: empty, the id is the index).
    pub ids: Vec<Vec<u32>>,
    /// For each order: log10 probabilities.
    pub prob: Vec<Vec<f32>>,
    /// For each order but the highest: log10 back-off weights.
    pub backoff: Vec<Vec<f32>>,
}

impl Tables {
    /// Highest order.
    pub fn order(&self) -> usize {
        self.prob.len()
    }

    /// Records of order `k` (1-based).
    pub fn count(&self, k: usize) -> usize {
        self.prob.get(k - 1).map_or(0, Vec::len)
    }
}

fn bad(line: usize, detail: impl Into<String>) -> Error {
    Error::Arpa { line, detail: detail.into() }
}

/// Open `path` (plain or gzip) for line reading.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, f))
    })
}

/// A line as text: UTF-8, or Latin-1 when it is not valid UTF-8 (older models, such as CMU
/// Sphinx's, carry Latin-1 words; decoding byte for byte keeps distinct words distinct).
pub(crate) fn decode_line(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Read an ARPA model into memory.
pub fn read(reader: impl BufRead) -> Result<Tables> {
    let mut sink = crate::sink::TablesSink::default();
    read_into(reader, &mut sink, 1 << 30, &std::env::temp_dir())?;
    Ok(sink.tables)
}

/// Read an ARPA model into `sink`, order by order. Each order's records are sorted by id
/// tuple within `memory` bytes, the rest on disk under `temp_dir`, so a model larger than
/// memory converts; the vocabulary and unigrams are held. Returns the n-gram counts.
pub fn read_into(
    mut reader: impl BufRead,
    sink: &mut dyn crate::sink::Sink,
    memory: usize,
    temp_dir: &Path,
) -> Result<Vec<usize>> {
    let mut line_no_counter = 0usize;
    let mut buf = Vec::new();
    let mut next = || -> Result<Option<(usize, String)>> {
        buf.clear();
        line_no_counter += 1;
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => Ok(None),
            Ok(_) => {
                while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                    buf.pop();
                }
                Ok(Some((line_no_counter, decode_line(&buf))))
            }
            Err(e) => Err(bad(line_no_counter, format!("unreadable: {e}"))),
        }
    };
    // Header: skip until \data\, then "ngram k=N" lines.
    loop {
        match next()? {
            Some((_, l)) if l.trim() == "\\data\\" => break,
            Some(_) => {}
            None => return Err(bad(0, "no \\data\\ section: not an ARPA file")),
        }
    }
    let mut counts: Vec<usize> = Vec::new();
    let mut line_no;
    let mut line;
    loop {
        let Some((n, l)) = next()? else { return Err(bad(0, "ends inside the header")) };
        line_no = n;
        let t = l.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(rest) = t.strip_prefix("ngram ") {
            let (k, c) = rest.split_once('=').ok_or_else(|| bad(n, "expected `ngram K=COUNT`"))?;
            let k: usize = k.trim().parse().map_err(|_| bad(n, "bad order in ngram line"))?;
            let c: usize = c.trim().parse().map_err(|_| bad(n, "bad count in ngram line"))?;
            if k != counts.len() + 1 {
                return Err(bad(n, format!("ngram {k} listed out of order")));
            }
            counts.push(c);
            continue;
        }
        line = l;
        break;
    }
    let order = counts.len();
    if order == 0 || order > MAX_ORDER {
        return Err(bad(line_no, format!("order {order}: between 1 and {MAX_ORDER} supported")));
    }
    let spill = Spill::new(temp_dir)?;
    let mut vocab: Vec<String> = Vec::new();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut raw_unigrams: Vec<(String, f32, f32)> = Vec::new();
    for k in 1..=order {
        // Find the "\k-grams:" line.
        loop {
            let s = line.trim();
            if s == format!("\\{k}-grams:") {
                break;
            }
            if !s.is_empty() {
                return Err(bad(line_no, format!("expected \\{k}-grams:, found {s:?}")));
            }
            let Some((n, l)) = next()? else {
                return Err(bad(line_no, format!("no \\{k}-grams: section")));
            };
            line_no = n;
            line = l;
        }
        let mut sorter = Sorter::new(&spill, k, Order::Lex, memory, false);
        let mut read_k = 0usize;
        loop {
            let Some((n, l)) = next()? else {
                return Err(bad(line_no, "file ends inside a section"));
            };
            line_no = n;
            let s = l.trim();
            if s.is_empty() {
                continue;
            }
            if s.starts_with('\\') {
                line = l;
                break;
            }
            let mut fields = s.split_whitespace();
            let prob: f32 = fields
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad(n, "expected a log10 probability"))?;
            let mut words = [""; MAX_ORDER];
            for w in words.iter_mut().take(k) {
                *w = fields.next().ok_or_else(|| bad(n, format!("expected {k} words")))?;
            }
            let bo: f32 = match fields.next() {
                Some(b) if k < order => b.parse().map_err(|_| bad(n, "bad back-off weight"))?,
                Some(_) => return Err(bad(n, "highest-order n-gram with a back-off weight")),
                None => 0.0,
            };
            if fields.next().is_some() {
                return Err(bad(n, "too many fields"));
            }
            if k == 1 {
                raw_unigrams.push((words[0].to_owned(), prob, bo));
            } else {
                let mut g = [0u32; MAX_ORDER];
                for (slot, w) in g.iter_mut().zip(&words[..k]) {
                    *slot = *index
                        .get(*w)
                        .ok_or_else(|| bad(n, format!("word {w:?} has no unigram")))?;
                }
                let (a, b) = (u64::from(prob.to_bits()), u64::from(bo.to_bits()));
                sorter.push(Rec { g, a, b })?;
            }
            read_k += 1;
        }
        if read_k != counts[k - 1] {
            return Err(bad(
                line_no,
                format!("header says {} {k}-grams, the section holds {read_k}", counts[k - 1]),
            ));
        }
        if k == 1 {
            raw_unigrams.sort_by(|a, b| a.0.cmp(&b.0));
            if raw_unigrams.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(bad(line_no, "duplicate unigram"));
            }
            let (mut probs, mut bos) = (Vec::new(), Vec::new());
            for (i, (w, p, b)) in raw_unigrams.drain(..).enumerate() {
                index.insert(w.clone(), i as u32);
                vocab.push(w);
                probs.push(p);
                bos.push(b);
            }
            sink.begin(&vocab, &counts, &probs, (order > 1).then_some(bos.as_slice()))?;
        } else {
            let mut sorted = sorter.finish()?;
            while let Some(r) = sorted.next()? {
                let bo = (k < order).then(|| f32::from_bits(r.b as u32));
                sink.record(&r.g[..k], f32::from_bits(r.a as u32), bo)?;
            }
        }
    }
    if line.trim() != "\\end\\" {
        return Err(bad(line_no, "missing \\end\\"));
    }
    sink.finish()?;
    Ok(counts)
}

/// Sort order-`k` records by their id tuples, permuting the values alongside.
pub(crate) fn sort_records(
    k: usize,
    ids: &mut Vec<u32>,
    prob: &mut Vec<f32>,
    bo: Option<&mut Vec<f32>>,
) {
    let n = prob.len();
    let mut perm: Vec<u32> = (0..n as u32).collect();
    perm.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize * k, b as usize * k);
        ids[a..a + k].cmp(&ids[b..b + k])
    });
    let mut new_ids = Vec::with_capacity(ids.len());
    for &i in &perm {
        let i = i as usize * k;
        new_ids.extend_from_slice(&ids[i..i + k]);
    }
    *ids = new_ids;
    *prob = perm.iter().map(|&i| prob[i as usize]).collect();
    if let Some(bo) = bo {
        *bo = perm.iter().map(|&i| bo[i as usize]).collect();
    }
}

/// Write `t` as ARPA.
pub fn write(t: &Tables, out: &mut impl Write) -> std::io::Result<()> {
    crate::sink::feed(t, &mut crate::sink::ArpaSink::new(out)).map(|_| ()).map_err(|e| match e {
        Error::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    })
}
