//! Function words: the closed classes of English (articles, pronouns, prepositions,
//! conjunctions, auxiliaries, common adverbs) that a sentence may repeat freely.

/// English function words, lower case, sorted (binary-searched).
const FUNCTION_WORDS: [&str; 134] = [
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
    "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "either",
    "else", "ever", "every", "few", "for", "from", "further", "had", "has", "have", "having", "he",
    "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "itself", "just", "may", "me", "might", "more", "most", "must", "my",
    "myself", "neither", "no", "nor", "not", "now", "of", "off", "on", "once", "one", "only", "or",
    "other", "our", "ours", "out", "over", "own", "same", "shall", "she", "should", "so", "some",
    "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "those", "through", "to", "too", "under", "until", "up", "upon", "us", "very", "was", "we",
    "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with",
    "would", "yet", "you", "your",
];

/// Whether `token` (lower case, as [`super::tokens`] writes it) is a function word or not a
/// word at all (punctuation, numbers): what a sentence may repeat without sounding broken.
pub fn is_function_word(token: &str) -> bool {
    !token.chars().any(char::is_alphabetic) || FUNCTION_WORDS.binary_search(&token).is_ok()
}

/// How often each content word (a token that [`is_function_word`] does not cover) occurs in
/// `words`, whitespace-delimited words tokenised as [`super::tokens`] does.
pub fn content_word_counts<'a>(
    words: impl IntoIterator<Item = &'a str>,
) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    let mut tokens = Vec::new();
    for word in words {
        tokens.clear();
        super::push_word_tokens(word, &mut tokens);
        for tok in tokens.drain(..) {
            if !is_function_word(&tok) {
                *counts.entry(tok).or_insert(0usize) += 1;
            }
        }
    }
    counts
}

/// Whether `text` repeats a content word (not a function word) that `reference` holds at
/// most once: the word-repetition failure of word-level search ("pointers ... pointers").
pub fn repeats_content_word(text: &str, reference: &str) -> bool {
    let in_reference = content_word_counts(reference.split_whitespace());
    content_word_counts(text.split_whitespace())
        .iter()
        .any(|(w, &n)| n >= 2 && in_reference.get(w).copied().unwrap_or(0) <= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_repetition_counts_content_words_only() {
        assert!(FUNCTION_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_function_word("the") && is_function_word(",") && is_function_word("42"));
        assert!(!is_function_word("pointer"));
        assert!(repeats_content_word(
            "The memory pointers do not pointers deduce.",
            "Both are pointers to the same location."
        ));
        assert!(!repeats_content_word("the cat and the dog", "a cat"));
        assert!(!repeats_content_word(
            "pointers to pointers",
            "pointers and pointers"
        ));
    }
}
