//! The hybrid's three evaluation sets (issue 4): calibrate the rule on one half of each set,
//! report every decoder on the other half.
//!
//! - generator's home: the bundled held-out validation phrases, decoded with a bank of the
//!   training phrases only (`lwdec bank build ... --exclude-validation`), so the reference is
//!   never in the bank;
//! - bank's home: exact embeddings of bank phrases (the bundled WordNet sample, minus the
//!   validation split);
//! - mix: the two report halves, 50/50.
//!
//! With `--noise-cosine 1,0.9,0.8` each set is measured at every level (inputs perturbed to
//! that cosine), the rule is calibrated on all of them and reported per level.
//!
//! ```text
//! cargo run --release --example hybrid_report -- --bank target/eval/train_bank_flat \
//!     --model model/generative.q4.gguf --out docs/hybrid_report.json \
//!     --config-out docs/hybrid_config.json
//! ```
//! (`scripts/hybrid_report.sh` builds the bank and draws the figure.)

use std::path::PathBuf;

use clap::Parser;
use lightweight_decoder::eval::perturb_rows;
use lightweight_decoder::eval::samples::{SampleSet, VALIDATION, WORDNET_SAMPLE};
use lightweight_decoder::generative::train::is_validation;
use lightweight_decoder::generative::{DecodeOptions, GuideSettings, Strategy};
use lightweight_decoder::hybrid::{calibrate, evaluate_rule, measure, CalibrationRow, Objective};
use lightweight_decoder::{
    DecoderConfig, GenerativeDecoder, HybridConfig, HybridDecoder, PhraseBank, PhraseBankDecoder,
    Result,
};
use ndarray::Axis;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Bank of the training phrases only.
    #[arg(long)]
    bank: PathBuf,
    /// Generative model file.
    #[arg(long)]
    model: PathBuf,
    /// Report (JSON) to write.
    #[arg(long)]
    out: PathBuf,
    /// Decoder config (JSON) with the calibrated rule, to write.
    #[arg(long)]
    config_out: Option<PathBuf>,
    /// Rows per set and half (at most the available ones).
    #[arg(long, default_value_t = 1000)]
    rows: usize,
    /// Generate by minimum Bayes risk over this many samples (0: greedy).
    #[arg(long, default_value_t = 0)]
    mbr: usize,
    /// Beam width of the generator (1: greedy; ignored with --mbr).
    #[arg(long, default_value_t = 1)]
    beam: usize,
    /// Guide the generator with the bank's nearest phrases (`GuideSettings::default()`).
    #[arg(long)]
    guide: bool,
    /// Noise levels: every set is also measured with its inputs perturbed to each of these
    /// cosines (seeded), the rule is calibrated on all levels together and reported per level
    /// (1 = clean inputs only).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    noise_cosine: Vec<f32>,
}

/// Rows `parity`, `parity + 2`, ... of a sample, at most `limit`.
fn half(
    set: &SampleSet,
    keep: &[usize],
    parity: usize,
    limit: usize,
) -> (ndarray::Array2<f32>, Vec<String>) {
    let rows: Vec<usize> = keep
        .iter()
        .copied()
        .skip(parity)
        .step_by(2)
        .take(limit)
        .collect();
    (
        set.embeddings.select(Axis(0), &rows),
        rows.iter().map(|&r| set.texts[r].clone()).collect(),
    )
}

