//! Measurements of decoding quality: [`metrics`] (exact match, token F1, BLEU, chrF),
//! noise to a given cosine, [`evaluate`] over a labelled set, and the bundled [`samples`].

pub mod fluency;
pub mod metrics;
mod roundtrip;
pub mod samples;

pub use crate::roundtrip::roundtrip_cosines;
pub use roundtrip::CosineSummary;

pub use crate::monitoring::percentile;

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::decoder::Decoder;
use crate::embedding::{dot, normalize_in_place};
use crate::error::Result;
use metrics::same_text;

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
    use super::metrics::normalize_text;
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

/// Quality and speed of one decoder on a labelled set (see [`evaluate`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalReport {
    /// Decoder name.
    pub decoder: String,
    /// Rows decoded.
    pub rows: usize,
    /// Exact match rate (case-insensitive, whitespace collapsed), 0..1.
    pub exact_match: f64,
    /// Mean token F1, 0..1.
    pub token_f1: f64,
    /// Corpus BLEU, 0..100 (sacrebleu-compatible, lower-cased).
    pub bleu: f64,
    /// Corpus chrF, 0..100.
    pub chrf: f64,
    /// Mean confidence the decoder reported.
    pub mean_confidence: f64,
    /// Per-row decode latency percentiles, microseconds: p50, p95, p99.
    pub latency_us: [f64; 3],
    /// How many outputs each source produced (`phrase_bank`, `generative`).
    pub sources: std::collections::BTreeMap<String, usize>,
    /// The decoded texts, in row order.
    #[serde(skip)]
    pub texts: Vec<String>,
    /// Round-trip cosine of the texts, when measured ([`roundtrip_cosines`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roundtrip_cosine: Option<CosineSummary>,
}

/// Decodes every row (sessions start at `boundaries`; row 0 implied), timing each decode, and
/// scores the outputs against `references`.
pub fn evaluate(
    name: &str,
    decoder: &dyn Decoder,
    embeddings: ndarray::ArrayView2<f32>,
    boundaries: &[usize],
    references: &[String],
) -> Result<EvalReport> {
    use metrics::{corpus_bleu, corpus_chrf, exact_match, mean_token_f1};
    if embeddings.nrows() == 0 {
        return Err(crate::Error::InvalidArgument(
            "no rows to evaluate: the scores of an empty set would be meaningless".into(),
        ));
    }
    if references.len() != embeddings.nrows() {
        return Err(crate::Error::InvalidArgument(format!(
            "{} references for {} embeddings",
            references.len(),
            embeddings.nrows()
        )));
    }
    crate::decoder::check_batch(&embeddings, decoder.dim())?;
    let ranges = crate::decoder::session_ranges(embeddings.nrows(), boundaries)?;
    let mut texts = Vec::with_capacity(references.len());
    let mut latencies = Vec::with_capacity(references.len());
    let mut confidence = 0.0;
    let mut sources = std::collections::BTreeMap::new();
    for range in ranges {
        let mut session = decoder.new_session();
        for row in range {
            let input = embeddings.row(row).to_vec();
            let started = std::time::Instant::now();
            let decoded = decoder
                .decode_in_session(&input, &mut session)
                .map_err(|e| crate::Error::AtRow {
                    row,
                    source: Box::new(e),
                })?;
            latencies.push(started.elapsed().as_secs_f64() * 1e6);
            confidence += f64::from(decoded.confidence);
            let source = match decoded.source {
                crate::Source::PhraseBank { .. } => "phrase_bank",
                crate::Source::Generative => "generative",
                crate::Source::Refined => "refined",
            };
            *sources.entry(source.to_string()).or_insert(0) += 1;
            texts.push(decoded.text);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let p = |q| crate::monitoring::percentile(&latencies, q);
    Ok(EvalReport {
        decoder: name.to_string(),
        rows: texts.len(),
        exact_match: exact_match(&texts, references),
        token_f1: mean_token_f1(&texts, references),
        bleu: corpus_bleu(&texts, references),
        chrf: corpus_chrf(&texts, references),
        mean_confidence: confidence / texts.len().max(1) as f64,
        latency_us: [p(50.0), p(95.0), p(99.0)],
        sources,
        texts,
        roundtrip_cosine: None,
    })
}
