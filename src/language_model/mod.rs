//! A model of English for the decoders: a word n-gram language model with interpolated
//! modified Kneser-Ney smoothing (Chen and Goodman 1998, as KenLM's `lmplz` estimates it).
//!
//! It scores a sentence in tens of microseconds, so a search can weigh thousands of candidates per input
//! by how English they read. [`NgramEstimator`] counts sentences and writes an [`NgramModel`];
//! the model answers queries ([`NgramModel::score`]), saves itself in a compact checked file
//! (`.lm`, [`NgramModel::save`] / [`NgramModel::load`]) and exports the ARPA text format
//! ([`NgramModel::write_arpa`]) that KenLM and the `kenlm` Python package read, which is how
//! the queries are tested against the field's reference implementation.
//!
//! The bundled model `model/english.lm` is built from the default bank's phrases (WordNet and
//! the broad corpus's train split): `lwdec lm build` (`scripts/build_language_model.sh`).

mod estimate;
mod file;
mod model;
mod words;

pub use estimate::NgramEstimator;
pub use model::{NgramModel, TextScore, LANGUAGE_MODEL_ENV};
pub use words::{content_word_counts, is_function_word, repeats_content_word};

/// The tokens of `text` as the language model sees them: lower case, split at whitespace,
/// with the punctuation at either end of a word split off as tokens of its own ("memory!" ->
/// "memory", "!"); punctuation inside a word stays ("don't", "e.g").
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        push_word_tokens(word, &mut out);
    }
    out
}

/// Appends the tokens of one whitespace-delimited word to `out` (see [`tokens`]).
pub(crate) fn push_word_tokens(word: &str, out: &mut Vec<String>) {
    let is_punct = |c: char| c.is_ascii_punctuation();
    let core_start = word.find(|c: char| !is_punct(c)).unwrap_or(word.len());
    for c in word[..core_start].chars() {
        out.push(c.to_string());
    }
    let rest = &word[core_start..];
    let core_end = rest.rfind(|c: char| !is_punct(c)).map_or(0, |i| {
        i + rest[i..].chars().next().map_or(1, char::len_utf8)
    });
    if core_end > 0 {
        out.push(rest[..core_end].to_lowercase());
    }
    for c in rest[core_end..].chars() {
        out.push(c.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::tokens;

    #[test]
    fn punctuation_at_the_ends_is_split_off_and_case_folded() {
        assert_eq!(
            tokens("The problem (see below) is memory! Don't e.g.,"),
            vec![
                "the", "problem", "(", "see", "below", ")", "is", "memory", "!", "don't", "e.g",
                ".", ","
            ]
        );
        assert_eq!(tokens("..."), vec![".", ".", "."]);
        assert!(tokens("  ").is_empty());
        assert_eq!(tokens("Émile café"), vec!["émile", "café"]);
    }
}
