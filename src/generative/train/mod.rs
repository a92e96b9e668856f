//! Training the generative model: the dataset and its fixed split, the settings, the trainer
//! and its checkpoints.

mod checkpoint;
mod config;
mod dataset;
mod trainer;

pub use checkpoint::{Checkpoint, CheckpointState};
pub use config::{Decay, DepthStage, TrainConfig, TrainLogEntry, TrainSummary};
pub use dataset::{is_validation, load_phrases, Dataset, Split};
pub use trainer::{StepStats, Trainer};
