//! The hybrid decoder: per input the bank's phrase, another of its top candidates re-ranked by
//! the generator, or the generated text, by a calibrated rule.
//!
//! * [`HybridConfig`] (`rule.rs`): the rule and the signals it reads.
//! * [`HybridDecoder`] (`decoder.rs`): both decoders behind the [`Decoder`](crate::Decoder)
//!   trait.
//! * [`measure`], [`calibrate`], [`evaluate_rule`] (`calibrate.rs`): fitting the rule.

mod calibrate;
mod decoder;
mod rule;

pub use calibrate::{
    calibrate, evaluate_rule, measure, Calibration, CalibrationRow, Objective, RuleOutcome,
};
pub use decoder::{BothOutputs, HybridDecoder};
pub use rule::{Alternative, HybridConfig, HybridSignals};
