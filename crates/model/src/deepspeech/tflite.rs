//! A reader for TensorFlow Lite flatbuffers: the model's tensors, operators and buffers, read
//! in place from the mapped file with every offset bounds-checked.
//!
//! Written by hand, not generated: the `flatbuffers` crate needs code generated from
//! `schema.fbs` by `flatc` (tens of thousands of lines for the whole TFLite schema, and a
//! generator that is not in any registry here), while the DeepSpeech graph needs a dozen
//! fields of five tables. Each field below is named with its index in TFLite's `schema.fbs`
//! (schema version 3). A malformed file gives [`FbError`] with the offset, never a panic.

use std::ops::Range;

/// What is wrong with a flatbuffer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(super) struct FbError(pub String);

type Fb<T> = std::result::Result<T, FbError>;

fn err<T>(msg: impl Into<String>) -> Fb<T> {
    Err(FbError(msg.into()))
}

/// A bounds-checked view of the file's bytes.
#[derive(Clone, Copy)]
struct Buf<'a>(&'a [u8]);

impl<'a> Buf<'a> {
    fn bytes(&self, at: usize, len: usize) -> Fb<&'a [u8]> {
        match at.checked_add(len) {
            Some(end) if end <= self.0.len() => Ok(&self.0[at..end]),
            _ => {
                err(format!("{len} bytes at offset {at} run past the end ({} bytes)", self.0.len()))
            }
        }
    }
    fn u8(&self, at: usize) -> Fb<u8> {
        Ok(self.bytes(at, 1)?[0])
    }
    fn u16(&self, at: usize) -> Fb<u16> {
        let b = self.bytes(at, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&self, at: usize) -> Fb<u32> {
        let b = self.bytes(at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&self, at: usize) -> Fb<i32> {
        Ok(self.u32(at)? as i32)
    }
    fn u64(&self, at: usize) -> Fb<u64> {
        let b = self.bytes(at, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// The position an unsigned offset stored at `at` points to.
    fn follow(&self, at: usize) -> Fb<usize> {
        let off = self.u32(at)? as usize;
        let to = at.checked_add(off).filter(|&t| t < self.0.len());
        to.ok_or_else(|| FbError(format!("offset at {at} points past the end")))
    }
    fn table(&self, at: usize) -> Fb<Table<'a>> {
        let vt = (at as i64) - i64::from(self.i32(at)?);
        if vt < 0 {
            return err(format!("table at {at}: vtable before the start of the file"));
        }
        let vt = vt as usize;
        let vlen = self.u16(vt)? as usize;
        if vlen < 4 || !vlen.is_multiple_of(2) {
            return err(format!("table at {at}: vtable of {vlen} bytes"));
        }
        self.bytes(vt, vlen)?;
        Ok(Table { buf: *self, at, vt, fields: (vlen - 4) / 2 })
    }
}

/// One flatbuffer table.
#[derive(Clone, Copy)]
struct Table<'a> {
    buf: Buf<'a>,
    at: usize,
    vt: usize,
    fields: usize,
}

impl<'a> Table<'a> {
    /// Where field `i` lies, if present.
    fn field(&self, i: usize) -> Fb<Option<usize>> {
        if i >= self.fields {
            return Ok(None);
        }
        let off = self.buf.u16(self.vt + 4 + 2 * i)? as usize;
        Ok((off != 0).then_some(self.at + off))
    }
    fn u8_or(&self, i: usize, default: u8) -> Fb<u8> {
        self.field(i)?.map_or(Ok(default), |p| self.buf.u8(p))
    }
    fn i32_or(&self, i: usize, default: i32) -> Fb<i32> {
        self.field(i)?.map_or(Ok(default), |p| self.buf.i32(p))
    }
    fn u32_or(&self, i: usize, default: u32) -> Fb<u32> {
        self.field(i)?.map_or(Ok(default), |p| self.buf.u32(p))
    }
    fn u64_or(&self, i: usize, default: u64) -> Fb<u64> {
        self.field(i)?.map_or(Ok(default), |p| self.buf.u64(p))
    }
    fn f32_or(&self, i: usize, default: f32) -> Fb<f32> {
        self.field(i)?.map_or(Ok(default.to_bits()), |p| self.buf.u32(p)).map(f32::from_bits)
    }
    /// A vector field: (position of the first element, element count).
    fn vector(&self, i: usize, elem: usize) -> Fb<Option<(usize, usize)>> {
        let Some(p) = self.field(i)? else { return Ok(None) };
        let v = self.buf.follow(p)?;
        let n = self.buf.u32(v)? as usize;
        let len = n.checked_mul(elem).ok_or_else(|| FbError(format!("vector at {v}: length")))?;
        self.buf.bytes(v + 4, len)?;
        Ok(Some((v + 4, n)))
    }
    fn bytes(&self, i: usize) -> Fb<Option<Range<usize>>> {
        Ok(self.vector(i, 1)?.map(|(at, n)| at..at + n))
    }
    fn string(&self, i: usize) -> Fb<String> {
        match self.bytes(i)? {
            Some(r) => Ok(String::from_utf8_lossy(&self.buf.0[r]).into_owned()),
            None => Ok(String::new()),
        }
    }
    fn i32s(&self, i: usize) -> Fb<Vec<i32>> {
        let Some((at, n)) = self.vector(i, 4)? else { return Ok(Vec::new()) };
        (0..n).map(|j| self.buf.i32(at + 4 * j)).collect()
    }
    fn f32s(&self, i: usize) -> Fb<Vec<f32>> {
        Ok(self.i32s(i)?.into_iter().map(|v| f32::from_bits(v as u32)).collect())
    }
    fn i64s(&self, i: usize) -> Fb<Vec<i64>> {
        let Some((at, n)) = self.vector(i, 8)? else { return Ok(Vec::new()) };
        (0..n).map(|j| self.buf.u64(at + 8 * j).map(|v| v as i64)).collect()
    }
    fn tables(&self, i: usize) -> Fb<Vec<Table<'a>>> {
        let Some((at, n)) = self.vector(i, 4)? else { return Ok(Vec::new()) };
        (0..n).map(|j| self.buf.follow(at + 4 * j).and_then(|p| self.buf.table(p))).collect()
    }
    fn sub_table(&self, i: usize) -> Fb<Option<Table<'a>>> {
        match self.field(i)? {
            Some(p) => Ok(Some(self.buf.table(self.buf.follow(p)?)?)),
            None => Ok(None),
        }
    }
}

