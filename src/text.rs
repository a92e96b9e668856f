//! Text utilities below the decoders, shared by decoding and evaluation: the word overlap of
//! two texts ([`token_f1`]), which guidance, generation's MBR, the hybrid's rule and the
//! trainer's validation read, and which [`crate::eval::metrics`] reports.

use std::collections::HashMap;

/// Lower-cased words with punctuation removed (the SQuAD normalisation, without articles
/// removed).
fn f1_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Token F1 of one pair: harmonic mean of precision and recall of the bag of words.
pub fn token_f1(hypothesis: &str, reference: &str) -> f64 {
    let h = f1_tokens(hypothesis);
    let r = f1_tokens(reference);
    if h.is_empty() || r.is_empty() {
        return if h.is_empty() && r.is_empty() {
            1.0
        } else {
            0.0
        };
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for w in &r {
        *counts.entry(w).or_default() += 1;
    }
    let mut common = 0;
    for w in &h {
        if let Some(c) = counts.get_mut(w.as_str()) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    let p = common as f64 / h.len() as f64;
    let r = common as f64 / r.len() as f64;
    2.0 * p * r / (p + r)
}
