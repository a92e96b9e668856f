//! Reading embedding matrices from `.npy` files (float32, or int8 with per-row scales).

use std::path::Path;

use ndarray::{Array1, Array2};
use ndarray_npy::ReadNpyExt;

use crate::error::{Error, Result};

/// Loads an `N x D` embedding matrix.
///
/// `path` is a float32 `.npy`, or an int8 `.npy` when `scale` names the float32 per-row scale
/// file (row `i` = `i8[i] * scale[i]`, the format of the shared WordNet corpus). Rows are returned
/// as they are stored; callers validate and normalise them.
pub fn load_embeddings(path: &Path, scale: Option<&Path>) -> Result<Array2<f32>> {
    match scale {
        None => read_npy::<Array2<f32>>(path),
        Some(scale_path) => {
            let q: Array2<i8> = read_npy(path)?;
            let s: Array1<f32> = read_npy(scale_path)?;
            if s.len() != q.nrows() {
                return Err(Error::Npy {
                    path: scale_path.to_path_buf(),
                    reason: format!("{} scales for {} rows", s.len(), q.nrows()),
                });
            }
            let mut out = q.mapv(f32::from);
            for (mut row, &k) in out.rows_mut().into_iter().zip(s.iter()) {
                row.mapv_inplace(|v| v * k);
            }
            Ok(out)
        }
    }
}

fn read_npy<T: ReadNpyExt>(path: &Path) -> Result<T> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    T::read_npy(std::io::BufReader::new(file)).map_err(|e| Error::Npy {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
