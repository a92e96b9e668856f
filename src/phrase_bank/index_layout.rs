//! [`check_index_layout`]: reads the structural fields of a FAISS index file before FAISS does.
//!
//! FAISS's reader trusts the numbers it reads: a product quantizer with 0 sub-quantizers
//! divides by zero (SIGFPE, found by fuzzing), one with 24 bits per code sizes its centroids by
//! gigabytes, and a fast-scan block size of 0 corrupts the search. `index_check.cpp` bounds
//! every size by the bytes that remain; this walk checks the fields that are not sizes, for the
//! kinds a bank holds (Flat, IVF-Flat, PQ, IVF-PQ and their fast-scan variants), in the layout
//! of FAISS 1.12 (`faiss/impl/index_read.cpp`, vendored by faiss-sys 0.7). Fast-scan codes,
//! which FAISS reads without checking their length against the index, are checked too (the
//! packed codes of a `PQ...fs` index; every block list of an `IVF...fs` index). It stops before
//! the other kinds' inverted lists, which FAISS sizes from their own counts (bounded by
//! `index_check.cpp`'s reader); the checks after FAISS's read compare the rest with the
//! manifest.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// Largest dimension, inverted list count or sub-quantizer count a bank's index may hold.
const MAX_FIELD: u64 = 1 << 20;
/// FAISS's inner-product metric (`METRIC_INNER_PRODUCT`).
const INNER_PRODUCT: u32 = 0;
/// FAISS's L2 metric; any larger value carries an argument and no bank uses it.
const L2: u32 = 1;

/// Checks the structural fields of the FAISS index at `path`; the error says which field is
/// wrong and why.
pub(crate) fn check_index_layout(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read its size: {e}"))?
        .len();
    let mut walk = Walk {
        file: BufReader::new(file),
        remaining: len,
    };
    walk.index(true).map(|_| ())
}

/// The fields of an index header the walk compares.
struct Header {
    d: u64,
    ntotal: u64,
    metric: u32,
    /// Inverted lists, for IVF kinds (0 otherwise).
    nlist: u64,
}

struct Walk {
    file: BufReader<File>,
    remaining: u64,
}

