//! `lwdec model export|info`: generative model files.

use std::path::Path;

use lightweight_decoder::generative::train::Checkpoint;
use lightweight_decoder::generative::{InferenceModel, Precision};
use lightweight_decoder::{Error, GenerativeDecoder, Result};

/// Exports a training checkpoint as a GGUF model file of the given precision.
pub fn export(checkpoint: &Path, precision: Precision, out: &Path) -> Result<()> {
    let Checkpoint { model, state } = Checkpoint::read(checkpoint)?;
    InferenceModel::from_model(&model, precision)?.save(out)?;
    println!(
        "exported step {} as {precision:?} to {} ({} bytes)",
        state.step,
        out.display(),
        file_size(out)?
    );
    Ok(())
}

/// Describes a model file (the bundled model when `model` is `None`).
pub fn info(model: Option<&Path>) -> Result<()> {
    let path = model.map_or_else(GenerativeDecoder::default_model_path, Path::to_path_buf);
    let m = InferenceModel::load(&path)?;
    let bytes = file_size(&path)?;
    let c = m.config();
    println!("model        {}", path.display());
    println!("parameters   {}", c.parameter_count());
    println!(
        "file size    {bytes} bytes ({:.1} KB)",
        bytes as f64 / 1024.0
    );
    println!("quantisation {:?}", m.precision());
    println!("depth        {}", c.depth);
    println!("config       {}", serde_json::to_string(c)?);
    Ok(())
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| Error::io("read the metadata of", path, e))?
        .len())
}
