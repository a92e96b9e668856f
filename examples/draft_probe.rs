//! Research aid: does a retrieval-augmented generator use its draft? Mean log-probability per
//! byte of each reference given (a) its bank draft, (b) no draft, (c) another row's draft.
//!
//! `cargo run --release --example draft_probe -- MODEL INPUT.npy SCALE.npy REFS.txt DRAFTS.txt ROWS`

use std::path::Path;

use lightweight_decoder::embedding::load_embeddings;
use lightweight_decoder::generative::InferenceModel;
use lightweight_decoder::samples::read_lines;

fn mean_lp(m: &InferenceModel, e: &[f32], draft: &str, text: &str) -> f64 {
    f64::from(m.mean_log_prob_with_draft(e, draft, text).unwrap())
}

fn main() -> lightweight_decoder::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let m = InferenceModel::load(Path::new(&a[1]))?;
    let emb = load_embeddings(Path::new(&a[2]), Some(Path::new(&a[3])))?;
    let refs = read_lines(Path::new(&a[4]))?;
    let drafts = read_lines(Path::new(&a[5]))?;
    let n: usize = a[6].parse().unwrap();
    let (mut with, mut without, mut other) = (0.0, 0.0, 0.0);
    for r in 0..n {
        let e = emb.row(r).to_vec();
        with += mean_lp(&m, &e, &drafts[r], &refs[r]);
        without += mean_lp(&m, &e, "", &refs[r]);
        other += mean_lp(&m, &e, &drafts[(r + 7) % n], &refs[r]);
    }
    let bpb = |x: f64| -x / n as f64 / std::f64::consts::LN_2;
    println!(
        "bits/byte: own draft {:.3}, no draft {:.3}, another row's draft {:.3}",
        bpb(with),
        bpb(without),
        bpb(other)
    );
    for r in 0..5 {
        let e = emb.row(r).to_vec();
        let o = lightweight_decoder::generative::DecodeOptions::default();
        println!(
            "{:?}\n  draft {:?}\n  with  {:?}\n  none  {:?}",
            refs[r],
            drafts[r],
            m.decode_with_draft(&e, &drafts[r], &o)?.text,
            m.decode(&e, &o)?.text
        );
    }
    Ok(())
}
