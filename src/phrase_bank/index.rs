//! [`SharedIndex`]: a FAISS index that many threads search at once.

use std::ffi::CStr;
use std::path::Path;
use std::sync::OnceLock;

use faiss::index::{FromInnerPtr, IndexImpl};
use faiss::{Index, MetricType};
use faiss_sys::idx_t;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// A FAISS CPU index searched through `&self`.
///
/// `faiss-rs` exposes search on [`IndexImpl`] through `&mut self`, which would force either a lock
/// or one copy of the index per thread. FAISS documents that `search` and `reconstruct` on CPU
/// indexes are `const` and safe to call concurrently, so this wrapper calls them through the C API
/// with a shared reference. Mutation (`add`, `train`, parameter changes) still needs `&mut self`,
/// so no search can race with a change.
pub struct SharedIndex {
    inner: IndexImpl,
    /// [`SharedIndex::stored_norms`], once computed (emptied by every change of the vectors).
    norms: OnceLock<Option<Vec<f32>>>,
}

/// Nearest neighbours of a batch of queries: `k` ids and scores per query, row-major.
#[derive(Debug, Clone)]
pub struct Neighbours {
    /// Neighbours per query.
    pub k: usize,
    /// Ids, `-1` where fewer than `k` results exist.
    pub ids: Vec<i64>,
    /// Inner-product scores, best first within each query.
    pub scores: Vec<f32>,
}

impl SharedIndex {
    /// Creates an empty, untrained inner-product index from a FAISS factory string.
    pub fn from_factory(dim: usize, spec: &str) -> Result<Self> {
        let inner = faiss::index_factory(dim as u32, spec, MetricType::InnerProduct)
            .map_err(|e| Error::InvalidConfig(format!("index spec {spec:?}: {e}")))?;
        Ok(SharedIndex {
            inner,
            norms: OnceLock::new(),
        })
    }

    /// Reads an index written by [`SharedIndex::write`].
    pub fn read(path: &Path) -> Result<Self> {
        let name = path.to_str().ok_or_else(|| {
            Error::InvalidArgument(format!("path is not UTF-8: {}", path.display()))
        })?;
        let c_name = std::ffi::CString::new(name).map_err(|_| {
            Error::InvalidArgument(format!("path holds a NUL byte: {}", path.display()))
        })?;
        // the fields FAISS's reader trusts (a product quantizer's sub-quantizers, its bits)
        // are checked first: FAISS divides by them
        super::index_layout::check_index_layout(path).map_err(|reason| Error::CorruptBank {
            path: path.to_path_buf(),
            reason: format!("FAISS cannot read the index: {reason}"),
        })?;
        let mut raw: *mut std::ffi::c_void = std::ptr::null_mut();
        let mut message = vec![0u8; 512];
        // SAFETY: `c_name` is a NUL-terminated path, `raw` a valid out-pointer and `message`
        // a buffer of `message.len()` bytes; the function catches every C++ exception.
        let failed = unsafe {
            lwdec_read_index(
                c_name.as_ptr(),
                &mut raw,
                message.as_mut_ptr().cast(),
                message.len(),
            )
        };
        if failed != 0 || raw.is_null() {
            let end = message
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(message.len());
            return Err(Error::CorruptBank {
                path: path.to_path_buf(),
                reason: format!(
                    "FAISS cannot read the index: {}",
                    String::from_utf8_lossy(&message[..end])
                ),
            });
        }
        // SAFETY: `raw` is a non-null `faiss::Index*` that FAISS just allocated and that
        // nothing else owns; `IndexImpl` takes ownership and frees it.
        let inner = unsafe { IndexImpl::from_inner_ptr(raw.cast()) };
        let mut index = SharedIndex {
            inner,
            norms: OnceLock::new(),
        };
        index.repair_fast_scan();
        index.enable_reconstruct()?;
        Ok(index)
    }

    /// Writes the index to `path` (without the id map that [`SharedIndex::read`] rebuilds).
    pub fn write(&mut self, path: &Path) -> Result<()> {
        let name = path.to_str().ok_or_else(|| {
            Error::InvalidArgument(format!("path is not UTF-8: {}", path.display()))
        })?;
        let ivf = self.ivf();
        if !ivf.is_null() {
            // SAFETY: `ivf` is this index's own non-null IVF view, and `&mut self` rules out
            // a concurrent search.
            check(unsafe { faiss_sys::faiss_IndexIVF_make_direct_map(ivf, 0) })?;
        }
        let written = faiss::write_index(&self.inner, name);
        self.enable_reconstruct()?;
        written?;
        Ok(())
    }

