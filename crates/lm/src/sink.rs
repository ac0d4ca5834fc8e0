//! Where a model goes, order by order: [`Tables`] in memory, ARPA text or the binary format.
//! The estimator ([`crate::build`]) and the converters all write through a [`Sink`], so a model
//! built from text larger than memory is written as its records arrive and never has to be
//! held whole.

use crate::arpa::Tables;
use crate::{Error, Result};

/// Receives a model: [`Sink::begin`] once, then every record of orders 2..N in ascending id
/// order (order 2 first), then [`Sink::finish`].
pub trait Sink {
    /// The sorted vocabulary, the n-gram count of every order, and the unigrams' log10
    /// probabilities and (order > 1) back-offs, indexed by word id.
    fn begin(
        &mut self,
        vocab: &[String],
        counts: &[usize],
        uni_prob: &[f32],
        uni_backoff: Option<&[f32]>,
    ) -> Result<()>;
    /// One record of order `ids.len()`; `backoff` below the highest order.
    fn record(&mut self, ids: &[u32], prob: f32, backoff: Option<f32>) -> Result<()>;
    /// After the last record; returns the bytes written (0 in memory).
    fn finish(&mut self) -> Result<u64>;
}

/// Collects a model into [`Tables`].
#[derive(Debug, Default)]
pub struct TablesSink {
    /// The model, complete after [`Sink::finish`].
    pub tables: Tables,
}

impl Sink for TablesSink {
    fn begin(
        &mut self,
        vocab: &[String],
        counts: &[usize],
        uni_prob: &[f32],
        uni_backoff: Option<&[f32]>,
    ) -> Result<()> {
        let order = counts.len();
        let t = &mut self.tables;
        t.vocab = vocab.to_vec();
        t.ids = counts.iter().enumerate().map(|(k, &n)| Vec::with_capacity(n * (k + 1))).collect();
        t.ids[0] = Vec::new();
        t.prob = counts.iter().map(|&n| Vec::with_capacity(n)).collect();
        t.prob[0] = uni_prob.to_vec();
        t.backoff = counts[..order - 1].iter().map(|&n| Vec::with_capacity(n)).collect();
        if let (Some(first), Some(bo)) = (t.backoff.first_mut(), uni_backoff) {
            *first = bo.to_vec();
        }
        Ok(())
    }

    fn record(&mut self, ids: &[u32], prob: f32, backoff: Option<f32>) -> Result<()> {
        let k = ids.len();
        let t = &mut self.tables;
        t.ids[k - 1].extend_from_slice(ids);
        t.prob[k - 1].push(prob);
        if let Some(b) = backoff {
            t.backoff[k - 1].push(b);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<u64> {
        Ok(0)
    }
}

/// Feed tables to a sink.
pub fn feed(t: &Tables, sink: &mut dyn Sink) -> Result<u64> {
    let order = t.order();
    let counts: Vec<usize> = (1..=order).map(|k| t.count(k)).collect();
    sink.begin(&t.vocab, &counts, &t.prob[0], t.backoff.first().map(Vec::as_slice))?;
    for k in 2..=order {
        for i in 0..t.count(k) {
            let bo = if k < order { Some(t.backoff[k - 1][i]) } else { None };
            sink.record(&t.ids[k - 1][i * k..(i + 1) * k], t.prob[k - 1][i], bo)?;
        }
    }
    sink.finish()
}

/// Writes ARPA text as records arrive.
pub struct ArpaSink<W: std::io::Write> {
    out: W,
    vocab: Vec<String>,
    order: usize,
    current: usize,
    bytes: CountingBytes,
}

#[derive(Default)]
struct CountingBytes(u64);

impl<W: std::io::Write> ArpaSink<W> {
    /// ARPA into `out`.
    pub fn new(out: W) -> Self {
        ArpaSink { out, vocab: Vec::new(), order: 0, current: 1, bytes: CountingBytes::default() }
    }

    fn put(&mut self, s: &str) -> Result<()> {
        self.bytes.0 += s.len() as u64;
        self.out.write_all(s.as_bytes()).map_err(io)
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Io { path: "(output)".into(), source: e }
}

impl<W: std::io::Write> Sink for ArpaSink<W> {
    fn begin(
        &mut self,
        vocab: &[String],
        counts: &[usize],
        uni_prob: &[f32],
        uni_backoff: Option<&[f32]>,
    ) -> Result<()> {
        self.vocab = vocab.to_vec();
        self.order = counts.len();
        let mut s = String::from("\\data\\\n");
        for (k, n) in counts.iter().enumerate() {
            s += &format!("ngram {}={n}\n", k + 1);
        }
        s += "\n\\1-grams:\n";
        self.put(&s)?;
        for (i, w) in vocab.iter().enumerate() {
            let line = match uni_backoff {
                Some(bo) => format!("{}\t{w}\t{}\n", uni_prob[i], bo[i]),
                None => format!("{}\t{w}\n", uni_prob[i]),
            };
            self.put(&line)?;
        }
        Ok(())
    }

    fn record(&mut self, ids: &[u32], prob: f32, backoff: Option<f32>) -> Result<()> {
        let k = ids.len();
        while self.current < k {
            self.current += 1;
            let s = format!("\n\\{}-grams:\n", self.current);
            self.put(&s)?;
        }
        let mut line = prob.to_string();
        for (j, &id) in ids.iter().enumerate() {
            line.push(if j == 0 { '\t' } else { ' ' });
            line += self.vocab.get(id as usize).map_or("<unk>", String::as_str);
        }
        if let Some(b) = backoff {
            line += &format!("\t{b}");
        }
        line.push('\n');
        self.put(&line)
    }

    fn finish(&mut self) -> Result<u64> {
        // Orders without records still get their section.
        while self.current < self.order {
            self.current += 1;
            let s = format!("\n\\{}-grams:\n", self.current);
            self.put(&s)?;
        }
        self.put("\n\\end\\\n")?;
        self.out.flush().map_err(io)?;
        Ok(self.bytes.0)
    }
}
