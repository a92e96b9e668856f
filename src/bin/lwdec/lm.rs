//! `lwdec lm`: build and query word n-gram language models (`lightweight_decoder::language_model`).

use std::collections::HashSet;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use lightweight_decoder::language_model::{NgramEstimator, NgramModel};
use lightweight_decoder::{Error, Result};

/// `lwdec lm` and its subcommands.
#[derive(Args)]
pub struct LmArgs {
    #[command(subcommand)]
    command: LmCommand,
}

#[derive(Subcommand)]
enum LmCommand {
    /// Estimate a model (interpolated modified Kneser-Ney) from text files, one sentence per
    /// line (`.zst` files are decompressed), and save it as a `.lm` file.
    Build {
        /// Text files, one sentence per line.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output `.lm` file (written atomically).
        #[arg(long)]
        out: PathBuf,
        /// Order of the model (3: trigrams).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5))]
        order: u8,
        /// Words kept (the most frequent; the others become `<unk>`).
        #[arg(long, default_value_t = 200_000)]
        max_vocabulary: usize,
        /// Least adjusted count per order from 1 (comma-separated; e.g. 1,2,3 drops bigrams
        /// seen once and trigrams seen fewer than 3 times).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        min_counts: Vec<u32>,
        /// Leave out the sentences of these files (one per line), e.g. a sample's references.
        #[arg(long)]
        exclude: Vec<PathBuf>,
        /// Also write the model in the ARPA text format here (for KenLM).
        #[arg(long)]
        arpa: Option<PathBuf>,
    },
    /// Judge decoded texts (`lwdec decode`/`eval --decoded` JSON lines, or plain lines)
    /// against their references: fluency under a judge model, the share below the 5th
    /// percentile of the references' fluency, word repetition, token F1 and BLEU with its
    /// bootstrap 95% interval.
    Judge {
        /// The judge's `.lm` file (never the decoders' own model).
        #[arg(long)]
        model: PathBuf,
        /// Reference texts, one per row.
        #[arg(long)]
        reference: PathBuf,
        /// Decoded outputs, one text per row in row order (JSON lines with "text", or plain).
        #[arg(required = true)]
        outputs: Vec<PathBuf>,
        /// First N rows only.
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print each line's score as JSON: total log10 probability, tokens, mean per token.
    Score {
        /// The `.lm` file.
        #[arg(long)]
        model: PathBuf,
        /// Text file, one sentence per line (stdin when absent).
        input: Option<PathBuf>,
    },
}

/// Runs `lwdec lm`.
pub fn run(args: &LmArgs) -> Result<()> {
    match &args.command {
        LmCommand::Build {
            inputs,
            out,
            order,
            max_vocabulary,
            min_counts,
            exclude,
            arpa,
        } => {
            let mut excluded = HashSet::new();
            for path in exclude {
                excluded.extend(read_lines(path)?);
            }
            let mut est = NgramEstimator::new(usize::from(*order))?
                .max_vocabulary(*max_vocabulary)
                .min_counts(min_counts);
            let mut left_out = 0usize;
            for path in inputs {
                for line in read_lines(path)? {
                    if excluded.contains(&line) {
                        left_out += 1;
                    } else if !line.trim().is_empty() {
                        est.add_sentence(&line);
                    }
                }
            }
            let model = est.build()?;
            model.save(out)?;
            if let Some(arpa) = arpa {
                // from the file as saved (f16 values), so KenLM reads exactly what loads
                NgramModel::load(out)?.write_arpa(arpa)?;
            }
            let size = std::fs::metadata(out)
                .map_err(|e| Error::io("read the size of", out, e))?
                .len();
            println!(
                "{}: order {}, {} sentences ({left_out} excluded), {} words, n-grams {:?}, {size} bytes",
                out.display(),
                model.order(),
                est.sentences(),
                model.vocabulary_size(),
                model.ngram_counts()
            );
            Ok(())
        }
        LmCommand::Judge {
            model,
            reference,
            outputs,
            limit,
            json,
        } => judge(model, reference, outputs, *limit, *json),
        LmCommand::Score { model, input } => {
            let model = NgramModel::load(model)?;
            let lines = match input {
                Some(path) => read_lines(path)?,
                None => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .map_err(|e| Error::io("read", "<stdin>", e))?;
                    text.lines().map(str::to_string).collect()
                }
            };
            for line in lines {
                let s = model.score(&line);
                println!(
                    "{}",
                    serde_json::json!({
                        "text": line,
                        "tokens_text": lightweight_decoder::language_model::tokens(&line).join(" "),
                        "log10_prob": s.log10_prob,
                        "tokens": s.tokens,
                        "unknown": s.unknown,
                        "mean": s.mean(),
                    })
                );
            }
            Ok(())
        }
    }
}

/// `lwdec lm judge`.
fn judge(
    model: &Path,
    reference: &Path,
    outputs: &[PathBuf],
    limit: Option<usize>,
    json: bool,
) -> Result<()> {
    use lightweight_decoder::eval::fluency::fluency_report;
    use lightweight_decoder::eval::metrics::mean_token_f1;
    let judge = NgramModel::load(model)?;
    let mut references = read_lines(reference)?;
    let n = limit.unwrap_or(usize::MAX).min(references.len());
    references.truncate(n);
    let mut rows = Vec::new();
    if !json {
        println!(
            "{:<40}{:>6}{:>9}{:>9}{:>8}{:>8}{:>9}{:>8}  BLEU 95%",
            "output", "rows", "token F1", "fluency", "<p5", "repeat", "ref flu", "BLEU"
        );
    }
    for path in outputs {
        let texts: Vec<String> = read_lines(path)?
            .into_iter()
            .take(n)
            .map(
                |line| match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) => v
                        .get("text")
                        .and_then(|t| t.as_str())
                        .map_or(line.clone(), str::to_string),
                    Err(_) => line,
                },
            )
            .collect();
        if texts.len() != references.len() {
            return Err(Error::InvalidArgument(format!(
                "{}: {} rows for {} references",
                path.display(),
                texts.len(),
                references.len()
            )));
        }
        let r = fluency_report(&judge, &texts, &references);
        let f1 = mean_token_f1(&texts, &references);
        if json {
            rows.push(serde_json::json!({"output": path, "rows": texts.len(), "token_f1": f1, "report": r}));
        } else {
            println!(
                "{:<40}{:>6}{:>9.4}{:>9.3}{:>7.1}%{:>7.1}%{:>9.3}{:>8.2}  [{:.2}, {:.2}]",
                path.display().to_string(),
                texts.len(),
                f1,
                r.fluency,
                100.0 * r.below_reference_p5,
                100.0 * r.repetition,
                r.reference_fluency,
                r.bleu[0],
                r.bleu[1],
                r.bleu[2]
            );
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}

/// The lines of a text file (zstd-decompressed when its name ends in `.zst`).
fn read_lines(path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open the text file", path, e))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "zst") {
        Box::new(
            zstd::stream::read::Decoder::new(file).map_err(|e| Error::io("decompress", path, e))?,
        )
    } else {
        Box::new(file)
    };
    std::io::BufReader::new(reader)
        .lines()
        .collect::<std::io::Result<Vec<String>>>()
        .map_err(|e| Error::io("read the lines of", path, e))
}
