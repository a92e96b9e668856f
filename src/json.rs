//! Strict JSON for settings files (the decoders' [`crate::DecoderConfig`] and the trainer's
//! configuration): unknown keys are errors that name the nearest known key.

use crate::error::{Error, Result};

/// Parses a strict JSON settings document (unknown keys are errors); the error names the
/// problem and, for an unknown key, the nearest known one.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let hint = unknown_key_hint(&message).unwrap_or_default();
        Error::InvalidConfig(format!("malformed JSON: {message}{hint}"))
    })
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`"), a hint
/// naming the known key nearest to `x` by edit distance.
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, known) = rest.split_once('`')?;
    let nearest = known
        .split('`')
        .skip(1)
        .step_by(2)
        .min_by_key(|k| edit_distance(unknown, k))?;
    Some(format!(" (did you mean `{nearest}`?)"))
}

/// Levenshtein distance between two keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (up + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = up;
        }
    }
    row[b.len()]
}