fn summary(name: &str, rows: &[CalibrationRow], rule: &HybridConfig) -> serde_json::Value {
    let n = rows.len() as f64;
    let bank = rows.iter().map(|r| r.bank_score).sum::<f64>() / n;
    let generator = rows.iter().map(|r| r.generator_score).sum::<f64>() / n;
    let hybrid = evaluate_rule(rule, rows);
    // Paired difference to the better single decoder, with its standard error.
    let better: Vec<f64> = if bank >= generator {
        rows.iter().map(|r| r.bank_score).collect()
    } else {
        rows.iter().map(|r| r.generator_score).collect()
    };
    let diffs: Vec<f64> = hybrid
        .row_scores
        .iter()
        .zip(&better)
        .map(|(h, b)| h - b)
        .collect();
    let gain = diffs.iter().sum::<f64>() / n;
    let var = diffs.iter().map(|d| (d - gain).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let stderr = (var / n).sqrt();
    println!(
        "{name:<18} rows {:>5}  token F1  bank {bank:.4}  generator {generator:.4}  hybrid {:.4}  gain {gain:+.4} (se {stderr:.4}; generator picked {:.1}%, re-ranked {:.1}%)",
        rows.len(),
        hybrid.score,
        100.0 * hybrid.generator_share,
        100.0 * hybrid.reranked_share
    );
    json!({"set": name, "rows": rows.len(), "bank_f1": bank, "generator_f1": generator,
           "hybrid_f1": hybrid.score, "gain_over_better": gain, "gain_stderr": stderr,
           "generator_share": hybrid.generator_share, "reranked_share": hybrid.reranked_share})
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bank = PhraseBankDecoder::new(PhraseBank::load(&args.bank)?, DecoderConfig::default())?;
    let options = DecodeOptions {
        strategy: if args.mbr > 0 {
            Strategy::Mbr {
                samples: args.mbr,
                temperature: 0.6,
                seed: 0,
            }
        } else if args.beam > 1 {
            Strategy::Beam { width: args.beam }
        } else {
            Strategy::Greedy
        },
        ..DecodeOptions::default()
    };
    let guide = if args.guide {
        GuideSettings::default()
    } else {
        GuideSettings::off()
    };
    let generator = GenerativeDecoder::load(&args.model, options)?
        .with_guide(bank.shared_bank(), guide.clone())?;
    let hybrid = HybridDecoder::new(bank, generator, HybridConfig::default())?;

    let home = SampleSet::bundled(VALIDATION)?;
    let home_rows: Vec<usize> = (0..home.texts.len()).collect();
    let in_bank = SampleSet::bundled(WORDNET_SAMPLE)?;
    let in_bank_rows: Vec<usize> = (0..in_bank.texts.len())
        .filter(|&r| !is_validation(&in_bank.texts[r]))
        .collect();

    // measured[parity][level][set]
    let mut measured = Vec::new();
    for parity in 0..2 {
        let mut levels = Vec::new();
        for (level, &cosine) in args.noise_cosine.iter().enumerate() {
            let mut halves = Vec::new();
            for (set, keep) in [(&home, &home_rows), (&in_bank, &in_bank_rows)] {
                let (x, texts) = half(set, keep, parity, args.rows);
                let x = if cosine < 1.0 {
                    perturb_rows(&x, cosine, 1000 + level as u64)
                } else {
                    x
                };
                halves.push(measure(&hybrid, x.view(), &texts, Objective::TokenF1)?);
            }
            levels.push(halves);
        }
        measured.push(levels);
    }
    let calibration: Vec<CalibrationRow> = measured[0].concat().concat();
    let fit = calibrate(&calibration, &HybridConfig::default());
    println!("calibrated on {} rows: {:?}", calibration.len(), fit.rule);

    let mut sets = Vec::new();
    for (level, &cosine) in args.noise_cosine.iter().enumerate() {
        let [home_report, bank_report] = [&measured[1][level][0], &measured[1][level][1]];
        let n = home_report.len().min(bank_report.len());
        let mix: Vec<CalibrationRow> = home_report[..n]
            .iter()
            .chain(&bank_report[..n])
            .cloned()
            .collect();
        let suffix = if cosine < 1.0 {
            format!(", cosine {cosine}")
        } else {
            String::new()
        };
        sets.push(summary(
            &format!("generator's home{suffix}"),
            home_report,
            &fit.rule,
        ));
        sets.push(summary(
            &format!("bank's home{suffix}"),
            bank_report,
            &fit.rule,
        ));
        sets.push(summary(&format!("mix 50/50{suffix}"), &mix, &fit.rule));
    }
    let report = json!({
        "bank": args.bank, "model": args.model, "mbr_samples": args.mbr, "beam": args.beam,
        "guide": guide, "noise_cosine": args.noise_cosine,
        "calibration": fit, "report_sets": sets,
    });
    if let Some(path) = &args.config_out {
        let config = DecoderConfig {
            hybrid: fit.rule,
            guide,
            ..DecoderConfig::default()
        };
        lightweight_decoder::save_config(&config, path)?;
    }
    lightweight_decoder::io::write_atomic(
        &args.out,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    Ok(())
}
