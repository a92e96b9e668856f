//! Architecture hyper-parameters of the generative decoder.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Byte that ends a draft: it never occurs in text (like byte 0, which ends the text).
pub const DRAFT_END: u8 = 1;

/// Shape of the generative decoder. The default has exactly 722,944 trainable parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    /// Longest draft, in bytes, read before the text (0: the model takes no draft). A draft
    /// is a related text, such as the nearest phrase of a bank, that the model may copy from
    /// and edit; it follows the embedding prefix and ends with [`DRAFT_END`]. Drafts add
    /// positions, not parameters.
    pub max_draft: usize,
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
            max_draft: 0,
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
        if self.max_draft > 4096 {
            return bad(format!(
                "max_draft must be at most 4096, got {}",
                self.max_draft
            ));
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

    /// Positions of the longest sequence: the embedding prefix, a draft and its end byte, and
    /// the text.
    pub fn positions(&self) -> usize {
        let draft = if self.max_draft > 0 {
            self.max_draft + 1
        } else {
            0
        };
        1 + draft + self.max_len
    }

    /// The draft bytes the model reads for `text`: none when the model takes no draft;
    /// otherwise `text` cut to at most `max_draft` bytes (at the last space that fits, or at a
    /// character boundary), without bytes 0 and [`DRAFT_END`].
    pub fn draft_bytes(&self, text: &str) -> Vec<u8> {
        if self.max_draft == 0 {
            return Vec::new();
        }
        let mut end = text.len().min(self.max_draft);
        if end < text.len() {
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            if let Some(space) = text[..end].rfind(' ') {
                if text.as_bytes()[end] != b' ' && space > 0 {
                    end = space;
                }
            }
        }
        text.as_bytes()[..end]
            .iter()
            .copied()
            .filter(|&b| b != 0 && b != DRAFT_END)
            .collect()
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}
