//! Reads the float initializers (the weights) of an ONNX model file.
//!
//! Why by hand: Harken needs only the named weight tensors of one small ONNX file, never its
//! graph; a protobuf code generator or an ONNX runtime would be a build-time dependency for
//! what is a walk over four message types. Every length is checked against the buffer, so a
//! damaged file is an error, never a panic.
//!
//! Wire format: `ModelProto.graph` (field 7) → `GraphProto.initializer` (field 5, repeated) →
//! `TensorProto { dims: 1, data_type: 2, name: 8, raw_data: 9, float_data: 4 }`.

use crate::Error;

/// One float tensor: its name, shape and values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tensor {
    pub(crate) name: String,
    pub(crate) dims: Vec<usize>,
    pub(crate) data: Vec<f32>,
}

const FLOAT: u64 = 1;

fn bad(what: &str) -> Error {
    Error::Weights(format!("not a readable ONNX file: {what}"))
}

struct Reader<'a> {
    buf: &'a [u8],
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or_else(|| bad("truncated varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], Error> {
        let n = usize::try_from(n).map_err(|_| bad("length"))?;
        if n > self.buf.len() {
            return Err(bad("field runs past the end"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next field, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, Error> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let n = self.varint()?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            t => return Err(bad(&format!("wire type {t}"))),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn tensor(buf: &[u8]) -> Result<Option<Tensor>, Error> {
    let mut r = Reader { buf };
    let (mut name, mut dims, mut dtype, mut data) = (String::new(), Vec::new(), 0, Vec::new());
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (1, Value::Varint(d)) => dims.push(usize::try_from(d).map_err(|_| bad("dimension"))?),
            (1, Value::Bytes(packed)) => {
                let mut p = Reader { buf: packed };
                while !p.buf.is_empty() {
                    dims.push(usize::try_from(p.varint()?).map_err(|_| bad("dimension"))?);
                }
            }
            (2, Value::Varint(t)) => dtype = t,
            (8, Value::Bytes(b)) => name = String::from_utf8_lossy(b).into_owned(),
            (9 | 4, Value::Bytes(b)) => data = floats(b),
            _ => {}
        }
    }
    if dtype != FLOAT {
        return Ok(None);
    }
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("shape overflows"))?;
    if count != data.len() {
        return Err(bad(&format!(
            "{name}: shape {dims:?} holds {count} values, data has {}",
            data.len()
        )));
    }
    Ok(Some(Tensor { name, dims, data }))
}

/// Every float initializer of the model's main graph.
pub(crate) fn initializers(model: &[u8]) -> Result<Vec<Tensor>, Error> {
    let mut r = Reader { buf: model };
    let mut out = Vec::new();
    let mut graphs = 0;
    while let Some((field, value)) = r.field()? {
        if let (7, Value::Bytes(graph)) = (field, value) {
            graphs += 1;
            let mut g = Reader { buf: graph };
            while let Some((f, v)) = g.field()? {
                if let (5, Value::Bytes(t)) = (f, v) {
                    out.extend(tensor(t)?);
                }
            }
        }
    }
    if graphs == 0 {
        return Err(bad("no graph"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(field: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    fn model(name: &str, dims: &[u64], values: &[f32]) -> Vec<u8> {
        let mut t = Vec::new();
        for &d in dims {
            varint(1 << 3, &mut t);
            varint(d, &mut t);
        }
        varint(2 << 3, &mut t);
        varint(FLOAT, &mut t);
        bytes_field(8, name.as_bytes(), &mut t);
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes_field(9, &raw, &mut t);
        let mut g = Vec::new();
        bytes_field(5, &t, &mut g);
        let mut m = Vec::new();
        varint(1 << 3, &mut m); // ir_version
        varint(8, &mut m);
        bytes_field(7, &g, &mut m);
        m
    }

    #[test]
    fn reads_a_float_initializer() {
        let m = model("w", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let t = initializers(&m).expect("parse");
        assert_eq!(
            t,
            vec![Tensor {
                name: "w".into(),
                dims: vec![2, 3],
                data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
            }]
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let m = model("weights", &[4], &[1.0, 2.0, 3.0, 4.0]);
        for n in 0..m.len() {
            // Any prefix either fails cleanly or (at field boundaries) parses to something.
            let _ = initializers(&m[..n]);
        }
        assert!(initializers(&m[..m.len() - 1]).is_err());
        assert!(initializers(b"").is_err());
    }

    #[test]
    fn a_shape_that_does_not_match_the_data_is_rejected() {
        let m = model("w", &[3, 3], &[1.0, 2.0]);
        assert!(initializers(&m).is_err());
    }
}
