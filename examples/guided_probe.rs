//! Measure retrieval-guided decoding (research aid): token F1 of the generator guided by a
//! bank's nearest phrases, for several settings, against the bank's own top phrase.
//!
//! `cargo run --release --example guided_probe -- MODEL BANK INPUT.npy SCALE.npy REFS.txt FROM TO K,TAU,WEIGHT,MIN[,BEAM[,CONSENSUS_WEIGHT[,CONSENSUS_TAU]]] ...`
//!
//! Environment: `GUIDED_DUMP=PATH` (JSONL per spec), `GUIDED_EXCLUDE_SELF=1` (drop each row's own
//! phrase), `GUIDED_NOISE=C` (inputs at cosine C), `GUIDED_DENOISE=L` (the generator reads the
//! input pulled towards its candidates' embeddings).

use std::path::Path;

use lightweight_decoder::embedding::{load_embeddings, normalized};
use lightweight_decoder::generative::{
    DecodeOptions, Guide, GuideSettings, InferenceModel, Strategy,
};
use lightweight_decoder::metrics::{corpus_bleu, token_f1};
use lightweight_decoder::phrase_bank::PhraseBank;
use lightweight_decoder::samples::read_lines;
use rayon::prelude::*;

fn main() -> lightweight_decoder::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let model = InferenceModel::load(Path::new(&a[1]))?;
    let bank = PhraseBank::load(Path::new(&a[2]))?;
    let emb = load_embeddings(Path::new(&a[3]), Some(Path::new(&a[4])))?;
    let refs = read_lines(Path::new(&a[5]))?;
    let from: usize = a[6].parse().unwrap();
    let to: usize = a[7].parse::<usize>().unwrap().min(emb.nrows());
    let rows: Vec<usize> = (from..to).collect();
    // GUIDED_NOISE=C: inputs perturbed to cosine C with their clean embeddings
    let emb = match std::env::var("GUIDED_NOISE") {
        Ok(c) => lightweight_decoder::eval::perturb_rows(&emb, c.parse().unwrap(), 2026),
        Err(_) => emb,
    };
    let queries: Vec<Vec<f32>> = rows
        .iter()
        .map(|&r| normalized(&emb.row(r).to_vec(), model.config().embed_dim).unwrap())
        .collect();
    let flat: Vec<f32> = queries.concat();
    let references: Vec<String> = rows.iter().map(|&r| refs[r].clone()).collect();
    // GUIDED_EXCLUDE_SELF=1: drop each row's own phrase from its candidates (for a bank that
    // holds the evaluated phrases, such as the bundled one)
    let exclude_self = std::env::var_os("GUIDED_EXCLUDE_SELF").is_some();
    let hits = bank.search(&flat, 17)?;
    let cands: Vec<Vec<(String, f32)>> = hits
        .iter()
        .zip(&references)
        .map(|(h, r)| {
            h.iter()
                .map(|x| (bank.phrase(x.id).unwrap().to_string(), x.similarity))
                .filter(|(t, _)| !(exclude_self && t == r))
                .take(16)
                .collect()
        })
        .collect();
    // GUIDED_DENOISE=L: the generator reads the input plus L times the similarity-weighted
    // (softmax at 0.05) mean of its 8 candidates' embeddings, renormalised
    let queries: Vec<Vec<f32>> = match std::env::var("GUIDED_DENOISE") {
        Ok(l) => {
            let l: f32 = l.parse().unwrap();
            queries
                .iter()
                .zip(&hits)
                .zip(&references)
                .map(|((q, hits), r)| {
                    // the candidates' own hits (the search above), each row's phrase excluded
                    // as for the candidates
                    let hits: Vec<_> = hits
                        .iter()
                        .filter(|h| !(exclude_self && bank.phrase(h.id) == Some(r.as_str())))
                        .take(8)
                        .collect();
                    let best = hits[0].similarity;
                    let w: Vec<f32> = hits
                        .iter()
                        .map(|h| ((h.similarity - best) / 0.05).exp())
                        .collect();
                    let z: f32 = w.iter().sum();
                    let mut out = q.clone();
                    for (h, w) in hits.iter().zip(&w) {
                        for (o, e) in out.iter_mut().zip(bank.embedding(h.id).unwrap()) {
                            *o += l * w / z * e;
                        }
                    }
                    normalized(&out, out.len()).unwrap()
                })
                .collect()
        }
        Err(_) => queries,
    };
    let top1: Vec<String> = cands.iter().map(|c| c[0].0.clone()).collect();
    let f1 = |h: &[String]| {
        h.iter()
            .zip(&references)
            .map(|(h, r)| token_f1(h, r))
            .sum::<f64>()
            / h.len() as f64
    };
    println!(
        "rows {from}..{to}: bank top-1 F1 {:.4} BLEU {:.2}",
        f1(&top1),
        corpus_bleu(&top1, &references)
    );
    for tau in [0.01f32, 0.03, 0.1] {
        // the bank alone: the top-8 phrase that agrees most with the others (no generator)
        let consensus = GuideSettings {
            candidates: 8,
            consensus_weight: 1.0,
            consensus_temperature: tau,
            ..GuideSettings::default()
        };
        let pick: Vec<String> = cands
            .iter()
            .map(|c| {
                let guide =
                    Guide::new(c.iter().map(|(t, s)| (t.as_str(), *s)), &consensus).unwrap();
                let score = |i: usize| guide.consensus(&c[i].0);
                let best = (0..c.len().min(8))
                    .max_by(|&i, &j| score(i).total_cmp(&score(j)))
                    .unwrap();
                c[best].0.clone()
            })
            .collect();
        println!(
            "bank consensus (top 8, tau {tau}): F1 {:.4} BLEU {:.2}",
            f1(&pick),
            corpus_bleu(&pick, &references)
        );
    }
    for spec in &a[8..] {
        let v: Vec<f32> = spec.split(',').map(|x| x.parse().unwrap()).collect();
        let settings = GuideSettings {
            candidates: v[0] as usize,
            temperature: v[1],
            weight: v[2],
            min_match: v[3] as usize,
            consensus_weight: v.get(5).copied().unwrap_or(0.0),
            consensus_temperature: v.get(6).copied().unwrap_or(0.3),
        };
        let strategy = match v.get(4) {
            Some(&w) if w > 1.0 => Strategy::Beam { width: w as usize },
            _ => Strategy::Greedy,
        };
        let options = DecodeOptions {
            strategy,
            ..DecodeOptions::default()
        };
        let started = std::time::Instant::now();
        let out: Vec<String> = queries
            .par_iter()
            .zip(&cands)
            .map(|(q, c)| {
                let guide = Guide::new(c.iter().map(|(t, s)| (t.as_str(), *s)), &settings).unwrap();
                model
                    .decode_guided(q, "", Some(&guide), &options)
                    .unwrap()
                    .text
            })
            .collect();
        let copies = out
            .iter()
            .zip(&cands)
            .filter(|(o, c)| c.iter().any(|(t, _)| t == *o))
            .count();
        if let Ok(path) = std::env::var("GUIDED_DUMP") {
            let lines: Vec<String> = out
                .iter()
                .zip(&cands)
                .zip(&references)
                .map(|((o, c), r)| {
                    serde_json::json!({"spec": spec, "out": o, "ref": r, "top1": c[0].0,
                        "sim": c[0].1, "f1": token_f1(o, r), "f1_top1": token_f1(&c[0].0, r),
                        "cands": c.iter().take(8).collect::<Vec<_>>()})
                    .to_string()
                })
                .collect();
            std::fs::write(format!("{path}.{spec}.jsonl"), lines.join("\n")).unwrap();
        }
        println!(
            "{spec:>22}: F1 {:.4} BLEU {:.2} verbatim-candidate {:.1}% ({:.1} s)",
            f1(&out),
            corpus_bleu(&out, &references),
            100.0 * copies as f64 / out.len() as f64,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