/// TFLite's `TensorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DType {
    /// `FLOAT32`
    F32,
    /// `INT32`
    I32,
    /// `UINT8`
    U8,
    /// `STRING`
    Str,
    /// `INT8`
    I8,
    /// Any other type (kept by number for error messages).
    Other(u8),
}

impl DType {
    fn from_code(c: u8) -> Self {
        match c {
            0 => DType::F32,
            2 => DType::I32,
            3 => DType::U8,
            5 => DType::Str,
            9 => DType::I8,
            o => DType::Other(o),
        }
    }
}

/// One tensor of the graph.
#[derive(Debug, Clone)]
pub(super) struct Tensor {
    pub(super) name: String,
    pub(super) shape: Vec<i32>,
    pub(super) dtype: DType,
    /// The bytes of its constant data in the file (empty for computed tensors).
    pub(super) data: Range<usize>,
    /// Quantization scales (one per tensor or per channel); empty when not quantized.
    pub(super) scale: Vec<f32>,
    pub(super) zero_point: Vec<i64>,
}

impl Tensor {
    /// Number of values.
    pub(super) fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d.max(0) as usize))
    }
}

/// One operator.
#[derive(Debug, Clone)]
pub(super) struct Op {
    /// `BuiltinOperator` code, or [`Op::CUSTOM`] with [`Op::custom`] set.
    pub(super) code: i32,
    pub(super) custom: String,
    /// Tensor indices; `-1` marks an omitted optional input.
    pub(super) inputs: Vec<i32>,
    pub(super) outputs: Vec<i32>,
    /// `fused_activation_function` of the built-in options, where the op has one.
    pub(super) fused_activation: u8,
    /// `SoftmaxOptions.beta`.
    pub(super) softmax_beta: f32,
    /// `FullyConnectedOptions.keep_num_dims` / `asymmetric_quantize_inputs`.
    pub(super) fc_asymmetric: bool,
    /// The custom options (a flexbuffer), as bytes of the file.
    pub(super) custom_options: Range<usize>,
}

