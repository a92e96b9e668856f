//! A reader of the GGUF container (versions 1 to 3), without candle: the header, every metadata
//! value type, the tensor infos, the alignment and the tensors' raw bytes.
//!
//! It is a hardened reader: every length, count and offset is checked against the bytes the
//! file holds before anything is allocated by it, nesting is bounded, and only the tensor
//! types the inference engine reads (F32, Q8_0, Q4_0) are accepted, others refused by name.
//!
//! Layout (little-endian; `len` is a `u64` from version 2 on, a `u32` in version 1):
//! magic `GGUF`, version `u32`, tensor count `len`, metadata count `len`, then the metadata
//! (key: string, value type `u32`, value), the tensor infos (name: string, dimension count
//! `u32`, dimensions `len` each, innermost first, ggml type `u32`, offset `u64` into the data),
//! padding to `general.alignment` (32 by default), and the tensor data. A string is its byte
//! length (`len`) and its UTF-8 bytes.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

/// Alignment of the tensor data when the metadata does not set `general.alignment`.
pub(crate) const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;
/// Deepest nesting of arrays in the metadata.
const MAX_DEPTH: usize = 16;
/// Largest accepted `general.alignment`.
const MAX_ALIGNMENT: u64 = 1 << 16;

/// The ggml tensor types this crate reads and writes. `Debug` prints the names candle's
/// `GgmlDType` prints (`F32`, `Q8_0`, `Q4_0`), which the model checksum covers.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum GgmlType {
    /// Little-endian float32 values.
    F32,
    /// Blocks of 32 weights: an f16 scale and 32 signed bytes.
    Q8_0,
    /// Blocks of 32 weights: an f16 scale and 16 bytes, weight `j` in the low nibble of byte
    /// `j` and weight `j + 16` in its high nibble, each standing for `scale * (nibble - 8)`.
    Q4_0,
}

impl GgmlType {
    /// The type with ggml's identifier `id`, or why it cannot be read.
    pub(crate) fn from_id(id: u32) -> Result<Self, String> {
        match id {
            0 => Ok(Self::F32),
            2 => Ok(Self::Q4_0),
            8 => Ok(Self::Q8_0),
            _ => Err(match ggml_type_name(id) {
                Some(name) => {
                    format!("ggml type {name} ({id}) is not supported: only F32, Q8_0 and Q4_0 are")
                }
                None => format!("unknown ggml type {id}"),
            }),
        }
    }

    /// ggml's identifier of the type.
    #[cfg(test)]
    pub(crate) fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::Q4_0 => 2,
            Self::Q8_0 => 8,
        }
    }

    /// Values per block.
    pub(crate) fn block_size(self) -> usize {
        match self {
            Self::F32 => 1,
            Self::Q8_0 | Self::Q4_0 => 32,
        }
    }

    /// Bytes per block.
    pub(crate) fn block_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Q8_0 => 2 + 32,
            Self::Q4_0 => 2 + 16,
        }
    }

    /// Bytes that `elements` values take, or `None` if they are not whole blocks (or overflow).
    pub(crate) fn byte_len(self, elements: u64) -> Option<u64> {
        let block = self.block_size() as u64;
        if !elements.is_multiple_of(block) {
            return None;
        }
        (elements / block).checked_mul(self.block_bytes() as u64)
    }
}

/// The name of the ggml type `id`, for messages.
fn ggml_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        30 => "BF16",
        _ => return None,
    })
}

/// A tensor's storage: its type, its shape (outermost dimension first, as candle and the
/// model's parameters have it) and its raw bytes in the ggml layout of its type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawTensor {
    /// Storage type.
    pub(crate) dtype: GgmlType,
    /// Dimensions, outermost first.
    pub(crate) dims: Vec<usize>,
    /// The values or blocks, `dtype.byte_len(elements)` bytes.
    pub(crate) data: Vec<u8>,
}

