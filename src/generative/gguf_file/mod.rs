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

mod cursor;

use cursor::{check_value_type, Cursor};

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
mod tests;
