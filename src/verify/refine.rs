//! Refinement: improves a verified text by a beam search over word edits, with the encoder
//! as judge of meaning and a model of English as judge of form.
//!
//! Each round proposes edits of every text in an input's beam (delete, replace or insert a
//! word from the pool of the candidates' words or from [`FUNCTION_WORDS`], swap two
//! neighbours, splice with another candidate). An edit is admissible only if it reads as
//! English: the language model's mean log-probability per token falls at most
//! `fluency_slack` below the starting text's and never below `fluency_floor` (from a start
//! below the floor, not at all), it repeats no content word more often than the starting
//! text does, and it puts no word twice side by side. The admissible edits are ranked
//! cheaply (a bag-of-words estimate of their embedding from the pool words' own embeddings,
//! plus the weighted fluency), the best few of all inputs are re-embedded in one encoder
//! batch, and each input keeps the `beam` best texts by `cosine + language_model_weight *
//! fluency`. An input stops when a round adds nothing to its beam, when its best text has
//! not changed for `patience` rounds, or when its budget of encoder calls is spent. Nothing is sampled: the result is deterministic.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::embedding::{dot, UnitEmbedding};
use crate::error::Result;
use crate::generative::InferenceModel;
use crate::language_model::{content_word_counts, NgramModel};

use super::{RefineSettings, Verifier, FUNCTION_WORDS};

/// One text of a beam.
#[derive(Clone)]
struct Node {
    words: Vec<String>,
    embedding: Vec<f32>,
    cosine: f32,
    /// `cosine + language_model_weight * fluency + fluency_weight * generator log-prob`.
    objective: f32,
}

/// The search state of one input.
pub(crate) struct Refinement {
    query: UnitEmbedding,
    /// The pooled texts, best first (the words and the splices come from them).
    pool: Vec<String>,
    /// Texts to start from (text, embedding, cosine), closest first; the first is the
    /// verified choice, whose fluency and words set the rules of admissibility.
    starts: Vec<(String, Vec<f32>, f32)>,
    beam: Vec<Node>,
    /// The least fluency an edit may have.
    floor: f32,
    /// The most times each content word may appear (once when absent).
    allowed: HashMap<String, usize>,
    /// Whether the starting text itself ends on a word no sentence ends on.
    start_dangles: bool,
    seen: HashSet<String>,
    /// Texts scored under the generator for this input (the evidence's, then refinement's
    /// own): each is scored once.
    scores: HashMap<String, f32>,
    calls: usize,
    /// Rounds since the best text last changed.
    stale: usize,
    done: bool,
}

impl Refinement {
    /// Starts from `starts` (text, embedding, cosine to the input), closest first: the
    /// verified choice, then the other re-embedded candidates; `scores` are the texts the
    /// decoder already scored under the generator for this input ([`crate::Evidence`]).
    pub(crate) fn new(
        query: UnitEmbedding,
        pool: Vec<String>,
        starts: Vec<(String, Vec<f32>, f32)>,
        scores: HashMap<String, f32>,
    ) -> Self {
        let starts: Vec<_> = starts
            .into_iter()
            .enumerate()
            .filter(|(k, (t, _, _))| *k == 0 || !t.trim().is_empty())
            .map(|(_, s)| s)
            .collect();
        let mut seen: HashSet<String> = pool.iter().cloned().collect();
        seen.extend(starts.first().map(|s| s.0.clone()));
        let done = starts.first().is_none_or(|s| s.0.trim().is_empty());
        Refinement {
            query,
            pool,
            starts,
            beam: Vec::new(),
            floor: 0.0,
            allowed: HashMap::new(),
            start_dangles: false,
            seen,
            scores,
            calls: 0,
            stale: 0,
            done,
        }
    }

    /// The refined text and its cosine to the input, in sentence case ([`sentence_case`]:
    /// the encoder, all-mpnet-base-v2, and the language model lower-case their input, so the
    /// cosine is unchanged).
    pub(crate) fn result(&self) -> (String, f32) {
        match self.beam.first() {
            Some(n) => (sentence_case(&n.words, &self.starts[0].0), n.cosine),
            None => (self.starts[0].0.clone(), self.starts[0].2),
        }
    }
}