/// A metadata value. Arrays are checked and skipped: only their element type and length are
/// kept (nothing in a model file is an array).
#[derive(Debug, Clone, PartialEq)]
#[allow(dead_code)] // the scalar payloads are read for completeness and shown by `Debug`
pub(crate) enum Value {
    /// `uint8`.
    U8(u8),
    /// `int8`.
    I8(i8),
    /// `uint16`.
    U16(u16),
    /// `int16`.
    I16(i16),
    /// `uint32`.
    U32(u32),
    /// `int32`.
    I32(i32),
    /// `uint64`.
    U64(u64),
    /// `int64`.
    I64(i64),
    /// `float32`.
    F32(f32),
    /// `float64`.
    F64(f64),
    /// `bool`.
    Bool(bool),
    /// A UTF-8 string.
    String(String),
    /// An array of `len` values of type `element` (a GGUF value type identifier).
    Array {
        /// Value type identifier of the elements.
        element: u32,
        /// Number of elements.
        len: u64,
    },
}

/// Where a tensor's bytes are and what they hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorInfo {
    /// The tensor's name.
    pub(crate) name: String,
    /// Storage type.
    pub(crate) dtype: GgmlType,
    /// Dimensions, outermost first.
    pub(crate) dims: Vec<usize>,
    /// Absolute offset of the first byte in the file.
    pub(crate) start: u64,
    /// Number of bytes.
    pub(crate) len: u64,
}

/// Everything before a GGUF file's tensor data, checked against the file's length.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    /// Format version (1, 2 or 3).
    #[allow(dead_code)]
    pub(crate) version: u32,
    /// Metadata by key (a key appears once).
    pub(crate) metadata: HashMap<String, Value>,
    /// Tensor infos in file order (a name appears once); each lies inside the file.
    pub(crate) tensors: Vec<TensorInfo>,
}

/// A reader that knows its position and the file's length, so that no read is attempted, and
/// nothing allocated, beyond the bytes that remain.
struct Cursor<R> {
    inner: R,
    pos: u64,
    len: u64,
    /// Lengths and counts are `u32` in version 1, `u64` after.
    wide: bool,
}

impl<R: Read> Cursor<R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Fails unless `n` bytes remain for `what`.
    fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<(), String> {
        if n > self.remaining() {
            return Err(format!(
                "{} needs {n} bytes at offset {}, the file has {} bytes",
                what(),
                self.pos,
                self.len
            ));
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], String> {
        self.need(N as u64, what)?;
        let mut b = [0u8; N];
        self.inner
            .read_exact(&mut b)
            .map_err(|e| format!("cannot read {}: {e}", what()))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn bytes(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<Vec<u8>, String> {
        self.need(n, what)?;
        let mut b = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut b)
            .map_err(|e| format!("cannot read {}: {e}", what()))?;
        self.pos += n;
        Ok(b)
    }

    fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<(), String> {
        self.need(n, what)?;
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| format!("cannot read {}: {e}", what()))?;
        if copied != n {
            return Err(format!("cannot read {}: the file ends early", what()));
        }
        self.pos += n;
        Ok(())
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length or count: `u64`, or `u32` in version 1.
    fn length(&mut self, what: &dyn Fn() -> String) -> Result<u64, String> {
        if self.wide {
            self.u64(what)
        } else {
            self.u32(what).map(u64::from)
        }
    }

    /// Bytes of a length or count field.
    fn length_size(&self) -> u64 {
        if self.wide {
            8
        } else {
            4
        }
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, String> {
        let len = self.length(&|| format!("the length of {}", what()))?;
        let bytes = self.bytes(len, &|| format!("{} ({len} bytes)", what()))?;
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", what()))
    }

    /// Fewest bytes a value of GGUF type `ty` takes.
    fn min_size(&self, ty: u32) -> u64 {
        match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => self.length_size(),
            _ => 4 + self.length_size(),
        }
    }

    /// A metadata value of GGUF type `ty`; `depth` arrays deep.
    fn value(&mut self, ty: u32, depth: usize, what: &dyn Fn() -> String) -> Result<Value, String> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>(what)?[0]),
            1 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            2 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("{} is a bool of value {b}", what())),
            },
            8 => Value::String(self.string(what)?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(format!(
                        "{} nests arrays more than {MAX_DEPTH} deep",
                        what()
                    ));
                }
                let element = self.u32(&|| format!("the element type of {}", what()))?;
                let len = self.length(&|| format!("the length of {}", what()))?;
                check_value_type(element, what)?;
                let min = len.saturating_mul(self.min_size(element));
                self.need(min, &|| format!("{} ({len} elements)", what()))?;
                match element {
                    // fixed-size elements are skipped at once
                    0..=7 | 10..=12 => self.skip(min, what)?,
                    _ => {
                        for i in 0..len {
                            self.value(element, depth + 1, &|| {
                                format!("element {i} of {}", what())
                            })?;
                        }
                    }
                }
                Value::Array { element, len }
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            _ => return Err(format!("{} has unknown value type {ty}", what())),
        })
    }
}