impl Op {
    pub(super) const ADD: i32 = 0;
    pub(super) const CONCATENATION: i32 = 2;
    pub(super) const FULLY_CONNECTED: i32 = 9;
    pub(super) const LOGISTIC: i32 = 14;
    pub(super) const MUL: i32 = 18;
    pub(super) const RESHAPE: i32 = 22;
    pub(super) const SOFTMAX: i32 = 25;
    pub(super) const TANH: i32 = 28;
    pub(super) const CUSTOM: i32 = 32;
    pub(super) const SPLIT: i32 = 49;
    pub(super) const MINIMUM: i32 = 57;

    /// Input `i`'s tensor, unless absent or omitted (`-1`).
    pub(super) fn input(&self, i: usize) -> Option<usize> {
        self.inputs.get(i).and_then(|&t| usize::try_from(t).ok())
    }

    /// The first output's tensor (every operator has one: [`Graph::parse`] checks).
    pub(super) fn output(&self) -> usize {
        self.outputs.first().map_or(0, |&t| t.max(0) as usize)
    }

    /// A human-readable name, for errors.
    pub(super) fn name(&self) -> String {
        match self.code {
            Op::CUSTOM => self.custom.clone(),
            Op::ADD => "ADD".into(),
            Op::CONCATENATION => "CONCATENATION".into(),
            Op::FULLY_CONNECTED => "FULLY_CONNECTED".into(),
            Op::LOGISTIC => "LOGISTIC".into(),
            Op::MUL => "MUL".into(),
            Op::RESHAPE => "RESHAPE".into(),
            Op::SOFTMAX => "SOFTMAX".into(),
            Op::TANH => "TANH".into(),
            Op::SPLIT => "SPLIT".into(),
            Op::MINIMUM => "MINIMUM".into(),
            c => format!("builtin op {c}"),
        }
    }
}

/// The first subgraph of a TFLite model.
#[derive(Debug, Clone)]
pub(super) struct Graph {
    pub(super) tensors: Vec<Tensor>,
    pub(super) inputs: Vec<i32>,
    pub(super) outputs: Vec<i32>,
    pub(super) ops: Vec<Op>,
}

/// `FullyConnectedOptions` and the other option tables the reader looks at, by
/// `BuiltinOptions` union tag.
const OPTIONS_FULLY_CONNECTED: u8 = 8;
const OPTIONS_SOFTMAX: u8 = 9;

