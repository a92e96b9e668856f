//! `lwdec eval` (score decoders against references) and `lwdec calibrate` (fit the hybrid's
//! rule).

use std::path::Path;

use lightweight_decoder::eval::{evaluate, perturb_rows, roundtrip_cosines, CosineSummary};
use lightweight_decoder::hybrid::{calibrate as fit_rule, measure, Objective};
use lightweight_decoder::io::write_atomic;
use lightweight_decoder::{save_config, Encoder, Error, Result};
use serde_json::json;

use crate::options::{CalibrationObjective, DecoderArgs, LabelledArgs};

/// Where `lwdec eval` writes, and the fluency judge it scores with.
pub struct Outputs<'a> {
    /// The JSON report.
    pub report: Option<&'a Path>,
    /// Every decoded text as JSON lines.
    pub decoded: Option<&'a Path>,
    /// The judge model.
    pub judge: Option<&'a Path>,
    /// Whether to re-embed the texts for the round-trip cosine.
    pub round_trip: bool,
}

/// Decodes the labelled rows with each decoder `--decoder` names and prints their scores.
pub fn run(
    labelled: &LabelledArgs,
    boundaries: Option<Vec<usize>>,
    noise_cosine: f32,
    outputs: Outputs<'_>,
    args: &DecoderArgs,
) -> Result<()> {
    let Outputs {
        report: output,
        decoded: decoded_path,
        judge,
        round_trip,
    } = outputs;
    check_cosine(noise_cosine)?;
    // the judge is loaded first: a bad path fails before any decoding
    let judge = judge
        .map(lightweight_decoder::language_model::NgramModel::load)
        .transpose()?;
    let (clean, references) = labelled.load()?;
    let embeddings = perturb_rows(&clean, noise_cosine, 2026);
    let boundaries = boundaries.unwrap_or_else(|| (0..embeddings.nrows()).collect());
    // one encoder for the round trip and for --verify
    let encoder: Option<std::sync::Arc<dyn Encoder>> = if round_trip || args.verify {
        Some(std::sync::Arc::new(crate::embed::load_encoder(
            args.encoder.as_deref(),
            crate::embed::DEFAULT_BATCH,
        )?))
    } else {
        None
    };
    let mut reports = Vec::new();
    let mut lines = String::new();
    for (name, decoder) in crate::build_decoders(args, encoder.clone())? {
        let mut report = evaluate(
            &name,
            decoder.as_ref(),
            embeddings.view(),
            &boundaries,
            &references,
        )?;
        if let Some(encoder) = encoder.as_deref().filter(|_| round_trip) {
            // against the clean inputs: with --noise-cosine, fidelity to the clean meaning
            let cosines = roundtrip_cosines(encoder, clean.view(), &report.texts)?;
            report.roundtrip_cosine = Some(CosineSummary::of(&cosines));
        }
        for (row, text) in report.texts.iter().enumerate() {
            lines.push_str(&json!({"decoder": name, "row": row, "text": text}).to_string());
            lines.push('\n');
        }
        reports.push(report);
    }
    println!(
        "{:<14}{:>7}{:>9}{:>10}{:>8}{:>8}{:>7}{:>10}{:>10}  sources",
        "decoder", "rows", "exact", "token F1", "BLEU", "chrF", "conf", "p50 us", "p99 us"
    );
    for r in &reports {
        println!(
            "{:<14}{:>7}{:>8.2}%{:>10.4}{:>8.2}{:>8.2}{:>7.3}{:>10.0}{:>10.0}  {:?}",
            r.decoder,
            r.rows,
            100.0 * r.exact_match,
            r.token_f1,
            r.bleu,
            r.chrf,
            r.mean_confidence,
            r.latency_us[0],
            r.latency_us[2],
            r.sources
        );
    }
    if round_trip {
        println!(
            "\n{:<14}{:>7}{:>11}{:>9}{:>9}{:>9}",
            "decoder", "rows", "round trip", "p10", "median", "p90"
        );
        for r in &reports {
            if let Some(c) = &r.roundtrip_cosine {
                println!(
                    "{:<14}{:>7}{:>11.4}{:>9.4}{:>9.4}{:>9.4}",
                    r.decoder, c.rows, c.mean, c.p10, c.median, c.p90
                );
            }
        }
    }
    let fluency: Vec<_> = match &judge {
        Some(judge) => reports
            .iter()
            .map(|r| {
                lightweight_decoder::eval::fluency::fluency_report(judge, &r.texts, &references)
            })
            .collect(),
        None => Vec::new(),
    };
    if !fluency.is_empty() {
        println!(
            "\n{:<14}{:>9}{:>8}{:>8}{:>9}  BLEU 95%",
            "decoder", "fluency", "<p5", "repeat", "ref flu"
        );
        for (r, f) in reports.iter().zip(&fluency) {
            println!(
                "{:<14}{:>9.3}{:>7.1}%{:>7.1}%{:>9.3}  {:.2} [{:.2}, {:.2}]",
                r.decoder,
                f.fluency,
                100.0 * f.below_reference_p5,
                100.0 * f.repetition,
                f.reference_fluency,
                f.bleu[0],
                f.bleu[1],
                f.bleu[2]
            );
        }
    }
    if let Some(path) = output {
        let report = json!({
            "input": labelled.input,
            "reference": labelled.reference,
            "noise_cosine": noise_cosine,
            "decoders": reports,
            "fluency": fluency,
        });
        write_atomic(
            path,
            (serde_json::to_string_pretty(&report)? + "\n").as_bytes(),
        )?;
    }
    if let Some(path) = decoded_path {
        write_atomic(path, lines.as_bytes())?;
    }
    Ok(())
}

/// `--noise-cosine` must be in (0, 1].
fn check_cosine(cosine: f32) -> Result<()> {
    if cosine > 0.0 && cosine <= 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "--noise-cosine must be in (0, 1], got {cosine}"
        )))
    }
}

/// Measures the hybrid on the labelled rows (at each noise level), fits its rule to
/// `objective` and writes the config with it.
pub fn calibrate(
    labelled: &LabelledArgs,
    out: &Path,
    objective: CalibrationObjective,
    noise_cosine: &[f32],
    args: &DecoderArgs,
) -> Result<()> {
    let (clean, texts) = labelled.load()?;
    let mut levels = Vec::with_capacity(noise_cosine.len());
    for (level, &cosine) in noise_cosine.iter().enumerate() {
        check_cosine(cosine)?;
        levels.push(perturb_rows(&clean, cosine, 2026 + level as u64));
    }
    let views: Vec<_> = levels.iter().map(|x| x.view()).collect();
    let embeddings = ndarray::concatenate(ndarray::Axis(0), &views)
        .map_err(|e| Error::InvalidArgument(format!("--noise-cosine: {e}")))?;
    let references: Vec<String> = (0..noise_cosine.len())
        .flat_map(|_| texts.clone())
        .collect();
    let mut config = args.decoder_config()?;
    let hybrid = args.builder()?.hybrid()?;
    let encoder = match objective {
        CalibrationObjective::TokenF1 => None,
        CalibrationObjective::RoundTrip => {
            Some(crate::embed::load_encoder(args.encoder.as_deref(), 64)?)
        }
    };
    let objective = match &encoder {
        Some(e) => Objective::RoundTrip(e),
        None => Objective::TokenF1,
    };
    let rows = measure(&hybrid, embeddings.view(), &references, objective)?;
    let fit = fit_rule(&rows, &config.hybrid);
    println!("{}", serde_json::to_string_pretty(&fit)?);
    config.hybrid = fit.rule;
    save_config(&config, out)
}
