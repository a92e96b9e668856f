//! Reading embedding matrices from `.npy` files (float32, or int8 with per-row scales), whole
//! or in chunks of rows.
//!
//! The header is parsed and checked against the file's length before anything is allocated:
//! a header that claims more rows than the file holds is an [`Error::Npy`] naming the file,
//! never an allocation of the claimed size.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use ndarray_npy::ReadNpyExt;

use crate::error::{Error, Result};

/// Longest header accepted (numpy writes headers of a few hundred bytes).
const MAX_HEADER: usize = 1 << 20;
/// Largest embedding dimension accepted.
pub(crate) const MAX_DIM: usize = 1 << 16;

/// Element type of an array file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    I8,
}

impl Dtype {
    fn size(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::I8 => 1,
        }
    }
}

/// A checked `.npy` header: element type, shape, where the data starts.
#[derive(Debug, Clone)]
struct Header {
    dtype: Dtype,
    big_endian: bool,
    shape: Vec<usize>,
    fortran_order: bool,
    data_offset: u64,
}

fn npy_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Npy {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads and checks the header of `file`: magic, version, element type (float32 or int8,
/// little-endian), shape, and that the file holds exactly the data the shape claims.
fn read_header(path: &Path, file: &mut File) -> Result<Header> {
    let bad = |reason: String| npy_error(path, reason);
    let len = file
        .metadata()
        .map_err(|e| Error::io("read the metadata of", path, e))?
        .len();
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic)
        .map_err(|_| bad("not a .npy file (too short for its header)".into()))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let header_len = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            file.read_exact(&mut b)
                .map_err(|_| bad("truncated header".into()))?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            file.read_exact(&mut b)
                .map_err(|_| bad("truncated header".into()))?;
            u32::from_le_bytes(b) as usize
        }
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    if header_len > MAX_HEADER {
        return Err(bad(format!(
            "header of {header_len} bytes (at most {MAX_HEADER})"
        )));
    }
    let data_offset = file
        .stream_position()
        .map_err(|e| Error::io("seek in", path, e))?
        + header_len as u64;
    if data_offset > len {
        return Err(bad("truncated header".into()));
    }
    let mut text = vec![0u8; header_len];
    file.read_exact(&mut text)
        .map_err(|_| bad("truncated header".into()))?;
    let text = String::from_utf8(text).map_err(|_| bad("header is not text".into()))?;
    // numpy writes a Python dict literal padded with spaces and ended by a newline, and
    // refuses a header that is not one
    let dict = text.trim_end_matches([' ', '\n', '\r', '\t', '\0']);
    if !(dict.starts_with('{') && dict.ends_with('}')) {
        return Err(bad(format!(
            "the header {:?} is not a dictionary (it must start with '{{' and end with '}}')",
            dict.chars().take(120).collect::<String>()
        )));
    }
    let field = |key: &str| -> Option<&str> {
        let at = text.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr")
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.split('\'').next())
        .ok_or_else(|| bad("header has no 'descr'".into()))?;
    let (dtype, big_endian) = match descr {
        "<f4" | "=f4" | "f4" => (Dtype::F32, false),
        ">f4" => (Dtype::F32, true),
        "|i1" | "<i1" | ">i1" | "=i1" | "i1" | "|b" => (Dtype::I8, false),
        other => {
            return Err(bad(format!(
                "element type {other:?}: expected float32 ('<f4') or int8 ('|i1')"
            )))
        }
    };
    let fortran_order = field("fortran_order")
        .map(|r| r.starts_with("True"))
        .ok_or_else(|| bad("header has no 'fortran_order'".into()))?;
    let shape_text = field("shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad("header has no 'shape'".into()))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(format!("shape entry {s:?} is not a size")))
        })
        .collect::<Result<Vec<usize>>>()?;
    let count = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    let held = len - data_offset;
    if count != held {
        return Err(bad(format!(
            "the header claims shape {shape:?} ({count} bytes of data) but the file holds \
             {held} bytes after its header"
        )));
    }
    Ok(Header {
        dtype,
        big_endian,
        shape,
        fortran_order,
        data_offset,
    })
}

/// Opens `path` and checks its header.
fn open(path: &Path) -> Result<(File, Header)> {
    let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let header = read_header(path, &mut file)?;
    Ok((file, header))
}

/// Reads embedding rows from a `.npy` file in chunks, in row order: float32 rows, or int8 rows
/// scaled by a per-row float32 scale file. Memory is one chunk, whatever the file's size.
#[derive(Debug)]
pub struct EmbeddingReader {
    path: PathBuf,
    data: BufReader<File>,
    scales: Option<(PathBuf, BufReader<File>, bool)>,
    dtype: Dtype,
    big_endian: bool,
    rows: usize,
    dim: usize,
    next: usize,
}