/// The words of a refined text in the starting text's sentence case: when the start began
/// with a capital, the first word gets one, and the start's first word, moved inside by an
/// insertion ("Should Avoid using them"), loses the capital it had only for standing first
/// (when it is capitalised, not all capitals, and not "I").
fn sentence_case(words: &[String], start: &str) -> String {
    let Some(first) = start.split_whitespace().next() else {
        return words.join(" ");
    };
    let capital = first.chars().next().is_some_and(char::is_uppercase);
    let title_only = capital && first != "I" && !first.chars().skip(1).any(char::is_uppercase);
    let mut out: Vec<String> = words.to_vec();
    if title_only && out.first().is_some_and(|w| w != first) {
        if let Some(moved) = out.iter_mut().skip(1).find(|w| w.as_str() == first) {
            *moved = moved.to_lowercase();
        }
    }
    let text = out.join(" ");
    if capital {
        capitalised(&text)
    } else {
        text
    }
}

/// `text` with its first letter in upper case.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Words of a text, split at whitespace.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// The key of a word in the pool: lower case, without surrounding punctuation.
fn key(word: &str) -> String {
    word.trim_matches(|c: char| c.is_ascii_punctuation())
        .to_lowercase()
}

/// Distinct pool words, best candidates first.
fn pool_words(pool: &[String], max: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for text in pool {
        for w in text.split_whitespace() {
            let k = key(w);
            if !k.is_empty() && seen.insert(k.clone()) {
                out.push(k);
                if out.len() == max {
                    return out;
                }
            }
        }
    }
    out
}

/// Whether two neighbouring words are the same word ("devices devices"): never fluent, and
/// the encoder barely tells it apart from the single word, so such edits are not proposed.
fn repeats_a_word(words: &[String]) -> bool {
    words.windows(2).any(|w| key(&w[0]) == key(&w[1]))
}

/// How often each content word (not a function word) occurs in `words`.
fn content_counts(words: &[String]) -> HashMap<String, usize> {
    content_word_counts(words.iter().map(String::as_str))
}

/// Whether `words` holds a content word more often than `allowed` says (once when absent).
fn over_repeats(words: &[String], allowed: &HashMap<String, usize>) -> bool {
    content_counts(words)
        .iter()
        .any(|(w, &n)| n > allowed.get(w).copied().unwrap_or(1).max(1))
}

/// Words that cannot end an English sentence: articles, conjunctions, prepositions.
const NO_LAST_WORD: [&str; 17] = [
    "a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "nor", "of", "on", "or", "the",
    "to", "with",
];

/// Whether `words` ends on a word no sentence ends on ("Bodily existence or"), unless the
/// starting text did (`start_dangles`). A per-token mean rewards appending a frequent word,
/// so the language model alone lets these through.
fn dangles(words: &[String], start_dangles: bool) -> bool {
    !start_dangles
        && words
            .iter()
            .rev()
            .map(|w| key(w))
            .find(|k| !k.is_empty())
            .is_some_and(|k| NO_LAST_WORD.contains(&k.as_str()))
}

/// One proposed edit: the new words and the bag-of-words change.
struct Edit {
    words: Vec<String>,
    added: Vec<String>,
    removed: Vec<String>,
}

