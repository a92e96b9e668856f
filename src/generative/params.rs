//! The parameters of the generative model: their names, order and shapes, shared by the
//! training model, the inference engine and the GGUF file.

use super::config::GenerativeConfig;

/// Names of the parameters, in a fixed order (saving, loading, quantizing, counting).
pub(crate) const PARAM_NAMES: [&str; 14] = [
    "bridge.weight",
    "bridge_norm.weight",
    "bridge_norm.bias",
    "embed.weight",
    "layer.attn_norm.weight",
    "layer.attn_norm.bias",
    "layer.qkv.weight",
    "layer.out.weight",
    "layer.mlp_norm.weight",
    "layer.mlp_norm.bias",
    "layer.up.weight",
    "layer.down.weight",
    "final_norm.weight",
    "final_norm.bias",
];

/// Indices into [`PARAM_NAMES`].
pub(crate) mod idx {
    pub(crate) const BRIDGE: usize = 0;
    pub(crate) const BRIDGE_NORM_W: usize = 1;
    pub(crate) const BRIDGE_NORM_B: usize = 2;
    pub(crate) const EMBED: usize = 3;
    pub(crate) const ATTN_NORM_W: usize = 4;
    pub(crate) const ATTN_NORM_B: usize = 5;
    pub(crate) const QKV: usize = 6;
    pub(crate) const OUT: usize = 7;
    pub(crate) const MLP_NORM_W: usize = 8;
    pub(crate) const MLP_NORM_B: usize = 9;
    pub(crate) const UP: usize = 10;
    pub(crate) const DOWN: usize = 11;
    pub(crate) const FINAL_NORM_W: usize = 12;
    pub(crate) const FINAL_NORM_B: usize = 13;
}

/// Shape of parameter `name` under `config`.
pub(crate) fn param_shape(config: &GenerativeConfig, name: &str) -> Option<Vec<usize>> {
    let (h, e, m, v) = (config.hidden, config.embed_dim, config.mlp, config.vocab);
    Some(match name {
        "bridge.weight" => vec![h, e],
        "embed.weight" => vec![v, h],
        "layer.qkv.weight" => vec![3 * h, h],
        "layer.out.weight" => vec![h, h],
        "layer.up.weight" => vec![m, h],
        "layer.down.weight" => vec![h, m],
        n if n.ends_with("norm.weight") || n.ends_with("norm.bias") => vec![h],
        _ => return None,
    })
}

/// Input bytes are embedded as `embed[byte] * sqrt(hidden)`, so that they start at the same
/// scale as the layer-normalised prefix while the tied output projection starts small.
pub(crate) fn embed_scale(config: &GenerativeConfig) -> f64 {
    (config.hidden as f64).sqrt()
}
