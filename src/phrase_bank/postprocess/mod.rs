//! Text post-processing: a pipeline of [`PostProcessor`] stages over the phrases of an output.
//!
//! Each stage works on the list of segments (phrases) that make up one output; [`join`] then
//! turns the segments into the final text. Stages are built from a [`PostProcessConfig`].

mod capitalize;
mod near_duplicates;
mod redundant_words;
mod spacing;

use std::collections::HashSet;

use rust_stemmers::{Algorithm, Stemmer};

pub use capitalize::Capitalize;
pub use near_duplicates::NearDuplicates;
pub use redundant_words::RedundantWords;
pub use spacing::Spacing;

use serde::{Deserialize, Serialize};

use crate::error::{check, finite_in, Result};

/// Settings of text post-processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostProcessConfig {
    /// Master switch: with `false` the phrases are returned exactly as stored and joined.
    pub enabled: bool,
    /// Capitalise the first letter of each sentence.
    pub capitalize: bool,
    /// Collapse whitespace and remove spaces before punctuation.
    pub fix_spacing: bool,
    /// Remove immediately repeated words.
    pub remove_redundant_words: bool,
    /// Drop a joined phrase whose stemmed words mostly repeat an earlier one.
    pub remove_near_duplicates: bool,
    /// Share of stemmed words (Jaccard) above which two phrases are near-duplicates.
    pub near_duplicate_jaccard: f32,
}

impl Default for PostProcessConfig {
    fn default() -> Self {
        PostProcessConfig {
            enabled: true,
            capitalize: true,
            fix_spacing: true,
            remove_redundant_words: true,
            remove_near_duplicates: true,
            near_duplicate_jaccard: 0.7,
        }
    }
}

impl PostProcessConfig {
    /// Checks the values, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        check(
            finite_in(self.near_duplicate_jaccard, 0.0, 1.0),
            "postprocess.near_duplicate_jaccard must be in [0, 1]",
        )
    }
}

/// One stage of post-processing.
pub trait PostProcessor: Send + Sync {
    /// Rewrites the segments of one output in place.
    fn process(&self, segments: &mut Vec<String>);
}

/// The configured stages, applied in order, then any added ones ([`Pipeline::push`]).
pub struct Pipeline {
    stages: Vec<std::sync::Arc<dyn PostProcessor>>,
}

impl Pipeline {
    /// Builds the stages that `config` switches on.
    pub fn new(config: &PostProcessConfig) -> Self {
        let mut stages: Vec<std::sync::Arc<dyn PostProcessor>> = Vec::new();
        if config.enabled {
            if config.fix_spacing {
                stages.push(std::sync::Arc::new(Spacing));
            }
            if config.remove_near_duplicates {
                stages.push(std::sync::Arc::new(NearDuplicates::new(
                    config.near_duplicate_jaccard,
                )));
            }
            if config.remove_redundant_words {
                stages.push(std::sync::Arc::new(RedundantWords));
            }
            if config.capitalize {
                stages.push(std::sync::Arc::new(Capitalize));
            }
        }
        Pipeline { stages }
    }

    /// Adds a stage after the others (a stage of your own, [`PostProcessor`]).
    pub fn push(&mut self, stage: std::sync::Arc<dyn PostProcessor>) {
        self.stages.push(stage);
    }

    /// Applies every stage and joins the segments into one text.
    pub fn run(&self, mut segments: Vec<String>) -> String {
        for stage in &self.stages {
            stage.process(&mut segments);
        }
        join(&segments)
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pipeline({} stages)", self.stages.len())
    }
}

/// Joins segments as sentences: a segment without final punctuation gets a period before the
/// next one. A single segment is returned as it is.
pub fn join(segments: &[String]) -> String {
    let mut out = String::new();
    for (i, segment) in segments.iter().filter(|s| !s.trim().is_empty()).enumerate() {
        if i > 0 {
            if !out.ends_with(['.', '!', '?', ';', ':']) {
                out.push('.');
            }
            out.push(' ');
        }
        out.push_str(segment.trim());
    }
    out
}

/// Lower-cased, stemmed word stems of a text (English Snowball stemmer).
pub fn stems(stemmer: &Stemmer, text: &str) -> HashSet<String> {
    words(text)
        .map(|w| stemmer.stem(&w.to_lowercase()).into_owned())
        .collect()
}

/// The words of a text: maximal runs of alphanumeric characters and apostrophes.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
}

/// The English stemmer used by the stages.
pub fn english_stemmer() -> Stemmer {
    Stemmer::create(Algorithm::English)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_end_to_end() {
        let p = Pipeline::new(&PostProcessConfig::default());
        let out = p.run(vec![
            "the  dog barked all night".into(),
            "the dogs barked all  night".into(),
            "night watchmen , tired".into(),
        ]);
        assert_eq!(out, "The dog barked all night. Watchmen, tired");
        let off = Pipeline::new(&PostProcessConfig {
            enabled: false,
            ..Default::default()
        });
        assert_eq!(off.run(vec!["a  b".into()]), "a  b");
    }
}