impl Graph {
    /// Parse `bytes` (a whole `.tflite` file).
    pub(super) fn parse(bytes: &[u8]) -> Fb<Graph> {
        let buf = Buf(bytes);
        if bytes.len() < 8 {
            return err(format!("{} bytes is too short for a TFLite model", bytes.len()));
        }
        if &bytes[4..8] != b"TFL3" {
            return err(format!(
                "file identifier {:?}, expected \"TFL3\" (not a TensorFlow Lite model)",
                String::from_utf8_lossy(&bytes[4..8])
            ));
        }
        let model = buf.table(buf.follow(0)?)?;
        let version = model.u32_or(0, 0)?;
        if version != 3 {
            return err(format!("TFLite schema version {version}, this reader knows version 3"));
        }
        let codes = model
            .tables(1)?
            .iter()
            .map(|c| {
                let deprecated = i32::from(c.u8_or(0, 0)? as i8);
                let builtin = c.i32_or(3, 0)?;
                Ok((builtin.max(deprecated), c.string(1)?))
            })
            .collect::<Fb<Vec<_>>>()?;
        let buffers = model
            .tables(4)?
            .iter()
            .map(|b| {
                if let Some(r) = b.bytes(0)? {
                    return Ok(r);
                }
                // Models over 2 GB keep buffers outside the flatbuffer, at an offset.
                let (off, size) = (b.u64_or(1, 0)? as usize, b.u64_or(2, 0)? as usize);
                if off > 1 {
                    buf.bytes(off, size)?;
                    return Ok(off..off + size);
                }
                Ok(0..0)
            })
            .collect::<Fb<Vec<_>>>()?;
        let subgraphs = model.tables(2)?;
        let Some(g) = subgraphs.first() else { return err("the model has no subgraph") };
        let tensors = g
            .tables(0)?
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let b = t.u32_or(2, 0)? as usize;
                let data = match buffers.get(b) {
                    Some(r) => r.clone(),
                    None => {
                        return err(format!(
                            "tensor {i} refers to buffer {b} of {}",
                            buffers.len()
                        ));
                    }
                };
                let (scale, zero_point) = match t.sub_table(4)? {
                    Some(q) => (q.f32s(2)?, q.i64s(3)?),
                    None => (Vec::new(), Vec::new()),
                };
                Ok(Tensor {
                    name: t.string(3)?,
                    shape: t.i32s(0)?,
                    dtype: DType::from_code(t.u8_or(1, 0)?),
                    data,
                    scale,
                    zero_point,
                })
            })
            .collect::<Fb<Vec<_>>>()?;
        let n_tensors = tensors.len() as i32;
        let check = |v: &[i32], what: &str| -> Fb<()> {
            match v.iter().find(|&&i| i < -1 || i >= n_tensors) {
                Some(i) => err(format!("{what} refers to tensor {i} of {n_tensors}")),
                None => Ok(()),
            }
        };
        let ops = g
            .tables(3)?
            .iter()
            .enumerate()
            .map(|(k, o)| {
                let idx = o.u32_or(0, 0)? as usize;
                let Some((code, custom)) = codes.get(idx).cloned() else {
                    return err(format!("operator {k} uses opcode {idx} of {}", codes.len()));
                };
                let inputs = o.i32s(1)?;
                let outputs = o.i32s(2)?;
                check(&inputs, &format!("operator {k}"))?;
                check(&outputs, &format!("operator {k}"))?;
                if outputs.is_empty() || outputs.contains(&-1) {
                    return err(format!("operator {k} has no output or an omitted one"));
                }
                let opt_type = o.u8_or(3, 0)?;
                let opts = o.sub_table(4)?;
                let (mut fused_activation, mut softmax_beta, mut fc_asymmetric) =
                    (0u8, 1f32, false);
                if let Some(t) = opts {
                    match opt_type {
                        OPTIONS_FULLY_CONNECTED => {
                            fused_activation = t.u8_or(0, 0)?;
                            fc_asymmetric = t.u8_or(3, 0)? != 0;
                        }
                        OPTIONS_SOFTMAX => softmax_beta = t.f32_or(0, 0.0)?,
                        _ => fused_activation = 0,
                    }
                }
                Ok(Op {
                    code,
                    custom,
                    inputs,
                    outputs,
                    fused_activation,
                    softmax_beta,
                    fc_asymmetric,
                    custom_options: o.bytes(5)?.unwrap_or(0..0),
                })
            })
            .collect::<Fb<Vec<_>>>()?;
        let inputs = g.i32s(1)?;
        let outputs = g.i32s(2)?;
        // -1 ("no tensor") is legal for an operator's optional input, never for the graph's
        // own inputs and outputs (the `deepspeech_model` fuzz target found one, read as
        // tensor usize::MAX).
        for (v, what) in [(&inputs, "the graph's inputs"), (&outputs, "the graph's outputs")] {
            if let Some(i) = v.iter().find(|&&i| i < 0 || i >= n_tensors) {
                return err(format!("{what} refer to tensor {i} of {n_tensors}"));
            }
        }
        Ok(Graph { tensors, inputs, outputs, ops })
    }

    /// The graph input or output named `name`.
    pub(super) fn io(&self, name: &str) -> Option<usize> {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .map(|&i| i as usize)
            .find(|&i| self.tensors.get(i).is_some_and(|t| t.name == name))
    }

    /// The operator that writes tensor `t`.
    pub(super) fn producer(&self, t: usize) -> Option<(usize, &Op)> {
        self.ops.iter().enumerate().find(|(_, o)| o.outputs.contains(&(t as i32)))
    }

    /// The operators that read tensor `t`, in execution order.
    pub(super) fn consumers(&self, t: usize) -> impl Iterator<Item = (usize, &Op)> {
        self.ops.iter().enumerate().filter(move |(_, o)| o.inputs.contains(&(t as i32)))
    }
}
