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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_rules() {
        assert_eq!(fix_spacing("  iris ,  islands  "), "iris, islands");
        assert_eq!(fix_spacing("the end ."), "the end.");
        assert_eq!(fix_spacing("a .22 caliber pistol"), "a .22 caliber pistol");
        assert_eq!(fix_spacing("really ?"), "really?");
    }
}
