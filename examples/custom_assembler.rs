//! An assembler and a post-processing stage of your own, plugged into the bank decoder (and
//! the hybrid's bank) through the builder: among the phrases within 0.02 of the best match, the
//! shortest (short, direct wording), and a stage that drops a trailing parenthetical.
//!
//! Run: `cargo run --release --example custom_assembler`

use std::sync::Arc;

use lightweight_decoder::eval::samples::SampleSet;
use lightweight_decoder::phrase_bank::assembly::{Assembler, Assembly, AssemblyInput};
use lightweight_decoder::phrase_bank::postprocess::PostProcessor;
use lightweight_decoder::{Decoder, DecoderBuilder, Result};

/// The shortest phrase among those within `gap` of the best similarity.
struct ShortestNearBest {
    gap: f32,
}

impl Assembler for ShortestNearBest {
    fn assemble(&self, input: &AssemblyInput<'_>) -> Result<Assembly> {
        let best = input.hits[0].similarity;
        let length = |id: usize| input.bank.phrase(id).map_or(usize::MAX, str::len);
        let pick = input
            .hits
            .iter()
            .filter(|h| best - h.similarity <= self.gap)
            .min_by_key(|h| length(h.id))
            .unwrap_or(&input.hits[0]);
        Ok(Assembly {
            phrase_ids: vec![pick.id],
            similarity: pick.similarity,
            support: 1.0,
        })
    }
}

/// Drops a parenthetical that ends a segment ("... a tool (see below)" -> "... a tool").
struct NoTrailingParenthetical;

impl PostProcessor for NoTrailingParenthetical {
    fn process(&self, segments: &mut Vec<String>) {
        for segment in segments.iter_mut() {
            if segment.trim_end().ends_with(')') {
                if let Some(open) = segment.rfind(" (") {
                    segment.truncate(open);
                }
            }
        }
    }
}

fn main() -> Result<()> {
    let sample = SampleSet::bundled("everyday")?;
    let plain = DecoderBuilder::new().phrase_bank()?;
    let custom = DecoderBuilder::new()
        .assembler(Arc::new(ShortestNearBest { gap: 0.02 }))
        .postprocessor(Arc::new(NoTrailingParenthetical))
        .phrase_bank()?;
    for row in 0..6 {
        let v = sample.embeddings.row(row).to_vec();
        println!("reference: {}", sample.texts[row]);
        println!("  default: {}", plain.decode(&v)?.text);
        println!("  custom:  {}\n", custom.decode(&v)?.text);
    }
    Ok(())
}
