//! The sentences `lwdec bench --encoder` times: the bundled real texts of `samples/`, or a
//! file's lines, deduplicated (the PyTorch side reads the same list).

use std::path::{Path, PathBuf};

use lightweight_decoder::eval::samples::{read_lines, samples_dir};
use lightweight_decoder::{Error, Result};
use serde_json::Value;

/// The sentences and a description of where they came from.
pub struct Sentences {
    pub texts: Vec<String>,
    pub source: String,
}
/// The first `n` distinct lines of `file`.
pub fn from_file(file: &Path, n: usize) -> Result<Sentences> {
    let texts = first_distinct(vec![read_lines(file)?], n);
    if texts.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{} holds no sentences",
            file.display()
        )));
    }
    Ok(Sentences {
        source: format!("first distinct lines of {}", file.display()),
        texts,
    })
}

/// The first `n` distinct texts of the bundled samples, taken round-robin: the texts of
/// `samples/encoder_parity.jsonl`, then each `samples/*.txt` (sorted, ids and boundaries
/// files excluded).
pub fn bundled(n: usize) -> Result<Sentences> {
    let dir = samples_dir();
    let parity_file = dir.join("encoder_parity.jsonl");
    let mut names = vec!["encoder_parity.jsonl".to_string()];
    let mut sources = vec![read_lines(&parity_file)?
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["text"].as_str().map(str::to_string))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("{}: bad line", parity_file.display()))
                })
        })
        .collect::<Result<Vec<String>>>()?];
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io("list the folder", &dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|s| s.to_str()).unwrap_or_default();
            name.ends_with(".txt")
                && !name.ends_with(".ids.txt")
                && !name.ends_with(".boundaries.txt")
        })
        .collect();
    files.sort();
    for f in files {
        names.push(
            f.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        sources.push(read_lines(&f)?);
    }
    let texts = first_distinct(sources.clone(), n);
    let chosen: std::collections::HashSet<&String> = texts.iter().collect();
    let taken: Vec<String> = names
        .iter()
        .zip(&sources)
        .map(|(name, lines)| {
            let k = lines.iter().filter(|l| chosen.contains(l)).count();
            format!("{name} {k}")
        })
        .collect();
    Ok(Sentences {
        source: format!(
            "bundled samples/, round-robin, deduplicated: {}",
            taken.join(", ")
        ),
        texts,
    })
}

/// The first `n` distinct lines, taking one from each source in turn; line breaks inside a
/// text become spaces (the PyTorch side reads one sentence per line).
fn first_distinct(sources: Vec<Vec<String>>, n: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n.min(sources.iter().map(Vec::len).sum()));
    let mut iters: Vec<_> = sources.into_iter().map(Vec::into_iter).collect();
    while out.len() < n {
        let mut any = false;
        for it in &mut iters {
            if let Some(line) = it.next() {
                any = true;
                let line = line.replace(['\r', '\n'], " ");
                if out.len() < n && seen.insert(line.clone()) {
                    out.push(line);
                }
            }
        }
        if !any {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_deduplicates_and_stops_at_n() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let got = first_distinct(vec![s(&["a", "b", "c"]), s(&["a", "x"]), s(&["y"])], 10);
        assert_eq!(got, s(&["a", "y", "b", "x", "c"]));
        let got = first_distinct(vec![s(&["a", "b", "c"]), s(&["x"])], 2);
        assert_eq!(got, s(&["a", "x"]));
    }

    #[test]
    fn bundled_sentences_are_real_texts() {
        let s = bundled(2000).unwrap();
        assert_eq!(s.texts.len(), 2000);
        assert!(s.texts.iter().all(|t| t.parse::<u64>().is_err()));
        assert!(
            s.source.contains("encoder_parity.jsonl 199"),
            "{}",
            s.source
        );
    }
}
