//! Measurements of decoding quality: text comparison, noise, recall.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::decoder::Decoder;
use crate::embedding::{dot, normalize_in_place};
use crate::error::Result;

/// Lower-cases and collapses whitespace: the comparison used for exact-match figures.
pub fn normalize_text(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Whether two texts are equal case-insensitively with whitespace collapsed.
pub fn same_text(a: &str, b: &str) -> bool {
    normalize_text(a) == normalize_text(b)
}

/// Returns a unit vector whose cosine with the unit vector `v` is exactly `cosine`: `v` mixed
/// with Gaussian noise orthogonal to it.
pub fn perturb_to_cosine(v: &[f32], cosine: f32, rng: &mut impl rand::Rng) -> Vec<f32> {
    let mut noise: Vec<f32> = (0..v.len()).map(|_| StandardNormal.sample(rng)).collect();
    let along = dot(&noise, v);
    noise.iter_mut().zip(v).for_each(|(n, x)| *n -= along * x);
    normalize_in_place(&mut noise);
    let side = (1.0 - cosine * cosine).max(0.0).sqrt();
    let mut out: Vec<f32> = v
        .iter()
        .zip(&noise)
        .map(|(x, n)| cosine * x + side * n)
        .collect();
    normalize_in_place(&mut out);
    out
}

/// Perturbs every row of a batch to `cosine` (1.0 leaves rows unchanged, normalised), seeded.
pub fn perturb_rows(rows: &ndarray::Array2<f32>, cosine: f32, seed: u64) -> ndarray::Array2<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = rows.clone();
    for mut row in out.rows_mut() {
        let mut v = row.to_vec();
        normalize_in_place(&mut v);
        let p = if cosine >= 1.0 {
            v
        } else {
            perturb_to_cosine(&v, cosine, &mut rng)
        };
        row.assign(&ndarray::ArrayView1::from(&p));
    }
    out
}

/// Share of rows whose decoded text equals the reference (see [`same_text`]).
pub fn exact_match_rate(
    decoder: &dyn Decoder,
    embeddings: ndarray::ArrayView2<f32>,
    boundaries: &[usize],
    references: &[String],
) -> Result<f64> {
    let decoded = decoder.batch_decode_with_sessions(embeddings, boundaries)?;
    let hits = decoded
        .iter()
        .zip(references)
        .filter(|(d, r)| same_text(&d.text, r))
        .count();
    Ok(hits as f64 / references.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perturbation_hits_the_cosine() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut v: Vec<f32> = (0..768).map(|i| (i as f32).sin()).collect();
        normalize_in_place(&mut v);
        for c in [0.95f32, 0.8, 0.5] {
            let p = perturb_to_cosine(&v, c, &mut rng);
            assert!((dot(&p, &v) - c).abs() < 1e-4);
            assert!((dot(&p, &p) - 1.0).abs() < 1e-4);
        }
        assert_eq!(normalize_text("  A  b\tC "), "a b c");
    }
}