    /// Trains the index (a no-op for exact kinds).
    pub fn train(&mut self, vectors: &[f32]) -> Result<()> {
        self.norms = OnceLock::new();
        self.inner.train(vectors)?;
        Ok(())
    }

    /// Adds vectors, which get consecutive ids after the current ones.
    pub fn add(&mut self, vectors: &[f32]) -> Result<()> {
        self.norms = OnceLock::new();
        self.inner.add(vectors)?;
        Ok(())
    }

    /// Removes every vector, keeping the training (ids restart at 0).
    pub fn reset(&mut self) -> Result<()> {
        self.norms = OnceLock::new();
        let ivf = self.ivf();
        if !ivf.is_null() {
            // SAFETY: as in `write`: our own non-null IVF view, exclusive access; the id map
            // must go before the vectors it maps.
            check(unsafe { faiss_sys::faiss_IndexIVF_make_direct_map(ivf, 0) })?;
        }
        self.inner.reset()?;
        Ok(())
    }

    /// Finishes building: makes stored vectors reconstructable by id.
    pub fn enable_reconstruct(&mut self) -> Result<()> {
        let ivf = self.ivf();
        if !ivf.is_null() {
            // SAFETY: as in `write`: our own non-null IVF view, exclusive access.
            check(unsafe { faiss_sys::faiss_IndexIVF_make_direct_map(ivf, 1) })?;
        }
        Ok(())
    }

    /// Number of stored vectors.
    pub fn len(&self) -> usize {
        self.inner.ntotal() as usize
    }

    /// Dimension of the stored vectors.
    pub fn dim(&self) -> usize {
        self.inner.d() as usize
    }

