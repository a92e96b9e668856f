//! [`Session`]: the context that one stream of related inputs carries from decode to decode.

use std::collections::VecDeque;

/// One decoded input remembered by a session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEntry {
    /// The input embedding, unit norm.
    pub input: Vec<f32>,
    /// The embedding of the output, when the decoder knows it (bank phrases do), unit norm.
    pub output: Option<Vec<f32>>,
    /// Bank phrases the output was made of (empty for generated text).
    pub phrase_ids: Vec<usize>,
}

/// Recent inputs and outputs of one stream of related embeddings, newest last.
///
/// A decoder reads the context to re-rank candidates and records every decode into it. Sessions
/// are independent: decode unrelated inputs in separate sessions (or with
/// [`crate::Decoder::decode`], which uses a fresh one).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    window: usize,
    entries: VecDeque<SessionEntry>,
}

impl Session {
    /// An empty session remembering the last `window` decodes (at least one).
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        Session {
            window,
            entries: VecDeque::with_capacity(window),
        }
    }

    /// Remembers a decode, forgetting the oldest beyond the window.
    pub fn record(&mut self, entry: SessionEntry) {
        if self.entries.len() == self.window {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Replaces the newest entry (or records `entry` in an empty session).
    pub(crate) fn replace_last(&mut self, entry: SessionEntry) {
        self.entries.pop_back();
        self.record(entry);
    }

    /// Recent decodes, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &SessionEntry> + ExactSizeIterator {
        self.entries.iter()
    }

    /// Whether nothing has been decoded in this session yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets all context.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The decayed mean of recent embeddings (newest weight 1, then `decay`, `decay`², ...),
    /// scaled to unit norm; `None` for an empty session.
    ///
    /// Each entry contributes its output embedding when known (a clean vector, where inputs
    /// may be noisy), else its input.
    pub fn context_vector(&self, decay: f32) -> Option<Vec<f32>> {
        let dim = self.entries.back()?.input.len();
        let mut sum = vec![0f32; dim];
        let mut weight = 1f32;
        for entry in self.entries.iter().rev() {
            let v = entry.output.as_ref().unwrap_or(&entry.input);
            for (s, x) in sum.iter_mut().zip(v) {
                *s += weight * x;
            }
            weight *= decay;
        }
        crate::embedding::normalize_in_place(&mut sum);
        Some(sum)
    }

    /// Whether `phrase_id` was part of an output within the window.
    pub fn recently_emitted(&self, phrase_id: usize) -> bool {
        self.entries
            .iter()
            .any(|e| e.phrase_ids.contains(&phrase_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_context() {
        let mut s = Session::new(2);
        assert!(s.context_vector(0.5).is_none());
        for (i, v) in [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]].iter().enumerate() {
            s.record(SessionEntry {
                input: v.to_vec(),
                output: None,
                phrase_ids: vec![i],
            });
        }
        assert_eq!(s.entries().len(), 2);
        assert!(!s.recently_emitted(0) && s.recently_emitted(2));
        let c = s.context_vector(0.5).unwrap();
        assert!((c[1] - 1.0).abs() < 1e-6, "oldest entry left the window");
    }
}
