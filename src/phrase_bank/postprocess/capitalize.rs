//! Sentence capitalisation.

use super::PostProcessor;

/// Upper-cases the first letter of every segment (each segment becomes a sentence).
#[derive(Debug, Clone, Copy, Default)]
pub struct Capitalize;

impl PostProcessor for Capitalize {
    fn process(&self, segments: &mut Vec<String>) {
        for segment in segments.iter_mut() {
            if let Some((i, c)) = segment.char_indices().find(|(_, c)| c.is_alphanumeric()) {
                if c.is_lowercase() {
                    let upper: String = c.to_uppercase().collect();
                    segment.replace_range(i..i + c.len_utf8(), &upper);
                }
            }
        }
    }
}