impl Walk {
    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut buf = [0u8; N];
        self.file
            .read_exact(&mut buf)
            .map_err(|_| format!("the file ends inside {what}"))?;
        self.remaining = self.remaining.saturating_sub(N as u64);
        Ok(buf)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.bytes::<8>(what).map(u64::from_le_bytes)
    }

    fn i32(&mut self, what: &str) -> Result<i32, String> {
        self.bytes::<4>(what).map(i32::from_le_bytes)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.bytes::<4>(what).map(u32::from_le_bytes)
    }

    /// Skips a FAISS vector (an 8-byte count, then `count` items of `item` bytes); returns the
    /// count.
    fn vector(&mut self, item: u64, what: &str) -> Result<u64, String> {
        let count = self.u64(what)?;
        let bytes = count
            .checked_mul(item)
            .filter(|&b| b <= self.remaining)
            .ok_or_else(|| {
                format!(
                    "{what} claims {count} items of {item} bytes where {} bytes remain",
                    self.remaining
                )
            })?;
        self.file
            .seek_relative(bytes as i64)
            .map_err(|e| format!("cannot skip {what}: {e}"))?;
        self.remaining -= bytes;
        Ok(count)
    }

    /// One index (the file's, or an IVF index's coarse quantizer when `top` is false).
    fn index(&mut self, top: bool) -> Result<Header, String> {
        let tag = self.bytes::<4>("the index kind")?;
        match &tag {
            b"IxFI" | b"IxF2" | b"IxFl" => {
                let header = self.header()?;
                let floats = self.vector(4, "the flat index's vectors")?;
                if Some(floats) != header.ntotal.checked_mul(header.d) {
                    return Err(format!(
                        "a flat index of {} vectors of dimension {} holds {floats} floats",
                        header.ntotal, header.d
                    ));
                }
                Ok(header)
            }
            _ if !top => Err(format!(
                "the coarse quantizer is a {}, not a flat index",
                show(&tag)
            )),
            b"IwFl" => self.ivf_header(),
            b"IwPQ" => {
                let header = self.ivf_header()?;
                self.bytes::<1>("by_residual")?;
                self.u64("code_size")?;
                self.product_quantizer(&header, false)?;
                Ok(header)
            }
            b"IxPq" => {
                let header = self.header()?;
                self.product_quantizer(&header, false)?;
                Ok(header)
            }
            b"IPfs" => {
                let header = self.header()?;
                let m = self.product_quantizer(&header, true)?;
                self.i32("implem")?;
                let bbs = self.block_size()?;
                self.i32("qbs")?;
                let ntotal2 = self.u64("ntotal2")?;
                let m2 = pairs(self.u64("M2")?, m)?;
                // a search reads ntotal2 x M2 / 2 bytes of codes
                let codes = self.vector(1, "the packed codes")?;
                if Some(codes) != ntotal2.checked_mul(m2).map(|b| b / 2) {
                    return Err(format!(
                        "{codes} bytes of packed codes for {ntotal2} padded vectors of {m2} \
                         half-bytes"
                    ));
                }
                let padded = header.ntotal.div_ceil(bbs) * bbs;
                if ntotal2 != padded {
                    return Err(format!(
                        "ntotal2 is {ntotal2}, expected {padded} ({} vectors in blocks of {bbs})",
                        header.ntotal
                    ));
                }
                Ok(header)
            }
            b"IwPf" => {
                let header = self.ivf_header()?;
                self.bytes::<1>("by_residual")?;
                self.u64("code_size")?;
                let bbs = self.block_size()?;
                let m2 = self.u64("M2")?;
                self.i32("implem")?;
                self.u64("qbs2")?;
                let m = self.product_quantizer(&header, true)?;
                pairs(m2, m)?;
                self.block_lists(&header, bbs, m2)?;
                Ok(header)
            }
            _ => Err(format!(
                "an index of kind {} (a bank holds Flat, IVF-Flat, PQ, IVF-PQ or fast-scan)",
                show(&tag)
            )),
        }
    }

    fn header(&mut self) -> Result<Header, String> {
        let d = self.i32("the dimension")?;
        if d <= 0 || d as u64 > MAX_FIELD {
            return Err(format!("dimension {d} (expected 1..={MAX_FIELD})"));
        }
        let ntotal = self.u64("the vector count")?;
        if ntotal > i64::MAX as u64 {
            return Err(format!("negative vector count {}", ntotal as i64));
        }
        self.u64("the header")?;
        self.u64("the header")?;
        self.bytes::<1>("is_trained")?;
        let metric = self.u32("the metric")?;
        if metric > L2 {
            return Err(format!(
                "metric {metric} (a bank's index uses inner product, {INNER_PRODUCT})"
            ));
        }
        Ok(Header {
            d: d as u64,
            ntotal,
            metric,
            nlist: 0,
        })
    }

    fn ivf_header(&mut self) -> Result<Header, String> {
        let mut header = self.header()?;
        let nlist = self.u64("nlist")?;
        header.nlist = nlist;
        if nlist == 0 || nlist > MAX_FIELD {
            return Err(format!("{nlist} inverted lists (expected 1..={MAX_FIELD})"));
        }
        self.u64("nprobe")?;
        let quantizer = self.index(false)?;
        if quantizer.d != header.d || quantizer.metric != INNER_PRODUCT {
            return Err(format!(
                "a coarse quantizer of dimension {} and metric {}, expected dimension {} and \
                 inner product ({INNER_PRODUCT})",
                quantizer.d, quantizer.metric, header.d
            ));
        }
        if quantizer.ntotal > nlist {
            return Err(format!(
                "a coarse quantizer of {} centroids for {nlist} lists",
                quantizer.ntotal
            ));
        }
        let map = self.bytes::<1>("the direct map's kind")?[0];
        if map > 2 {
            return Err(format!("direct map kind {map} (expected 0, 1 or 2)"));
        }
        self.vector(8, "the direct map")?;
        if map == 2 {
            self.vector(16, "the direct map's table")?;
        }
        Ok(header)
    }

    /// A product quantizer's `d`, `M` and `nbits` (fast-scan codes take 4 bits) and its
    /// centroids; returns `M`.
    fn product_quantizer(&mut self, header: &Header, fast_scan: bool) -> Result<u64, String> {
        let d = self.u64("the quantizer's dimension")?;
        let m = self.u64("the number of sub-quantizers")?;
        let nbits = self.u64("the bits per code")?;
        if d != header.d {
            return Err(format!(
                "a product quantizer of dimension {d} in an index of dimension {}",
                header.d
            ));
        }
        if m == 0 || d % m != 0 {
            return Err(format!(
                "{m} sub-quantizers for dimension {d} (it must divide the dimension)"
            ));
        }
        let allowed = if fast_scan { 4..=4 } else { 1..=16 };
        if !allowed.contains(&nbits) {
            return Err(format!(
                "{nbits} bits per code (expected {}..={})",
                allowed.start(),
                allowed.end()
            ));
        }
        let centroids = self.vector(4, "the product quantizer's centroids")?;
        if centroids != d << nbits {
            return Err(format!(
                "{centroids} centroid floats, expected {} ({d} x 2^{nbits})",
                d << nbits
            ));
        }
        Ok(m)
    }

    /// A fast-scan block size: a positive multiple of 32.
    fn block_size(&mut self) -> Result<u64, String> {
        let bbs = self.i32("the block size")?;
        if bbs <= 0 || bbs % 32 != 0 || bbs as u64 > MAX_FIELD {
            return Err(format!(
                "fast-scan block size {bbs} (a positive multiple of 32)"
            ));
        }
        Ok(bbs as u64)
    }

    /// A fast-scan IVF index's inverted lists (FAISS's `BlockInvertedLists`, tag `ilbl`):
    /// blocks of `bbs` vectors of `bbs x M2 / 2` bytes, and per list `ceil(ids / bbs)` blocks
    /// of codes, which a search reads without checking.
    fn block_lists(&mut self, header: &Header, bbs: u64, m2: u64) -> Result<(), String> {
        let tag = self.bytes::<4>("the inverted lists' kind")?;
        if &tag != b"ilbl" {
            return Err(format!(
                "fast-scan inverted lists of kind {}, expected \"ilbl\"",
                show(&tag)
            ));
        }
        let nlist = self.u64("the inverted lists' count")?;
        self.u64("the inverted lists' code size")?;
        let per_block = self.u64("the vectors per block")?;
        let block_bytes = self.u64("the bytes per block")?;
        if nlist != header.nlist || per_block != bbs || block_bytes != bbs * m2 / 2 {
            return Err(format!(
                "inverted lists of {nlist} lists, blocks of {per_block} vectors in \
                 {block_bytes} bytes; the index has {} lists, blocks of {bbs} vectors in {} \
                 bytes",
                header.nlist,
                bbs * m2 / 2
            ));
        }
        let mut stored = 0u64;
        for list in 0..nlist {
            let ids = self.vector(8, "a list's ids")?;
            let codes = self.vector(1, "a list's codes")?;
            if codes != ids.div_ceil(bbs) * block_bytes {
                return Err(format!(
                    "list {list} holds {ids} vectors and {codes} bytes of codes, expected {}",
                    ids.div_ceil(bbs) * block_bytes
                ));
            }
            stored += ids;
        }
        if stored != header.ntotal {
            return Err(format!(
                "{stored} vectors in the inverted lists, {} in the header",
                header.ntotal
            ));
        }
        Ok(())
    }
}

