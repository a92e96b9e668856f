//! Architecture hyper-parameters of the generative decoder.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Shape of the generative decoder. The default has exactly 722,944 trainable parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, try_from = "StoredConfig")]
pub struct GenerativeConfig {
    /// Dimension of the conditioning sentence embedding.
    pub embed_dim: usize,
    /// Hidden size of the transformer.
    pub hidden: usize,
    /// Number of attention heads (`hidden` must be a multiple, head size must be even).
    pub heads: usize,
    /// Inner size of the feed-forward block.
    pub mlp: usize,
    /// Vocabulary size: 256 bytes, byte 0 ends the text.
    pub vocab: usize,
    /// How many times the shared transformer layer is applied.
    pub depth: usize,
    /// Longest text, in bytes, the model is trained on and generates.
    pub max_len: usize,
    /// Add the embedding prefix to the hidden state at the input of every depth iteration.
    pub inject_every_depth: bool,
    /// Base of the rotary position frequencies.
    pub rope_theta: f32,
    /// Epsilon of every layer norm.
    pub ln_eps: f32,
}

impl Default for GenerativeConfig {
    fn default() -> Self {
        Self {
            embed_dim: 768,
            hidden: 256,
            heads: 2,
            mlp: 384,
            vocab: 256,
            depth: 4,
            max_len: 128,
            inject_every_depth: true,
            rope_theta: 10_000.0,
            ln_eps: 1e-5,
        }
    }
}

impl GenerativeConfig {
    /// Trainable parameters of a model with this configuration: bridge (linear + LayerNorm),
    /// tied byte embedding, the one shared layer (QKV, output, MLP, two LayerNorms) and the final
    /// LayerNorm. Depth reuses the layer, so it adds none.
    pub fn parameter_count(&self) -> usize {
        let h = self.hidden;
        let bridge = self.embed_dim * h + 2 * h;
        let embedding = self.vocab * h;
        let layer = h * 3 * h + h * h + 2 * h * self.mlp + 4 * h;
        bridge + embedding + layer + 2 * h
    }

    /// Checks that every size is usable; returns [`Error::InvalidConfig`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.embed_dim == 0 || self.hidden == 0 || self.mlp == 0 || self.depth == 0 {
            return bad(format!(
                "embed_dim ({}), hidden ({}), mlp ({}) and depth ({}) must be positive",
                self.embed_dim, self.hidden, self.mlp, self.depth
            ));
        }
        let limits = [
            ("embed_dim", self.embed_dim, 1 << 16),
            ("hidden", self.hidden, 1 << 14),
            ("heads", self.heads, 256),
            ("mlp", self.mlp, 1 << 16),
            ("depth", self.depth, 64),
        ];
        if let Some((name, value, max)) = limits.into_iter().find(|(_, v, max)| v > max) {
            return bad(format!("{name} must be at most {max}, got {value}"));
        }
        if self.vocab != 256 {
            return bad(format!("vocab must be 256 (bytes), got {}", self.vocab));
        }
        if self.heads == 0
            || !self.hidden.is_multiple_of(self.heads)
            || !(self.hidden / self.heads).is_multiple_of(2)
        {
            return bad(format!(
                "hidden ({}) must split into {} heads of even size",
                self.hidden, self.heads
            ));
        }
        if self.max_len == 0 || self.max_len > 4096 {
            return bad(format!("max_len must be in 1..=4096, got {}", self.max_len));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return bad(format!(
                "rope_theta must be finite and > 1, got {}",
                self.rope_theta
            ));
        }
        if !(self.ln_eps.is_finite() && self.ln_eps > 0.0) {
            return bad(format!(
                "ln_eps must be finite and positive, got {}",
                self.ln_eps
            ));
        }
        Ok(())
    }

    /// Positions of the longest sequence: the embedding prefix and the text.
    pub fn positions(&self) -> usize {
        1 + self.max_len
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

/// The configuration as stored in model files and checkpoints. Files written before session
/// 12 also hold `max_draft` (an experiment since removed); they load when it is 0.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StoredConfig {
    embed_dim: usize,
    hidden: usize,
    heads: usize,
    mlp: usize,
    vocab: usize,
    depth: usize,
    max_len: usize,
    max_draft: usize,
    inject_every_depth: bool,
    rope_theta: f32,
    ln_eps: f32,
}

impl Default for StoredConfig {
    fn default() -> Self {
        let c = GenerativeConfig::default();
        StoredConfig {
            embed_dim: c.embed_dim,
            hidden: c.hidden,
            heads: c.heads,
            mlp: c.mlp,
            vocab: c.vocab,
            depth: c.depth,
            max_len: c.max_len,
            max_draft: 0,
            inject_every_depth: c.inject_every_depth,
            rope_theta: c.rope_theta,
            ln_eps: c.ln_eps,
        }
    }
}

impl TryFrom<StoredConfig> for GenerativeConfig {
    type Error = String;

    fn try_from(s: StoredConfig) -> std::result::Result<Self, String> {
        if s.max_draft != 0 {
            return Err(format!(
                "max_draft is {}: models that read drafts are no longer supported",
                s.max_draft
            ));
        }
        Ok(GenerativeConfig {
            embed_dim: s.embed_dim,
            hidden: s.hidden,
            heads: s.heads,
            mlp: s.mlp,
            vocab: s.vocab,
            depth: s.depth,
            max_len: s.max_len,
            inject_every_depth: s.inject_every_depth,
            rope_theta: s.rope_theta,
            ln_eps: s.ln_eps,
        })
    }
}