/// Fails unless `ty` is a GGUF value type (0 to 12).
fn check_value_type(ty: u32, what: &dyn Fn() -> String) -> Result<(), String> {
    if ty > 12 {
        return Err(format!("{} has unknown value type {ty}", what()));
    }
    Ok(())
}

/// The tensor data's alignment from `general.alignment`: a power of two up to 65,536.
fn alignment(metadata: &HashMap<String, Value>) -> Result<u64, String> {
    let value = match metadata.get("general.alignment") {
        None => return Ok(DEFAULT_ALIGNMENT),
        Some(Value::U8(v)) => u64::from(*v),
        Some(Value::U16(v)) => u64::from(*v),
        Some(Value::U32(v)) => u64::from(*v),
        Some(Value::U64(v)) => *v,
        Some(Value::I8(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Value::I16(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Value::I32(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Value::I64(v)) => u64::try_from(*v).unwrap_or(0),
        Some(other) => return Err(format!("general.alignment is not an integer: {other:?}")),
    };
    if !value.is_power_of_two() || value > MAX_ALIGNMENT {
        return Err(format!(
            "general.alignment is {value}, not a power of two up to {MAX_ALIGNMENT}"
        ));
    }
    Ok(value)
}

/// Reads the header of a GGUF file of `file_len` bytes from `reader` (at its start): the
/// metadata and the tensor infos, each tensor checked to be of a supported type, of whole
/// blocks, aligned and inside the file, their sizes together no more than the data the file
/// holds. Leaves `reader` somewhere after the tensor infos.
pub(crate) fn read_header<R: Read>(reader: R, file_len: u64) -> Result<Header, String> {
    let mut r = Cursor {
        inner: reader,
        pos: 0,
        len: file_len,
        wide: true,
    };
    let magic = r.array::<4>(&|| "the magic number".into())?;
    if &magic != b"GGUF" {
        return Err(format!(
            "the magic number is {magic:02x?}, not \"GGUF\" (the file is not GGUF)"
        ));
    }
    let version = r.u32(&|| "the version".into())?;
    if !(1..=3).contains(&version) {
        return Err(format!("unsupported GGUF version {version} (1 to 3 are)"));
    }
    r.wide = version >= 2;
    let tensor_count = r.length(&|| "the tensor count".into())?;
    let metadata_count = r.length(&|| "the metadata count".into())?;
    // the fewest bytes an entry takes: a key, a type and a one-byte value; a name, a dimension
    // count, a type and an offset
    let min_kv = r.length_size() + 4 + 1;
    let min_tensor = r.length_size() + 4 + 4 + 8;
    let needed = metadata_count
        .saturating_mul(min_kv)
        .saturating_add(tensor_count.saturating_mul(min_tensor));
    if needed > r.remaining() {
        return Err(format!(
            "the header declares {tensor_count} tensors and {metadata_count} metadata entries, \
             at least {needed} bytes after offset {}, the file has {} bytes",
            r.pos, r.len
        ));
    }

    let mut metadata = HashMap::new();
    for i in 0..metadata_count {
        let key = r.string(&|| format!("metadata key {i}"))?;
        let what = || format!("metadata {key}");
        let ty = r.u32(&|| format!("the type of {}", what()))?;
        check_value_type(ty, &what)?;
        let value = r.value(ty, 0, &what)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(format!("metadata {key} appears twice"));
        }
    }

    // (name, type, dims outermost first, offset into the data, bytes, values)
    let mut infos: Vec<(String, GgmlType, Vec<usize>, u64, u64, u64)> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for i in 0..tensor_count {
        let name = r.string(&|| format!("the name of tensor {i}"))?;
        let what = || format!("tensor {name}");
        let rank = r.u32(&|| format!("the dimension count of {}", what()))?;
        if rank > MAX_DIMS {
            return Err(format!(
                "{} has {rank} dimensions, at most {MAX_DIMS} are allowed",
                what()
            ));
        }
        let mut dims = Vec::with_capacity(rank as usize);
        for d in 0..rank {
            let n = r.length(&|| format!("dimension {d} of {}", what()))?;
            dims.push(n);
        }
        dims.reverse();
        let type_id = r.u32(&|| format!("the type of {}", what()))?;
        let dtype = GgmlType::from_id(type_id).map_err(|e| format!("{}: {e}", what()))?;
        let offset = r.u64(&|| format!("the offset of {}", what()))?;
        let elements = dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .ok_or_else(|| format!("{} has too many values ({dims:?})", what()))?;
        let bytes = dtype.byte_len(elements).ok_or_else(|| {
            format!(
                "{} ({dtype:?}) holds {elements} values, not whole blocks of {}",
                what(),
                dtype.block_size()
            )
        })?;
        let dims = dims
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("{} has too many values ({dims:?})", what()))?;
        if !names.insert(name.clone()) {
            return Err(format!("tensor {name} appears twice"));
        }
        infos.push((name, dtype, dims, offset, bytes, elements));
    }

    let alignment = alignment(&metadata)?;
    // (a file without tensors may end before the padding)
    let data_start = r
        .pos
        .checked_next_multiple_of(alignment)
        .filter(|&s| s <= file_len || infos.is_empty())
        .ok_or_else(|| {
            format!(
                "the tensor data would start beyond the end of the file ({} bytes)",
                file_len
            )
        })?;
    let mut total = 0u64;
    let mut tensors = Vec::with_capacity(infos.len());
    for (name, dtype, dims, offset, len, elements) in infos {
        if !offset.is_multiple_of(alignment) {
            return Err(format!(
                "tensor {name}'s offset {offset} is not a multiple of the alignment {alignment}"
            ));
        }
        let start = data_start.checked_add(offset);
        if start
            .and_then(|s| s.checked_add(len))
            .is_none_or(|end| end > file_len)
        {
            return Err(format!(
                "tensor {name} ({dtype:?}, {elements} values) lies beyond the end of the file"
            ));
        }
        total = total.saturating_add(len);
        tensors.push(TensorInfo {
            name,
            dtype,
            dims,
            start: start.unwrap_or_default(),
            len,
        });
    }
    let data = file_len.saturating_sub(data_start);
    if total > data {
        return Err(format!(
            "the tensors declare {total} bytes, the file holds {data} bytes of tensor data"
        ));
    }
    Ok(Header {
        version,
        metadata,
        tensors,
    })
}

/// Reads the bytes of the tensor `info` (from a header [`read_header`] read from `reader`).
pub(crate) fn read_tensor<R: Read + Seek>(
    reader: &mut R,
    info: &TensorInfo,
) -> Result<RawTensor, String> {
    reader
        .seek(SeekFrom::Start(info.start))
        .map_err(|e| format!("cannot seek to offset {}: {e}", info.start))?;
    // `read_header` checked that these bytes lie inside the file
    let mut data = vec![0u8; usize::try_from(info.len).map_err(|e| e.to_string())?];
    reader
        .read_exact(&mut data)
        .map_err(|e| format!("cannot read {} bytes: {e}", info.len))?;
    Ok(RawTensor {
        dtype: info.dtype,
        dims: info.dims.clone(),
        data,
    })
}

/// Reads a whole GGUF file: its header and every tensor, in file order.
#[cfg(test)]
pub(crate) fn read_all(
    path: &std::path::Path,
) -> Result<(Header, Vec<(String, RawTensor)>), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut reader = std::io::BufReader::new(file);
    let header = read_header(&mut reader, len)?;
    let tensors = header
        .tensors
        .iter()
        .map(|info| Ok((info.name.clone(), read_tensor(&mut reader, info)?)))
        .collect::<Result<_, String>>()?;
    Ok((header, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-3 GGUF file: the metadata entries (key, type, value bytes), the tensors (name,
    /// ggml type, dims outermost first, data) at 32-byte alignment.
    fn file(metadata: &[(&str, u32, Vec<u8>)], tensors: &[(&str, u32, &[u64], &[u8])]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((tensors.len() as u64).to_le_bytes());
        out.extend((metadata.len() as u64).to_le_bytes());
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        };
        for (key, ty, value) in metadata {
            string(&mut out, key);
            out.extend(ty.to_le_bytes());
            out.extend(value);
        }
        let mut offset = 0u64;
        for (name, ty, dims, data) in tensors {
            string(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims.iter().rev() {
                out.extend(d.to_le_bytes());
            }
            out.extend(ty.to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset += (data.len() as u64).next_multiple_of(32);
        }
        out.resize(out.len().next_multiple_of(32), 0);
        for (.., data) in tensors {
            out.extend(*data);
            out.resize(out.len().next_multiple_of(32), 0);
        }
        out
    }

    #[test]
    fn version_1_has_32_bit_lengths() {
        let mut b = b"GGUF".to_vec();
        for v in [1u32, 0, 1, 1] {
            b.extend(v.to_le_bytes()); // version, tensors, metadata, key length
        }
        b.push(b'k');
        b.extend(8u32.to_le_bytes());
        b.extend(2u32.to_le_bytes());
        b.extend(b"v1");
        let header = parse(&b).unwrap();
        assert_eq!(header.version, 1);
        assert_eq!(header.metadata["k"], Value::String("v1".into()));
    }

    #[test]
    fn type_identifiers_are_ggml_s() {
        for t in [GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4_0] {
            assert_eq!(GgmlType::from_id(t.id()), Ok(t));
            assert_eq!(
                t.byte_len(64),
                Some(64 / t.block_size() as u64 * t.block_bytes() as u64)
            );
        }
        assert_eq!(GgmlType::Q4_0.id(), 2);
        assert_eq!(GgmlType::Q8_0.byte_len(33), None);
    }

    fn parse(bytes: &[u8]) -> Result<Header, String> {
        read_header(bytes, bytes.len() as u64)
    }

    fn string_value(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend(s.as_bytes());
        v
    }

    #[test]
    fn reads_metadata_of_every_type_and_the_tensors() {
        let floats: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut q8 = vec![0x00, 0x3c]; // scale 1.0
        q8.extend((0..32u8).map(|i| i.wrapping_mul(7)));
        let mut array = 8u32.to_le_bytes().to_vec(); // of strings
        array.extend(2u64.to_le_bytes());
        array.extend(string_value("a"));
        array.extend(string_value("bc"));
        let metadata = [
            ("u8", 0, vec![7]),
            ("i8", 1, vec![0xff]),
            ("u16", 2, 7u16.to_le_bytes().to_vec()),
            ("i16", 3, (-7i16).to_le_bytes().to_vec()),
            ("u32", 4, 7u32.to_le_bytes().to_vec()),
            ("i32", 5, (-7i32).to_le_bytes().to_vec()),
            ("f32", 6, 0.5f32.to_le_bytes().to_vec()),
            ("bool", 7, vec![1]),
            ("string", 8, string_value("text")),
            ("array", 9, array),
            ("u64", 10, 7u64.to_le_bytes().to_vec()),
            ("i64", 11, (-7i64).to_le_bytes().to_vec()),
            ("f64", 12, 0.25f64.to_le_bytes().to_vec()),
        ];
        let bytes = file(
            &metadata,
            &[("v", 0, &[2], &floats), ("m", 8, &[1, 32], &q8)],
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        std::fs::write(&path, &bytes).unwrap();
        let (header, tensors) = read_all(&path).unwrap();
        assert_eq!(header.version, 3);
        let m = &header.metadata;
        assert_eq!(m["i8"], Value::I8(-1));
        assert_eq!(m["i64"], Value::I64(-7));
        assert_eq!(m["f64"], Value::F64(0.25));
        assert_eq!(m["bool"], Value::Bool(true));
        assert_eq!(m["string"], Value::String("text".into()));
        assert_eq!(m["array"], Value::Array { element: 8, len: 2 });
        assert_eq!(m.len(), 13);
        assert_eq!(tensors[0].0, "v");
        assert_eq!(
            tensors[0].1,
            RawTensor {
                dtype: GgmlType::F32,
                dims: vec![2],
                data: floats
            }
        );
        assert_eq!(tensors[1].1.dtype, GgmlType::Q8_0);
        assert_eq!(tensors[1].1.dims, vec![1, 32]);
        assert_eq!(tensors[1].1.data, q8);
    }

    #[test]
    fn malformed_headers_are_refused_with_the_reason() {
        let floats = [0u8; 8];
        let good = file(&[("k", 8, string_value("v"))], &[("v", 0, &[2], &floats)]);
        assert!(parse(&good).is_ok());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"GGML\x03\0\0\0".to_vec(), "not \"GGUF\""),
            (
                {
                    let mut b = good.clone();
                    b[4] = 9;
                    b
                },
                "unsupported GGUF version 9",
            ),
            (good[..6].to_vec(), "the version needs 4 bytes"),
            (good[..40].to_vec(), "the file has 40 bytes"),
            (
                {
                    let mut b = good.clone();
                    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
                    b
                },
                "tensors and 1 metadata entries, at least",
            ),
            (file(&[("k", 13, vec![0])], &[]), "unknown value type 13"),
            (file(&[("k", 7, vec![2])], &[]), "bool of value 2"),
            (
                file(&[("k", 8, vec![0xff; 8])], &[]),
                "metadata k (18446744073709551615 bytes) needs",
            ),
            (
                file(&[("k", 0, vec![1]), ("k", 0, vec![2])], &[]),
                "metadata k appears twice",
            ),
            (
                file(
                    &[("general.alignment", 4, 3u32.to_le_bytes().to_vec())],
                    &[],
                ),
                "general.alignment is 3",
            ),
            (
                file(&[], &[("t", 1, &[2], &[0; 4])]),
                "ggml type F16 (1) is not supported",
            ),
            (
                file(&[], &[("t", 12, &[256], &[0; 144])]),
                "ggml type Q4_K (12) is not supported",
            ),
            (
                file(&[], &[("t", 99, &[2], &[0; 8])]),
                "unknown ggml type 99",
            ),
            (
                file(&[], &[("t", 8, &[16], &[0; 34])]),
                "not whole blocks of 32",
            ),
            (
                file(&[], &[("t", 0, &[1, 1, 1, 1, 1], &[0; 4])]),
                "5 dimensions",
            ),
            (
                file(&[], &[("t", 0, &[1 << 40, 1 << 40], &[0; 4])]),
                "too many values",
            ),
            (
                file(&[], &[("t", 0, &[64], &[0; 8])]),
                "lies beyond the end of the file",
            ),
            (
                file(&[], &[("t", 0, &[2], &[0; 8]), ("t", 0, &[2], &[0; 8])]),
                "tensor t appears twice",
            ),
        ];
        for (bytes, want) in cases {
            let err = parse(&bytes).unwrap_err();
            assert!(err.contains(want), "{want:?}: {err}");
        }
        // arrays of arrays of ... are bounded
        let mut nested = Vec::new();
        for _ in 0..100 {
            nested.extend(9u32.to_le_bytes());
            nested.extend(1u64.to_le_bytes());
        }
        nested.extend(0u32.to_le_bytes());
        nested.extend(0u64.to_le_bytes());
        let err = parse(&file(&[("k", 9, nested)], &[])).unwrap_err();
        assert!(err.contains("more than 16 deep"), "{err}");
        // a huge array of one-byte values in a small file
        let mut huge = 0u32.to_le_bytes().to_vec();
        huge.extend((1u64 << 40).to_le_bytes());
        let err = parse(&file(&[("k", 9, huge)], &[])).unwrap_err();
        assert!(err.contains("1099511627776 elements"), "{err}");
        // tensors that overlap to declare more data than the file holds
        let overlapping = {
            let mut b = file(&[], &[("a", 0, &[8], &[0; 32]), ("b", 0, &[8], &[0; 32])]);
            let at = b
                .windows(8)
                .rposition(|w| w == 32u64.to_le_bytes())
                .unwrap();
            b[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
            b.truncate(b.len() - 32);
            b
        };
        let err = parse(&overlapping).unwrap_err();
        assert!(err.contains("the tensors declare 64 bytes"), "{err}");
    }

    /// Our reader and candle's read the shipped model to the same metadata and tensors.
    #[cfg(feature = "train")]
    #[test]
    fn the_bundled_model_reads_as_candle_reads_it() {
        use candle_core::quantized::gguf_file;

        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model/generative.q4.gguf");
        let (header, tensors) = read_all(&path).unwrap();
        let mut reader = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let content = gguf_file::Content::read(&mut reader).unwrap();
        assert_eq!(header.metadata.len(), content.metadata.len());
        for (key, value) in &content.metadata {
            match value {
                gguf_file::Value::String(s) => {
                    assert_eq!(header.metadata[key], Value::String(s.clone()))
                }
                gguf_file::Value::U32(v) => assert_eq!(header.metadata[key], Value::U32(*v)),
                other => panic!("{key}: {other:?}"),
            }
        }
        assert_eq!(tensors.len(), content.tensor_infos.len());
        let mut types = std::collections::HashSet::new();
        for (name, ours) in &tensors {
            let theirs = content
                .tensor(&mut reader, name, &candle_core::Device::Cpu)
                .unwrap();
            assert_eq!(format!("{:?}", ours.dtype), format!("{:?}", theirs.dtype()));
            assert_eq!(ours.dtype.id(), {
                let id = match theirs.dtype() {
                    candle_core::quantized::GgmlDType::F32 => 0,
                    candle_core::quantized::GgmlDType::Q4_0 => 2,
                    candle_core::quantized::GgmlDType::Q8_0 => 8,
                    other => panic!("{other:?}"),
                };
                id
            });
            assert_eq!(ours.dims, theirs.shape().dims(), "{name}");
            assert_eq!(ours.data, theirs.data().unwrap().as_ref(), "{name}");
            types.insert(ours.dtype);
        }
        assert_eq!(types.len(), 3, "{types:?}");
    }
}
