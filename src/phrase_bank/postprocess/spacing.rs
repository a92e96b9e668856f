//! Whitespace and punctuation spacing.

use super::PostProcessor;

/// Collapses runs of whitespace, trims, and removes spaces before `, ; : ! ?` and before a
/// period that ends a word (`word .` becomes `word.`, `a .22 rifle` is left alone).
#[derive(Debug, Clone, Copy, Default)]
pub struct Spacing;

impl PostProcessor for Spacing {
    fn process(&self, segments: &mut Vec<String>) {
        for segment in segments.iter_mut() {
            *segment = fix_spacing(segment);
        }
    }
}

/// The spacing rules applied to one string.
pub fn fix_spacing(text: &str) -> String {
    if already_spaced(text) {
        return text.to_string();
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars: Vec<char> = collapsed.chars().collect();
    let mut out = String::with_capacity(collapsed.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let next = chars.get(i + 1).copied();
            let after = chars.get(i + 2).copied();
            let before_punct = matches!(next, Some(',' | ';' | ':' | '!' | '?'));
            let before_final_period =
                next == Some('.') && after.is_none_or(|a| a == ' ' || a == '"' || a == ')');
            if before_punct || before_final_period {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Whether the rules leave `text` as it is (most bank phrases): no whitespace but single
/// spaces between words, and no space before `, ; : ! ? .`.
fn already_spaced(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut after_space = true; // leading whitespace is trimmed
    for (i, c) in text.char_indices() {
        if !c.is_whitespace() {
            after_space = false;
            continue;
        }
        let next = bytes.get(i + 1);
        if c != ' ' || after_space || next.is_none_or(|b| b",;:!?.".contains(b)) {
            return false;
        }
        after_space = true;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_rules() {
        assert_eq!(fix_spacing("  iris ,  islands  "), "iris, islands");
        assert_eq!(fix_spacing("the end ."), "the end.");
        assert_eq!(fix_spacing("a .22 caliber pistol"), "a .22 caliber pistol");
        assert_eq!(fix_spacing("really ?"), "really?");
        // the shortcut for text the rules leave alone agrees with them
        for text in [
            "",
            " ",
            "a",
            "a b",
            "a  b",
            " a",
            "a ",
            "a\tb",
            "a\u{a0}b",
            "a\nb",
            "a ,b",
            "a .b",
            "a. b",
            "a .22 b",
            "end .",
            "x !",
            "ça va, très bien",
            "the dog (barked)",
        ] {
            assert_eq!(fix_spacing(text), by_the_rules(text), "{text:?}");
        }
    }

    /// [`fix_spacing`] without the shortcut.
    fn by_the_rules(text: &str) -> String {
        let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let chars: Vec<char> = collapsed.chars().collect();
        let mut out = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let next = chars.get(i + 1).copied();
            let after = chars.get(i + 2).copied();
            let skip = c == ' '
                && (matches!(next, Some(',' | ';' | ':' | '!' | '?'))
                    || (next == Some('.')
                        && after.is_none_or(|a| a == ' ' || a == '"' || a == ')')));
            if !skip {
                out.push(c);
            }
        }
        out
    }
}
