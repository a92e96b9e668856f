//! Removal of near-duplicate phrases.

use rust_stemmers::Stemmer;

use super::{english_stemmer, stems, PostProcessor};

/// Drops a segment whose stemmed words overlap an earlier kept segment's by at least the
/// Jaccard threshold (`the dogs barked` after `the dog barked`).
pub struct NearDuplicates {
    threshold: f32,
    stemmer: Stemmer,
}

impl NearDuplicates {
    /// A stage dropping segments at or above `threshold` Jaccard similarity of stems.
    pub fn new(threshold: f32) -> Self {
        NearDuplicates {
            threshold,
            stemmer: english_stemmer(),
        }
    }
}

impl PostProcessor for NearDuplicates {
    fn process(&self, segments: &mut Vec<String>) {
        if segments.len() < 2 {
            return;
        }
        let mut kept: Vec<(String, std::collections::HashSet<String>)> = Vec::new();
        for segment in segments.drain(..) {
            let s = stems(&self.stemmer, &segment);
            let duplicate = kept.iter().any(|(_, k)| {
                let union = k.union(&s).count();
                union > 0 && k.intersection(&s).count() as f32 / union as f32 >= self.threshold
            });
            if !duplicate {
                kept.push((segment, s));
            }
        }
        segments.extend(kept.into_iter().map(|(text, _)| text));
    }
}