/// A fast-scan index's `M2`: its `m` sub-quantizers rounded up to pairs.
fn pairs(m2: u64, m: u64) -> Result<u64, String> {
    if m2 == m.div_ceil(2) * 2 {
        Ok(m2)
    } else {
        Err(format!("M2 is {m2} for {m} sub-quantizers"))
    }
}

/// A four-byte tag as text when printable, else as hex.
fn show(tag: &[u8; 4]) -> String {
    if tag.iter().all(|b| b.is_ascii_graphic()) {
        format!("{:?}", String::from_utf8_lossy(tag))
    } else {
        format!("0x{:08x}", u32::from_le_bytes(*tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phrase_bank::index::SharedIndex;

    /// Builds and trains a small index of `spec`, writes it, and returns its bytes.
    fn written(spec: &str, dir: &Path) -> Vec<u8> {
        let d = 32;
        let n = 512;
        let mut rows = Vec::with_capacity(n * d);
        for i in 0..n {
            for j in 0..d {
                rows.push(((i * 7 + j * 13) % 29) as f32 / 29.0 - 0.5);
            }
        }
        let mut index = SharedIndex::from_factory(d, spec).unwrap();
        index.train(&rows).unwrap();
        index.add(&rows).unwrap();
        let path = dir.join(spec.replace(',', "_"));
        index.write(&path).unwrap();
        std::fs::read(&path).unwrap()
    }

    fn check(bytes: &[u8], dir: &Path) -> Result<(), String> {
        let path = dir.join("forged.faiss");
        std::fs::write(&path, bytes).unwrap();
        check_index_layout(&path)
    }

    #[test]
    fn every_kind_a_bank_holds_passes_and_forged_quantizers_fail() {
        let tmp = tempfile::tempdir().unwrap();
        let pq8 = written("PQ8", tmp.path());
        for spec in [
            "Flat",
            "IVF4,Flat",
            "IVF4,PQ8x4",
            "PQ8",
            "PQ8x4fs",
            "IVF4,PQ8x4fs",
        ] {
            let bytes = if spec == "PQ8" {
                pq8.clone()
            } else {
                written(spec, tmp.path())
            };
            check(&bytes, tmp.path()).unwrap_or_else(|e| panic!("{spec}: {e}"));
            // the file cut anywhere before its bulk data fails with a reason, never a panic
            for cut in [0, 3, 10, 40, 60, 90] {
                if cut < bytes.len() {
                    assert!(
                        check(&bytes[..cut], tmp.path()).is_err(),
                        "{spec} cut {cut}"
                    );
                }
            }
        }
        // PQ8 on 32 dimensions: header (4 + 33 + 4 bytes), then the quantizer's d, M, nbits
        let bytes = pq8;
        assert_eq!(&bytes[..4], b"IxPq");
        let m_at = 4 + 4 + 8 * 3 + 1 + 4 + 8;
        assert_eq!(
            u64::from_le_bytes(bytes[m_at..m_at + 8].try_into().unwrap()),
            8
        );
        for (m, nbits, expected) in [
            (0u64, 8u64, "0 sub-quantizers"),
            (5, 8, "5 sub-quantizers"),
            (8, 24, "24 bits per code"),
            (8, 0, "0 bits per code"),
        ] {
            let mut forged = bytes.clone();
            forged[m_at..m_at + 8].copy_from_slice(&m.to_le_bytes());
            forged[m_at + 8..m_at + 16].copy_from_slice(&nbits.to_le_bytes());
            let err = check(&forged, tmp.path()).unwrap_err();
            assert!(err.contains(expected), "M {m} nbits {nbits}: {err}");
        }
        // fast-scan codes that a search would read past: the block lists of an IVF index
        let ivf_fs = written("IVF4,PQ8x4fs", tmp.path());
        let at = ivf_fs.windows(4).position(|w| w == b"ilbl").unwrap();
        let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        let (per_block, block_bytes) = (at + 4 + 16, at + 4 + 24);
        assert_eq!(u64_at(&ivf_fs, per_block), 32);
        assert_eq!(u64_at(&ivf_fs, block_bytes), 32 * 8 / 2);
        let mut forged = ivf_fs.clone();
        forged[block_bytes..block_bytes + 8].copy_from_slice(&8u64.to_le_bytes());
        let err = check(&forged, tmp.path()).unwrap_err();
        assert!(err.contains("blocks of 32 vectors in 8 bytes"), "{err}");
        let ids = at + 4 + 32;
        let codes = ids + 8 + 8 * u64_at(&ivf_fs, ids) as usize;
        let mut forged = ivf_fs.clone();
        let short = u64_at(&ivf_fs, codes) - 16;
        forged[codes..codes + 8].copy_from_slice(&short.to_le_bytes());
        let err = check(&forged, tmp.path()).unwrap_err();
        assert!(err.contains("list 0 holds"), "{err}");
        // and the packed codes of a flat fast-scan index
        let pq_fs = written("PQ8x4fs", tmp.path());
        // 512 vectors in blocks of 32, 8 sub-quantizers: 512 x 8 / 2 bytes, the file's end
        let count = pq_fs.len() - 2048 - 8;
        assert_eq!(u64_at(&pq_fs, count), 2048);
        let mut forged = pq_fs[..pq_fs.len() - 1].to_vec();
        forged[count..count + 8].copy_from_slice(&2047u64.to_le_bytes());
        let err = check(&forged, tmp.path()).unwrap_err();
        assert!(err.contains("2047 bytes of packed codes"), "{err}");
        // an unknown kind, and a coarse quantizer that is not flat
        let mut forged = bytes.clone();
        forged[..4].copy_from_slice(b"IxHE");
        assert!(check(&forged, tmp.path()).unwrap_err().contains("IxHE"));
        let mut ivf = written("IVF4,Flat", tmp.path());
        let q_at = 4 + 4 + 8 * 3 + 1 + 4 + 16;
        assert_eq!(&ivf[q_at..q_at + 4], b"IxFI");
        ivf[q_at..q_at + 4].copy_from_slice(b"IxPq");
        let err = check(&ivf, tmp.path()).unwrap_err();
        assert!(err.contains("not a flat index"), "{err}");
    }
}
