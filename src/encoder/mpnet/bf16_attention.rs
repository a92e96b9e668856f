//! Attention of the bf16 encoder, per text and head in float32: scores for 16 keys at once
//! (a key a lane, the keys transposed once per task), the value sum in registers, the context
//! written as bf16 pairs.

use std::arch::x86_64::*;

use super::bf16_gemm::{bf16_pairs, lanes, store_pairs};
use super::bf16_simd::transpose16;

/// Buffers of one thread's attention tasks, reused from task to task.
#[derive(Default)]
pub(super) struct HeadScratch {
    /// Bias by `key - query + len - 1`, padded with 16 zeros.
    pub(super) table: Vec<f32>,
    /// The keys transposed, by 16: `[keys / 16][width][16]`, keys padded with zeros to a
    /// multiple of 16 (a group's elements at fixed offsets from one address).
    keys: Vec<f32>,
    /// One query's scores, `keys` long.
    scores: Vec<f32>,
}

/// One head of one text: its slices of the fused q/k/v rows.
pub(super) struct Head<'a> {
    pub(super) qkv: &'a [f32],
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) stride: usize,
    pub(super) hidden: usize,
    /// First column of the head within q (and within k and v, past `hidden`, `2 * hidden`).
    pub(super) offset: usize,
    pub(super) width: usize,
}