impl EmbeddingReader {
    /// Opens an `N x D` float32 `.npy`, or an int8 one with `scale` naming its float32 `[N]`
    /// scales; both headers are checked against the files' lengths first.
    pub fn open(path: &Path, scale: Option<&Path>) -> Result<Self> {
        let (mut file, header) = open(path)?;
        let [rows, dim] = header.shape[..] else {
            return Err(npy_error(
                path,
                format!("shape {:?}: expected rows x dimension", header.shape),
            ));
        };
        if dim == 0 || dim > MAX_DIM {
            return Err(npy_error(
                path,
                format!("dimension {dim}: expected 1..={MAX_DIM}"),
            ));
        }
        if header.fortran_order {
            return Err(npy_error(
                path,
                "column-major (Fortran-order) array: save it row-major (numpy's default)",
            ));
        }
        let scales = match (header.dtype, scale) {
            (Dtype::F32, None) => None,
            (Dtype::I8, Some(scale)) => {
                let (mut f, h) = open(scale)?;
                if h.dtype != Dtype::F32 || h.shape != [rows] || h.fortran_order {
                    return Err(npy_error(
                        scale,
                        format!(
                            "expected {rows} float32 scales (one per row of {}), found {:?} {:?}",
                            path.display(),
                            h.dtype,
                            h.shape
                        ),
                    ));
                }
                f.seek(SeekFrom::Start(h.data_offset))
                    .map_err(|e| Error::io("seek in", scale, e))?;
                Some((scale.to_path_buf(), BufReader::new(f), h.big_endian))
            }
            (dtype, scale) => return Err(scale_mismatch(path, dtype, scale.is_some())),
        };
        file.seek(SeekFrom::Start(header.data_offset))
            .map_err(|e| Error::io("seek in", path, e))?;
        Ok(EmbeddingReader {
            path: path.to_path_buf(),
            data: BufReader::new(file),
            scales,
            dtype: header.dtype,
            big_endian: header.big_endian,
            rows,
            dim,
            next: 0,
        })
    }

    /// Rows in the file.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The next at most `max_rows` rows (`None` once every row was read).
    pub fn read_chunk(&mut self, max_rows: usize) -> Result<Option<Array2<f32>>> {
        let n = max_rows.max(1).min(self.rows - self.next);
        if n == 0 {
            return Ok(None);
        }
        let result = self.read_rows(n);
        // a failed read leaves the stream mid-row: no later chunk is read from it
        self.next = if result.is_ok() {
            self.next + n
        } else {
            self.rows
        };
        let values = result?;
        Array2::from_shape_vec((n, self.dim), values)
            .map(Some)
            .map_err(|e| Error::Internal(format!("chunk shape: {e}")))
    }

    /// The next `n` rows as f32, converted a block of rows at a time (the raw bytes of at most
    /// [`BLOCK_ROWS`] rows are held beside the result).
    fn read_rows(&mut self, n: usize) -> Result<Vec<f32>> {
        let mut values = Vec::with_capacity(n * self.dim);
        let mut bytes = Vec::new();
        let mut raw_scales = Vec::new();
        let mut row_index = self.next;
        let mut left = n;
        while left > 0 {
            let rows = left.min(BLOCK_ROWS);
            left -= rows;
            bytes.resize(rows * self.dim * self.dtype.size() as usize, 0);
            self.data
                .read_exact(&mut bytes)
                .map_err(|e| Error::io("read", &self.path, e))?;
            match &mut self.scales {
                None => values.extend(bytes.chunks_exact(4).map(|b| f32_at(b, self.big_endian))),
                Some((scale_path, scales, big_endian)) => {
                    raw_scales.resize(rows * 4, 0);
                    scales
                        .read_exact(&mut raw_scales)
                        .map_err(|e| Error::io("read", &*scale_path, e))?;
                    let dim = self.dim;
                    for (row, k) in bytes.chunks_exact(dim).zip(raw_scales.chunks_exact(4)) {
                        let k = f32_at(k, *big_endian);
                        check_scale(scale_path, row_index, k)?;
                        row_index += 1;
                        values.extend(row.iter().map(|&q| f32::from(q as i8) * k));
                    }
                }
            }
        }
        Ok(values)
    }
}

/// Rows converted per read in [`EmbeddingReader::read_chunk`].
const BLOCK_ROWS: usize = 1024;

/// The f32 in the first four bytes of `b`.
fn f32_at(b: &[u8], big_endian: bool) -> f32 {
    let bytes = [b[0], b[1], b[2], b[3]];
    if big_endian {
        f32::from_be_bytes(bytes)
    } else {
        f32::from_le_bytes(bytes)
    }
}

