//! Training checkpoints: the weights as safetensors plus a small JSON state, written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::TrainConfig;
use crate::fsutil::write_atomic;
use crate::generative::config::GenerativeConfig;
use crate::generative::model::GenerativeModel;
use crate::{Error, Result};

/// Name of the JSON state that always points at the newest checkpoint of a folder.
const LATEST: &str = "latest.json";

/// The JSON half of a checkpoint (the optimizer moments are not saved: a resumed run restarts
/// AdamW's moment estimates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Training steps completed.
    pub step: usize,
    /// Model architecture.
    pub model: GenerativeConfig,
    /// Training configuration of the run.
    pub train: TrainConfig,
    /// File name of the safetensors weights, in the same folder as this JSON.
    pub weights: String,
    /// SHA-256 of the weights file, lowercase hex.
    pub weights_sha256: String,
    /// Validation bits per byte at this step, if measured.
    pub val_bpb: Option<f64>,
}

/// A model restored from a checkpoint, with its state.
#[derive(Debug)]
pub struct Checkpoint {
    /// The JSON state.
    pub state: CheckpointState,
    /// The model with the saved weights.
    pub model: GenerativeModel,
}

/// Lowercase hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Checkpoint {
    /// Saves `model` after `step` steps into `dir` as `step-NNNNNNN.safetensors` and
    /// `step-NNNNNNN.json`, and updates `latest.json`; returns the path of the step's JSON.
    pub fn write(
        dir: &Path,
        model: &GenerativeModel,
        train: &TrainConfig,
        step: usize,
        val_bpb: Option<f64>,
    ) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create the folder", dir, e))?;
        let stem = format!("step-{step:07}");
        let weights = format!("{stem}.safetensors");
        let weights_path = dir.join(&weights);
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| Error::io("create a temporary file in", dir, e))?;
        model.save_weights(tmp.path())?;
        let bytes = std::fs::read(tmp.path()).map_err(|e| Error::io("read", tmp.path(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io("flush to disk", &weights_path, e))?;
        tmp.persist(&weights_path)
            .map_err(|e| Error::io("move the finished file to", &weights_path, e.error))?;
        let state = CheckpointState {
            step,
            model: model.config().clone(),
            train: train.clone(),
            weights,
            weights_sha256: sha256_hex(&bytes),
            val_bpb,
        };
        let json = serde_json::to_vec_pretty(&state)?;
        let json_path = dir.join(format!("{stem}.json"));
        write_atomic(&json_path, &json)?;
        write_atomic(&dir.join(LATEST), &json)?;
        Ok(json_path)
    }

    /// Reads a checkpoint from its JSON state file (a `step-*.json` or `latest.json`), or from
    /// a folder (its `latest.json`), verifying the weights' checksum.
    pub fn read(path: &Path) -> Result<Self> {
        let json_path = if path.is_dir() {
            path.join(LATEST)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read(&json_path).map_err(|e| Error::io("read", &json_path, e))?;
        let state: CheckpointState =
            serde_json::from_slice(&text).map_err(|e| Error::InvalidModel {
                path: json_path.clone(),
                reason: format!("bad checkpoint state: {e}"),
            })?;
        state.model.validate()?;
        let weights_path = json_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&state.weights);
        let bytes =
            std::fs::read(&weights_path).map_err(|e| Error::io("read", &weights_path, e))?;
        if sha256_hex(&bytes) != state.weights_sha256 {
            return Err(Error::InvalidModel {
                path: weights_path,
                reason: "checksum mismatch: the weights file is corrupt or was replaced".into(),
            });
        }
        let model = GenerativeModel::load_weights(state.model.clone(), &weights_path)?;
        Ok(Self { state, model })
    }
}
