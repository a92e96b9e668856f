//! Removal of words repeated across a join.

use super::{words, PostProcessor};

/// Where one segment ends with the word(s) that the next begins with, drops the repetition
/// from the next segment (`... all night` + `night watchmen` gives `... all night` + `watchmen`).
///
/// Words repeated inside one phrase are left alone: they are the bank's own text.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedundantWords;

impl PostProcessor for RedundantWords {
    fn process(&self, segments: &mut Vec<String>) {
        for i in 1..segments.len() {
            let last = words(&segments[i - 1]).last().map(str::to_lowercase);
            let Some(last) = last else { continue };
            let next = &segments[i];
            let first = words(next).next();
            if let Some(first) = first.filter(|f| f.to_lowercase() == last) {
                let start = first.as_ptr() as usize - next.as_ptr() as usize;
                let rest = next[start + first.len()..].trim_start().to_string();
                if !rest.is_empty() {
                    segments[i] = rest;
                }
            }
        }
    }
}
