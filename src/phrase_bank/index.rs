//! [`SharedIndex`]: a FAISS index that many threads search at once.

use std::ffi::CStr;
use std::path::Path;

use faiss::index::{FromInnerPtr, IndexImpl};
use faiss::{Index, MetricType};
use faiss_sys::idx_t;

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
        Ok(SharedIndex { inner })
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
        let mut index = SharedIndex { inner };
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
        self.inner.train(vectors)?;
        Ok(())
    }

    /// Adds vectors, which get consecutive ids after the current ones.
    pub fn add(&mut self, vectors: &[f32]) -> Result<()> {
        self.inner.add(vectors)?;
        Ok(())
    }

    /// Removes every vector, keeping the training (ids restart at 0).
    pub fn reset(&mut self) -> Result<()> {
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
        if id < 0 || id as usize >= self.len() {
            return Err(Error::InvalidArgument(format!(
                "phrase id {id} out of range 0..{}",
                self.len()
            )));
        }
        let mut out = vec![0f32; self.dim()];
        // SAFETY: `id` is in range (checked above) and `out` holds `dim` floats; reconstruct
        // is const in FAISS.
        check(unsafe {
            faiss_sys::faiss_Index_reconstruct(self.inner.inner_ptr(), id, out.as_mut_ptr())
        })?;
        Ok(out)
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