    /// Whether the index has been trained.
    pub fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }

    /// Number of inverted lists probed per query, for IVF kinds.
    pub fn nprobe(&self) -> Option<usize> {
        let ivf = self.ivf();
        // SAFETY: reading a field of our own non-null IVF view.
        (!ivf.is_null()).then(|| unsafe { faiss_sys::faiss_IndexIVF_nprobe(ivf) })
    }

    /// Number of inverted lists, for IVF kinds.
    pub fn nlist(&self) -> Option<usize> {
        let ivf = self.ivf();
        // SAFETY: reading a field of our own non-null IVF view.
        (!ivf.is_null()).then(|| unsafe { faiss_sys::faiss_IndexIVF_nlist(ivf) })
    }

    /// Sets the number of inverted lists probed per query, capped to `1..=nlist` (ignored for
    /// non-IVF kinds): probing more lists than exist is probing them all, and FAISS would
    /// otherwise size its buffers by the number asked for.
    pub fn set_nprobe(&mut self, nprobe: usize) {
        let ivf = self.ivf();
        if let Some(nlist) = self.nlist() {
            // SAFETY: our own non-null IVF view; `&mut self` rules out a concurrent search.
            unsafe { faiss_sys::faiss_IndexIVF_set_nprobe(ivf, nprobe.clamp(1, nlist.max(1))) };
        }
    }

    /// Checks that this index (read from a file) is of the kind the FAISS factory string
    /// `spec` builds: the same class, metric (inner product), dimension, and for IVF and PQ
    /// kinds the same lists, quantizer and code layout. The error says what differs.
    pub fn check_kind(&self, spec: &str) -> std::result::Result<(), String> {
        // the factory allocates by the numbers in the spec (lists, links): a bound keeps a
        // forged spec from asking for gigabytes before the comparison refuses it
        let too_big = spec
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .any(|n| n.len() > 7 || n.parse::<u64>().ok().is_none_or(|v| v > MAX_SPEC_NUMBER));
        if too_big {
            return Err(format!(
                "the manifest's index_spec {spec:?} has a number above {MAX_SPEC_NUMBER}"
            ));
        }
        let reference = SharedIndex::from_factory(self.dim(), spec)
            .map_err(|e| format!("the manifest's index_spec {spec:?} is not buildable: {e}"))?;
        let mut message = vec![0u8; 512];
        // SAFETY: both pointers are valid indexes owned by `self` and `reference` for the
        // call; the function only reads them and writes at most `message.len()` bytes
        // (NUL-terminated) into `message`.
        let differs = unsafe {
            lwdec_index_mismatch(
                self.inner.inner_ptr() as *const std::ffi::c_void,
                reference.inner.inner_ptr() as *const std::ffi::c_void,
                message.as_mut_ptr().cast(),
                message.len(),
            )
        };
        if differs == 0 {
            return Ok(());
        }
        let end = message
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(message.len());
        Err(format!(
            "the index does not match the manifest's index_spec {spec:?}: {}",
            String::from_utf8_lossy(&message[..end])
        ))
    }

    /// Searches the `k` best neighbours of each query (queries row-major, `dim` columns).
    ///
    /// Safe to call from many threads at once. FAISS parallelises a batch of queries itself.
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Neighbours> {
        let d = self.dim();
        if d == 0 || !queries.len().is_multiple_of(d) {
            return Err(Error::DimensionMismatch {
                expected: d,
                got: queries.len(),
            });
        }
        let nq = queries.len() / d;
        let mut scores = vec![0f32; nq * k];
        let mut ids: Vec<i64> = vec![-1; nq * k];
        if nq > 0 && k > 0 {
            // SAFETY: the index pointer is valid for `self`'s lifetime; `queries` holds
            // `nq * d` floats and both outputs `nq * k` slots, as FAISS reads and writes them.
            // FAISS CPU search is const and thread-safe, so `&self` suffices.
            check(unsafe {
                faiss_sys::faiss_Index_search(
                    self.inner.inner_ptr(),
                    nq as idx_t,
                    queries.as_ptr(),
                    k as idx_t,
                    scores.as_mut_ptr(),
                    ids.as_mut_ptr() as *mut idx_t,
                )
            })?;
        }
        Ok(Neighbours { k, ids, scores })
    }

    /// The stored (possibly compressed) vector of `id`.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.dim()];
        self.reconstruct_into(&[id], &mut out)?;
        Ok(out)
    }

    /// The stored vectors of `ids`, written row-major to `out` (`ids.len() * dim` floats).
    ///
    /// The same values as [`SharedIndex::reconstruct`] of each id, in one call on this thread:
    /// no OpenMP region per vector (`ffi/reconstruct.cpp`), so rayon's threads may call it.
    pub fn reconstruct_into(&self, ids: &[i64], out: &mut [f32]) -> Result<()> {
        let n = self.len();
        if let Some(&id) = ids.iter().find(|&&id| id < 0 || id as usize >= n) {
            return Err(Error::InvalidArgument(format!(
                "phrase id {id} out of range 0..{n}"
            )));
        }
        if out.len() != ids.len() * self.dim() {
            return Err(Error::DimensionMismatch {
                expected: ids.len() * self.dim(),
                got: out.len(),
            });
        }
        if ids.is_empty() {
            return Ok(());
        }
        let mut message = vec![0u8; 512];
        // SAFETY: the index pointer is valid for `self`'s lifetime; every id is in range
        // (checked above), `out` holds `ids.len() * dim` floats and `message` its length in
        // bytes; reconstruction only reads the index, and the function catches every C++
        // exception.
        let failed = unsafe {
            lwdec_reconstruct_batch(
                self.inner.inner_ptr() as *const std::ffi::c_void,
                ids.len(),
                ids.as_ptr(),
                out.as_mut_ptr(),
                message.as_mut_ptr().cast(),
                message.len(),
            )
        };
        if failed != 0 {
            let end = message
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(message.len());
            return Err(Error::Faiss(
                String::from_utf8_lossy(&message[..end]).into_owned(),
            ));
        }
        Ok(())
    }

    /// The norm ([`crate::embedding::norm`]) of every stored vector as
    /// [`SharedIndex::reconstruct`] gives it, by id: computed on the first call (list by list,
    /// in parallel: the default bank's first batch of 2,000 takes 0.32-0.35 s instead of
    /// ~0.07 s on two cores),
    /// kept until the vectors change. `None` for kinds other than IVF fast-scan with 4-bit
    /// codes (their vectors are reconstructed when needed).
    pub fn stored_norms(&self) -> Option<&[f32]> {
        self.norms.get_or_init(|| self.compute_norms()).as_deref()
    }

    /// [`SharedIndex::stored_norms`] if a call already computed them.
    pub fn stored_norms_if_computed(&self) -> Option<&[f32]> {
        self.norms.get().and_then(Option::as_deref)
    }

    fn compute_norms(&self) -> Option<Vec<f32>> {
        let index = self.inner.inner_ptr() as *const std::ffi::c_void;
        // SAFETY: a valid index pointer; the function only inspects the index's type.
        let lists = unsafe { lwdec_reconstruct_lists(index) };
        if lists <= 0 {
            return None;
        }
        let (n, dim) = (self.len(), self.dim());
        const CHUNK: usize = 256;
        let per_list: Vec<Option<Vec<(i64, f32)>>> = (0..lists)
            .into_par_iter()
            .map_init(
                || (vec![0i64; CHUNK], vec![0f32; CHUNK * dim]),
                |(ids, vectors), list| {
                    let index = self.inner.inner_ptr() as *const std::ffi::c_void;
                    let mut norms = Vec::new();
                    loop {
                        let mut rows = 0usize;
                        let mut message = [0u8; 256];
                        // SAFETY: a valid index pointer, read only; `ids` and `vectors` hold
                        // `CHUNK` rows, the most the function writes; `rows` and `message`
                        // are valid outputs; every C++ exception is caught.
                        let failed = unsafe {
                            lwdec_reconstruct_list(
                                index,
                                list,
                                norms.len(),
                                CHUNK,
                                ids.as_mut_ptr(),
                                vectors.as_mut_ptr(),
                                &mut rows,
                                message.as_mut_ptr().cast(),
                                message.len(),
                            )
                        };
                        if failed != 0 {
                            return None;
                        }
                        norms.extend(
                            ids[..rows]
                                .iter()
                                .zip(vectors.chunks(dim))
                                .map(|(&id, v)| (id, crate::embedding::norm(v))),
                        );
                        if rows < CHUNK {
                            return Some(norms);
                        }
                    }
                },
            )
            .collect();
        let mut table = vec![0f32; n];
        let mut seen = vec![false; n];
        for (id, norm) in per_list
            .into_iter()
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .flatten()
        {
            let slot = usize::try_from(id).ok().filter(|&i| i < n)?;
            table[slot] = norm;
            seen[slot] = true;
        }
        // every id once, or the lists are not what the id map says: no table
        seen.iter().all(|&s| s).then_some(table)
    }

    /// Points a read `IndexIVFPQFastScan`'s fine quantizer at its own PQ, which FAISS 1.12
    /// leaves null on read (reconstruct would crash); a no-op for other kinds.
    fn repair_fast_scan(&mut self) {
        // SAFETY: the pointer is this index's own, valid and exclusively borrowed; the repair
        // only checks the dynamic type and sets one field to a member of the same object.
        unsafe { lwdec_repair_ivfpq_fastscan(self.inner.inner_ptr().cast()) };
    }

    fn ivf(&self) -> *mut faiss_sys::FaissIndexIVF {
        // SAFETY: a dynamic cast of a valid index pointer; null when it is not an IVF index.
        unsafe { faiss_sys::faiss_IndexIVF_cast(self.inner.inner_ptr()) }
    }
}