/// Loads an `N x D` embedding matrix.
///
/// `path` is a float32 `.npy`, or an int8 `.npy` when `scale` names the float32 per-row scale
/// file (row `i` = `i8[i] * scale[i]`, the format of the shared WordNet corpus). Rows are returned
/// as they are stored; callers validate and normalise them. Column-major files are read too.
pub fn load_embeddings(path: &Path, scale: Option<&Path>) -> Result<Array2<f32>> {
    let (_, header) = open(path)?;
    if !header.fortran_order {
        let mut reader = EmbeddingReader::open(path, scale)?;
        let rows = reader.rows();
        return Ok(reader
            .read_chunk(rows)?
            .unwrap_or_else(|| Array2::zeros((0, reader.dim()))));
    }
    match (scale, header.dtype) {
        (None, Dtype::F32) => read_whole::<Array2<f32>>(path),
        (Some(scale_path), Dtype::I8) => {
            let q: Array2<i8> = read_whole(path)?;
            let s: Array1<f32> = read_whole(scale_path)?;
            if s.len() != q.nrows() {
                return Err(npy_error(
                    scale_path,
                    format!("{} scales for {} rows", s.len(), q.nrows()),
                ));
            }
            for (row, &k) in s.iter().enumerate() {
                check_scale(scale_path, row, k)?;
            }
            let mut out = q.mapv(f32::from);
            for (mut row, &k) in out.rows_mut().into_iter().zip(s.iter()) {
                row.mapv_inplace(|v| v * k);
            }
            Ok(out)
        }
        (scale, dtype) => Err(scale_mismatch(path, dtype, scale.is_some())),
    }
}

/// A row's int8 scale must be finite and not negative: a negative one would flip the row's
/// direction (zero leaves a zero row, which decoding refuses by itself).
fn check_scale(path: &Path, row: usize, k: f32) -> Result<()> {
    if k.is_finite() && k >= 0.0 {
        return Ok(());
    }
    Err(npy_error(
        path,
        format!("row {row} has scale {k}: a scale must be finite and not negative"),
    ))
}

/// The error for int8 embeddings without their scales, or float32 ones with scales.
fn scale_mismatch(path: &Path, dtype: Dtype, has_scale: bool) -> Error {
    match (dtype, has_scale) {
        (Dtype::I8, false) => npy_error(
            path,
            "int8 embeddings need their per-row float32 scales (embedding = int8 x scale): \
             pass the scale file (`--scale S.npy`)",
        ),
        _ => npy_error(
            path,
            "float32 embeddings take no scale file (scales are for int8 embeddings)",
        ),
    }
}

/// Reads a whole array whose header [`open`] has checked.
fn read_whole<T: ReadNpyExt>(path: &Path) -> Result<T> {
    open(path)?;
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    T::read_npy(BufReader::new(file)).map_err(|e| npy_error(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn headers_are_checked_against_the_file_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let ok = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
            &[0; 16],
        );
        std::fs::write(&p, &ok).unwrap();
        assert_eq!(load_embeddings(&p, None).unwrap().dim(), (2, 2));
        let huge = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 768), }",
            &[0; 64],
        );
        std::fs::write(&p, &huge).unwrap();
        let err = load_embeddings(&p, None).unwrap_err().to_string();
        assert!(err.contains("claims shape"), "{err}");
        let overflow = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 768), }",
            &[],
        );
        std::fs::write(&p, &overflow).unwrap();
        assert!(load_embeddings(&p, None).is_err());
    }

    #[test]
    fn big_endian_and_many_rows_read_alike() {
        let dir = tempfile::tempdir().unwrap();
        let rows = 2500;
        let values: Vec<f32> = (0..rows * 2).map(|i| i as f32 * 0.5).collect();
        let le: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let be: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        let a = dir.path().join("le.npy");
        let b = dir.path().join("be.npy");
        let shape = format!("'shape': ({rows}, 2), }}");
        std::fs::write(
            &a,
            npy(
                &format!("{{'descr': '<f4', 'fortran_order': False, {shape}"),
                &le,
            ),
        )
        .unwrap();
        std::fs::write(
            &b,
            npy(
                &format!("{{'descr': '>f4', 'fortran_order': False, {shape}"),
                &be,
            ),
        )
        .unwrap();
        let (x, y) = (
            load_embeddings(&a, None).unwrap(),
            load_embeddings(&b, None).unwrap(),
        );
        assert_eq!(x, y);
        assert_eq!(x[[rows - 1, 1]], (rows * 2 - 1) as f32 * 0.5);
        let mut reader = EmbeddingReader::open(&a, None).unwrap();
        let first = reader.read_chunk(1500).unwrap().unwrap();
        let second = reader.read_chunk(1500).unwrap().unwrap();
        assert_eq!((first.nrows(), second.nrows()), (1500, 1000));
        assert!(reader.read_chunk(10).unwrap().is_none());
        assert_eq!(second[[0, 0]], x[[1500, 0]]);
    }
}