/// Every edit of `current` from `vocab` and the pool's texts.
fn edits(current: &[String], vocab: &[String], pool: &[String]) -> Vec<Edit> {
    let n = current.len();
    let mut out = Vec::new();
    for i in 0..n {
        if n > 1 {
            let mut w = current.to_vec();
            let gone = w.remove(i);
            out.push(Edit {
                words: w,
                added: vec![],
                removed: vec![gone],
            });
        }
        if i + 1 < n {
            let mut w = current.to_vec();
            w.swap(i, i + 1);
            out.push(Edit {
                words: w,
                added: vec![],
                removed: vec![],
            });
        }
        for v in vocab {
            if key(&current[i]) != *v {
                let mut w = current.to_vec();
                let gone = std::mem::replace(&mut w[i], v.clone());
                out.push(Edit {
                    words: w,
                    added: vec![v.clone()],
                    removed: vec![gone],
                });
            }
        }
    }
    for i in 0..=n {
        for v in vocab {
            let mut w = current.to_vec();
            w.insert(i, v.clone());
            out.push(Edit {
                words: w,
                added: vec![v.clone()],
                removed: vec![],
            });
        }
    }
    for other in pool {
        let o = words(other);
        if o.is_empty() {
            continue;
        }
        for i in 1..n {
            let j = (i * o.len() / n).min(o.len() - 1);
            // the current text's head with the other's tail, and the other's head with ours
            let mut head = current[..i].to_vec();
            head.extend_from_slice(&o[j..]);
            out.push(Edit {
                added: o[j..].to_vec(),
                removed: current[i..].to_vec(),
                words: head,
            });
            let mut tail = o[..j.max(1)].to_vec();
            tail.extend_from_slice(&current[i..]);
            out.push(Edit {
                added: o[..j.max(1)].to_vec(),
                removed: current[..i].to_vec(),
                words: tail,
            });
        }
    }
    out
}

/// The judges of form: the language model and the generator's prior, with their weights.
pub(crate) struct Judges<'a> {
    /// The model of English (admissibility and the fluency term).
    pub(crate) language_model: Option<&'a NgramModel>,
    /// The generator, whose likelihood given the input is the second prior.
    pub(crate) generator: Option<&'a InferenceModel>,
}

impl Judges<'_> {
    fn fluency(&self, text: &str) -> f32 {
        self.language_model.map_or(0.0, |m| m.score(text).mean())
    }
}