impl std::fmt::Debug for SharedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedIndex")
            .field("dim", &self.dim())
            .field("len", &self.len())
            .field("nprobe", &self.nprobe())
            .finish()
    }
}

/// Largest number [`SharedIndex::check_kind`] accepts in a factory string (lists, PQ
/// sub-quantizers, graph links): a million lists is 100 times the largest bank's need.
const MAX_SPEC_NUMBER: u64 = 1 << 20;

extern "C" {
    /// `src/phrase_bank/ffi/index_check.cpp`: reads the index at `path` (NUL-terminated) into
    /// `*index` with every size bounded by the file's length; 0 on success, else 1 with the
    /// reason in `message`.
    fn lwdec_read_index(
        path: *const std::os::raw::c_char,
        index: *mut *mut std::ffi::c_void,
        message: *mut std::os::raw::c_char,
        capacity: usize,
    ) -> std::os::raw::c_int;

    /// `src/phrase_bank/ffi/index_check.cpp`: 0 when `index` has the class, metric, dimension
    /// and structure of `reference`, else 1 with what differs written to `message`.
    fn lwdec_index_mismatch(
        index: *const std::ffi::c_void,
        reference: *const std::ffi::c_void,
        message: *mut std::os::raw::c_char,
        capacity: usize,
    ) -> std::os::raw::c_int;

    /// `src/phrase_bank/ffi/reconstruct.cpp`: writes the stored vectors of the `n` ids (each
    /// in range) to `out` (`n * dim` floats) without OpenMP; 0 on success, else 1 with FAISS's
    /// message in `message`.
    fn lwdec_reconstruct_batch(
        index: *const std::ffi::c_void,
        n: usize,
        ids: *const i64,
        out: *mut f32,
        message: *mut std::os::raw::c_char,
        capacity: usize,
    ) -> std::os::raw::c_int;

    /// `src/phrase_bank/ffi/reconstruct.cpp`: the number of inverted lists when
    /// `lwdec_reconstruct_list` applies to `index` (IVF fast-scan, 4-bit codes), else 0.
    fn lwdec_reconstruct_lists(index: *const std::ffi::c_void) -> i64;

    /// `src/phrase_bank/ffi/reconstruct.cpp`: the ids and stored vectors of list `list`'s
    /// vectors from offset `start`, at most `capacity_rows`, written to `ids` and `out`, their
    /// number to `rows`; 0 on success, else 1 with the reason in `message`.
    fn lwdec_reconstruct_list(
        index: *const std::ffi::c_void,
        list: i64,
        start: usize,
        capacity_rows: usize,
        ids: *mut i64,
        out: *mut f32,
        rows: *mut usize,
        message: *mut std::os::raw::c_char,
        capacity: usize,
    ) -> std::os::raw::c_int;

    /// `src/phrase_bank/ffi/fastscan_repair.cpp` (built by `build.rs`): 1 if `index` is an
    /// `IndexIVFPQFastScan` (now repaired), else 0.
    fn lwdec_repair_ivfpq_fastscan(index: *mut std::ffi::c_void) -> std::os::raw::c_int;
}