impl Head<'_> {
    /// `softmax(q k^T + bias) v` for every query of the text (the bias in `s.table`), written
    /// to `out` as bf16 pairs (row-major, `hidden / 2` a row).
    ///
    /// Each score is the former scalar dot product (16 partial sums over 16-column chunks,
    /// then summed in lane order; the tests keep it), computed for 16 keys at once, a key a
    /// lane, with the same additions in the same order, over the keys transposed once per
    /// task. The value sum keeps 64 columns in four registers.
    ///
    /// # Safety
    /// AVX512F; `out` holds the text's rows, whose pairs of this head no one else writes.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn attend(&self, out: *mut u32, s: &mut HeadScratch) {
        let (len, hd) = (self.len, self.width);
        let row = |t: usize, part: usize| {
            let at = (self.start + t) * self.stride + part * self.hidden + self.offset;
            &self.qkv[at..at + hd]
        };
        let keys = len.next_multiple_of(16);
        s.keys.resize(hd * keys, 0.0);
        s.scores.resize(keys, 0.0);
        // the keys transposed, 16 by 16 (keys past the text hold zeros)
        let first = self.start * self.stride + self.hidden + self.offset;
        for j0 in (0..len).step_by(16) {
            for d0 in (0..hd).step_by(16) {
                let m = lanes(hd - d0);
                let rows: [__m512; 16] = std::array::from_fn(|r| match j0 + r < len {
                    // SAFETY: the mask keeps to elements d0..hd of key j0 + r's head.
                    true => unsafe {
                        let at = first + (j0 + r) * self.stride + d0;
                        _mm512_maskz_loadu_ps(m, self.qkv.as_ptr().wrapping_add(at))
                    },
                    false => _mm512_setzero_ps(),
                });
                let columns = transpose16(rows);
                for (d, &c) in columns[..(hd - d0).min(16)].iter().enumerate() {
                    // SAFETY: s.keys has `hd * keys` floats; j0 + 16 <= keys, d0 + d < hd.
                    unsafe {
                        _mm512_storeu_ps(s.keys.as_mut_ptr().add(j0 * hd + (d0 + d) * 16), c)
                    };
                }
            }
        }
        let (chunks, kt) = (hd / 16, s.keys.as_ptr());
        for i in 0..len {
            let q = row(i, 0);
            let bias = &s.table[len - 1 - i..];
            let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
            for j0 in (0..len).step_by(16) {
                // SAFETY: d < hd, j0 + 16 <= keys.
                let k = |d: usize| unsafe { _mm512_loadu_ps(kt.add(j0 * hd + d * 16)) };
                // SAFETY: d < hd, q's length.
                let term =
                    |d: usize| _mm512_mul_ps(_mm512_set1_ps(unsafe { *q.as_ptr().add(d) }), k(d));
                // `dot`: 16 partial sums over the 16-column chunks, summed in lane order (as
                // `Iterator::sum` from -0.0, which adds nothing), plus the tail's sum
                let mut acc = [_mm512_setzero_ps(); 16];
                for c in 0..chunks {
                    for (l, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm512_add_ps(*acc, term(16 * c + l));
                    }
                }
                let mut dot = acc[1..].iter().fold(acc[0], |d, &a| _mm512_add_ps(d, a));
                if !hd.is_multiple_of(16) {
                    let tail = (16 * chunks..hd)
                        .fold(_mm512_set1_ps(-0.0), |t, d| _mm512_add_ps(t, term(d)));
                    dot = _mm512_add_ps(dot, tail);
                }
                // SAFETY: the table has 16 padding zeros, the scores `keys` floats.
                let score = unsafe {
                    let score = _mm512_add_ps(dot, _mm512_loadu_ps(bias.as_ptr().add(j0)));
                    _mm512_storeu_ps(s.scores.as_mut_ptr().add(j0), score);
                    score
                };
                // max is exact, so its order does not matter (a zero's sign aside, which
                // leaves every `score - max`'s exp unchanged)
                max = _mm512_mask_max_ps(max, lanes(len - j0), max, score);
            }
            let max = _mm512_reduce_max_ps(max);
            let scores = &mut s.scores[..len];
            let mut sum = 0.0;
            for score in scores.iter_mut() {
                *score = (*score - max).exp();
                sum += *score;
            }
            let inv = _mm512_set1_ps(1.0 / sum);
            // SAFETY: the caller's contract: query i's row is in `out`.
            let dst = unsafe { out.add(((self.start + i) * self.hidden + self.offset) / 2) };
            for c0 in (0..hd).step_by(64) {
                let m: [__mmask16; 4] =
                    std::array::from_fn(|k| lanes((hd - c0).saturating_sub(16 * k)));
                let mut ctx = [_mm512_setzero_ps(); 4];
                for (j, &p) in scores.iter().enumerate() {
                    let (p, v) = (_mm512_set1_ps(p), row(j, 2)[c0..].as_ptr());
                    for (k, ctx) in ctx.iter_mut().enumerate() {
                        // SAFETY: the mask keeps to the head's columns c0..hd.
                        let v = unsafe { _mm512_maskz_loadu_ps(m[k], v.wrapping_add(16 * k)) };
                        *ctx = _mm512_add_ps(*ctx, _mm512_mul_ps(p, v));
                    }
                }
                let ctx = ctx.map(|c| _mm512_mul_ps(c, inv));
                for half in 0..2 {
                    let pairs = lanes((hd - c0).saturating_sub(32 * half).min(32) / 2);
                    let packed = bf16_pairs([ctx[2 * half], ctx[2 * half + 1]]);
                    // SAFETY: the caller's contract; the mask keeps to this head's pairs.
                    unsafe { store_pairs(dst.add(c0 / 2 + 16 * half), pairs, packed) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::bf16_gemm::{supported, to_bf16};
    use super::super::bf16_simd::test_values as values;
    use super::*;

    /// Dot product in 16 lanes, then the lanes summed in order: the order of additions
    /// [`Head::attend`] reproduces (the former scalar code).
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 16];
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ca.zip(cb) {
            for l in 0..16 {
                acc[l] += x[l] * y[l];
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    #[test]
    fn attention_equals_the_scalar_bits() {
        if !supported() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        // head sizes with a tail past the 16-lane chunks and a partial block of 64 columns
        for (heads, hd) in [(2, 24), (3, 64), (2, 80)] {
            let h = heads * hd;
            for len in [1, 5, 16, 17, 40] {
                let start = 3; // a text after others
                let qkv = values((start + len) * 3 * h, len + hd);
                let mut out = vec![0u32; (start + len) * h / 2];
                for head in 0..heads {
                    let mut scratch = HeadScratch {
                        table: values(2 * len - 1, head),
                        ..Default::default()
                    };
                    scratch.table.resize(2 * len - 1 + 16, 0.0);
                    let table = scratch.table.clone();
                    let at = Head {
                        qkv: &qkv,
                        start,
                        len,
                        stride: 3 * h,
                        hidden: h,
                        offset: head * hd,
                        width: hd,
                    };
                    // SAFETY: AVX512F is present; `out` holds every row of the text.
                    unsafe { at.attend(out.as_mut_ptr(), &mut scratch) };
                    let row = |t: usize, part: usize| {
                        let at = (start + t) * 3 * h + part * h + head * hd;
                        &qkv[at..at + hd]
                    };
                    for i in 0..len {
                        let mut scores: Vec<f32> = (0..len)
                            .map(|j| dot(row(i, 0), row(j, 1)) + table[j + len - 1 - i])
                            .collect();
                        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                        let mut sum = 0.0;
                        for score in scores.iter_mut() {
                            *score = (*score - max).exp();
                            sum += *score;
                        }
                        let mut ctx = vec![0f32; hd];
                        for (j, &p) in scores.iter().enumerate() {
                            ctx.iter_mut().zip(row(j, 2)).for_each(|(c, v)| *c += p * v);
                        }
                        let inv = 1.0 / sum;
                        for (c, &v) in ctx.iter().enumerate() {
                            let col = head * hd + c;
                            let pair = out[((start + i) * h + col) / 2];
                            let got = (pair >> (16 * (col % 2))) as u16;
                            assert_eq!(got, to_bf16(v * inv), "hd {hd}, len {len}, {i}, {c}");
                        }
                    }
                }
            }
        }
    }
}