/// Refines every input of `states` in lockstep rounds, one encoder batch per round.
pub(crate) fn refine(
    states: &mut [Refinement],
    verifier: &Verifier,
    judges: &Judges<'_>,
    settings: &RefineSettings,
) -> Result<()> {
    let lm_weight = if judges.language_model.is_some() {
        settings.language_model_weight
    } else {
        0.0
    };
    let gen_weight = if judges.generator.is_some() {
        settings.fluency_weight
    } else {
        0.0
    };
    // the generator's score of an input's text, when its prior is on: the evidence's or
    // refinement's own when the text was scored already (the model scores a text longer than
    // max_len bytes by its head)
    let log_prob = |s: &Refinement, text: &str| -> Result<f32> {
        match judges.generator.filter(|_| gen_weight > 0.0) {
            Some(model) => match s.scores.get(text) {
                Some(&lp) => Ok(lp),
                None => model.score(&s.query, text),
            },
            None => Ok(0.0),
        }
    };
    let objective =
        |cosine: f32, fluency: f32, lp: f32| cosine + lm_weight * fluency + gen_weight * lp;
    // the pool words' own embeddings, charged to each input's budget (a third of it at most)
    let pooled: Vec<Vec<String>> = states
        .iter()
        .map(|s| pool_words(&s.pool, settings.max_pool_words.min(settings.budget / 3)))
        .collect();
    let common: &[&str] = if settings.function_words {
        &FUNCTION_WORDS
    } else {
        &[]
    };
    let all_words: Vec<&str> = pooled
        .iter()
        .flatten()
        .map(String::as_str)
        .chain(common.iter().copied())
        .collect();
    let word_vectors = verifier.embed(&all_words)?;
    let mut vectors = HashMap::new();
    for (w, v) in all_words.iter().zip(word_vectors) {
        vectors.insert(w.to_string(), v);
    }
    // each input's edit vocabulary: its pool words, then the function words it lacks
    let vocabs: Vec<Vec<String>> = pooled
        .iter()
        .map(|words| {
            let mut vocab = words.clone();
            for w in common {
                if !vocab.iter().any(|v| v == w) {
                    vocab.push((*w).to_string());
                }
            }
            vocab
        })
        .collect();
    // the words whose vectors each input's estimates use: its own vocabulary only, so that an
    // input refines alike alone and in any batch (another input's pool words are not its)
    let own: Vec<HashSet<&str>> = vocabs
        .iter()
        .map(|vocab| vocab.iter().map(String::as_str).collect())
        .collect();
    for (s, words_of_pool) in states.iter_mut().zip(&pooled) {
        // shared words are charged to every input that uses them, at most the batch's cost
        s.calls += words_of_pool.len();
        let first = words(&s.starts[0].0);
        s.allowed = content_counts(&first);
        s.start_dangles = dangles(&first, false);
        let start_fluency = judges.fluency(&s.starts[0].0);
        s.floor = start_fluency.min(
            settings
                .fluency_floor
                .max(start_fluency - settings.fluency_slack),
        );
        let mut beam = Vec::new();
        for (text, embedding, cosine) in s.starts.iter().take(settings.beam) {
            let w = words(text);
            let fluency = judges.fluency(text);
            // the verified choice always starts; the others only when they read as English
            if !beam.is_empty()
                && (fluency < s.floor
                    || over_repeats(&w, &s.allowed)
                    || dangles(&w, s.start_dangles))
            {
                continue;
            }
            let lp = log_prob(s, text)?;
            if gen_weight > 0.0 {
                s.scores.insert(text.clone(), lp);
            }
            beam.push(Node {
                words: w,
                embedding: embedding.clone(),
                cosine: *cosine,
                objective: objective(*cosine, fluency, lp),
            });
            s.seen.insert(text.clone());
        }
        beam.sort_by(|a, b| b.objective.total_cmp(&a.objective));
        s.beam = beam;
        if s.calls + settings.per_round > settings.budget {
            s.done = true;
        }
    }
    loop {
        // the admissible proposals of every active input, ranked cheaply
        let mut chosen: Vec<(usize, String, f32, f32)> = Vec::new();
        // the generator's scores of this round's shortlists, kept so that no text is scored
        // twice (a shortlisted edit left out may be proposed again)
        let mut scored_now: Vec<(usize, String, f32)> = Vec::new();
        for (idx, s) in states.iter().enumerate() {
            if s.done {
                continue;
            }
            let mut texts = HashSet::new();
            let mut proposals: Vec<(usize, Edit, String)> = Vec::new();
            for (from, node) in s.beam.iter().enumerate() {
                for edit in edits(&node.words, &vocabs[idx], &s.pool) {
                    if repeats_a_word(&edit.words)
                        || over_repeats(&edit.words, &s.allowed)
                        || dangles(&edit.words, s.start_dangles)
                    {
                        continue;
                    }
                    let text = edit.words.join(" ");
                    if text.is_empty() || s.seen.contains(&text) || !texts.insert(text.clone()) {
                        continue;
                    }
                    proposals.push((from, edit, text));
                }
            }
            // bag-of-words estimate and fluency, in parallel
            let mut scored: Vec<(f32, String, f32)> = proposals
                .into_par_iter()
                .filter_map(|(from, edit, text)| {
                    let fluency = judges.fluency(&text);
                    if judges.language_model.is_some() && fluency < s.floor {
                        return None;
                    }
                    let node = &s.beam[from];
                    let n = node.words.len() as f32;
                    let mut estimate: Vec<f32> = node.embedding.iter().map(|x| x * n).collect();
                    for (w, sign) in edit
                        .added
                        .iter()
                        .map(|w| (w, 1.0f32))
                        .chain(edit.removed.iter().map(|w| (w, -1.0f32)))
                    {
                        let k = key(w);
                        let v = own[idx].contains(k.as_str()).then(|| vectors.get(&k));
                        if let Some(v) = v.flatten() {
                            estimate
                                .iter_mut()
                                .zip(v.iter())
                                .for_each(|(e, x)| *e += sign * x);
                        }
                    }
                    let norm = crate::embedding::norm(&estimate).max(1e-6);
                    let proxy = dot(&estimate, s.query.as_slice()) / norm;
                    Some((proxy + lm_weight * fluency, text, fluency))
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            scored.truncate(settings.per_round + settings.per_round / 2);
            // the generator's prior of the shortlist, when on
            let log_probs: Vec<f32> = scored
                .par_iter()
                .map(|(_, text, _)| log_prob(s, text))
                .collect::<Result<_>>()?;
            if gen_weight > 0.0 {
                scored_now.extend(
                    scored
                        .iter()
                        .zip(&log_probs)
                        .map(|((_, text, _), &lp)| (idx, text.clone(), lp)),
                );
            }
            let mut ranked: Vec<(f32, String, f32, f32)> = scored
                .into_iter()
                .zip(log_probs)
                .map(|((proxy, text, fluency), lp)| (proxy + gen_weight * lp, text, fluency, lp))
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            ranked.truncate(settings.per_round);
            chosen.extend(
                ranked
                    .into_iter()
                    .map(|(_, text, fluency, lp)| (idx, text, fluency, lp)),
            );
        }
        for (idx, text, lp) in scored_now {
            states[idx].scores.insert(text, lp);
        }
        if chosen.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = chosen.iter().map(|(_, t, _, _)| t.as_str()).collect();
        let embeddings = verifier.embed(&texts)?;
        let mut fresh: Vec<Vec<Node>> = vec![Vec::new(); states.len()];
        for ((idx, text, fluency, lp), e) in chosen.into_iter().zip(embeddings) {
            let s = &mut states[idx];
            s.calls += 1;
            let cosine = dot(s.query.as_slice(), &e);
            s.seen.insert(text.clone());
            fresh[idx].push(Node {
                words: words(&text),
                embedding: e.to_vec(),
                cosine,
                objective: objective(cosine, fluency, lp),
            });
        }
        for (s, new) in states.iter_mut().zip(fresh) {
            if s.done {
                continue;
            }
            let worst = if s.beam.len() < settings.beam {
                f32::NEG_INFINITY
            } else {
                s.beam.last().map_or(f32::NEG_INFINITY, |n| n.objective)
            };
            let best = s.beam.first().map_or(f32::NEG_INFINITY, |n| n.objective);
            let enters = new.iter().any(|n| n.objective > worst + 1e-6);
            let leads = new.iter().any(|n| n.objective > best + 1e-6);
            s.stale = if leads { 0 } else { s.stale + 1 };
            s.beam.extend(new);
            s.beam.sort_by(|a, b| b.objective.total_cmp(&a.objective));
            s.beam.truncate(settings.beam);
            // done when nothing enters the beam, when the best text has not changed for
            // `patience` rounds, or when the budget is spent
            if !enters
                || s.stale >= settings.patience
                || s.calls + settings.per_round > settings.budget
            {
                s.done = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str) -> Vec<String> {
        words(text)
    }

    #[test]
    fn no_edit_may_end_on_a_conjunction_unless_the_start_did() {
        assert!(dangles(&w("Bodily existence or"), false));
        assert!(dangles(&w("a question of the"), false));
        assert!(!dangles(&w("Bodily existence or"), true));
        assert!(!dangles(&w("Am I dreaming?"), false));
    }

    #[test]
    fn a_refined_text_keeps_the_start_in_sentence_case() {
        assert_eq!(
            sentence_case(&w("should Avoid using them."), "Avoid using them."),
            "Should avoid using them."
        );
        assert_eq!(
            sentence_case(&w("written in Perl by I"), "I wrote it in Perl"),
            "Written in Perl by I"
        );
        assert_eq!(
            sentence_case(&w("an SQL query"), "SQL query"),
            "An SQL query"
        );
        assert_eq!(
            sentence_case(&w("a lower start"), "lower start"),
            "a lower start"
        );
    }

    #[test]
    fn repetition_of_content_words_is_bounded_by_the_start() {
        let allowed = content_counts(&w("The pointer to the pointer"));
        assert!(!over_repeats(&w("the pointer of the pointer"), &allowed));
        assert!(over_repeats(&w("pointer pointer to the pointer"), &allowed));
        assert!(over_repeats(&w("memory of the memory"), &allowed));
        assert!(!over_repeats(&w("the memory of the pointer"), &allowed));
    }
}