/// Turns a FAISS C API status code into a `Result`, with FAISS's message.
fn check(code: std::os::raw::c_int) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: FAISS returns null or a NUL-terminated message owned by this thread's error
    // state, read before any other FAISS call.
    let msg = unsafe {
        let p = faiss_sys::faiss_get_last_error();
        if p.is_null() {
            format!("error code {code}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Err(Error::Faiss(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// FAISS's own reconstruction of `id` (through `sa_decode`).
    fn faiss_reconstruct(index: &SharedIndex, id: i64) -> Vec<f32> {
        let mut out = vec![0f32; index.dim()];
        // SAFETY: `id` is in range and `out` holds `dim` floats.
        check(unsafe {
            faiss_sys::faiss_Index_reconstruct(index.inner.inner_ptr(), id, out.as_mut_ptr())
        })
        .unwrap();
        out
    }

    #[test]
    fn batched_reconstruction_and_norms_match_faiss_bit_for_bit() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (dim, n) = (16, 3000);
        let vectors: Vec<f32> = (0..n * dim)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        for spec in ["IVF8,PQ8x4fs", "IVF8,PQ4", "Flat"] {
            let mut index = SharedIndex::from_factory(dim, spec).unwrap();
            index.train(&vectors).unwrap();
            index.add(&vectors).unwrap();
            index.enable_reconstruct().unwrap();
            let ids: Vec<i64> = (0..n as i64).rev().step_by(7).collect();
            let mut batch = vec![0f32; ids.len() * dim];
            index.reconstruct_into(&ids, &mut batch).unwrap();
            for (&id, got) in ids.iter().zip(batch.chunks(dim)) {
                let expected = faiss_reconstruct(&index, id);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(got), bits(&expected), "{spec}, id {id}");
            }
            match index.stored_norms() {
                Some(norms) => {
                    assert_eq!(spec, "IVF8,PQ8x4fs", "a table only for 4-bit fast scan");
                    assert_eq!(norms.len(), n);
                    for (id, norm) in norms.iter().enumerate() {
                        let expected =
                            crate::embedding::norm(&faiss_reconstruct(&index, id as i64));
                        assert_eq!(norm.to_bits(), expected.to_bits(), "id {id}");
                    }
                }
                None => assert_ne!(spec, "IVF8,PQ8x4fs"),
            }
            assert!(index
                .reconstruct_into(&[n as i64], &mut [0f32; 16])
                .is_err());
            index.add(&vectors[..dim]).unwrap();
            assert!(
                index.stored_norms_if_computed().is_none(),
                "a change empties the table"
            );
        }
    }
}
