"""Type stubs of the native extension (PyO3); the package re-exports every name."""

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

PathLike = Union[str, "os.PathLike[str]"]
#: A dict with the keys of the crate's ``DecoderConfig`` JSON, or the path of such a file.
Config = Union[None, Dict[str, Any], PathLike]
#: float32 (used in place, any layout), float64 (rounded to float32), or int8 with ``scale``.
Embeddings = npt.ArrayLike
Scale = Union[None, float, npt.ArrayLike]

CRATE_VERSION: str

class Candidate:
    """A phrase the decoder considered for an input."""

    @property
    def text(self) -> str:
        """The candidate text."""
    @property
    def similarity(self) -> float:
        """Cosine similarity to the input (approximate for compressed banks)."""
    @property
    def phrase_id(self) -> Optional[int]:
        """Bank phrase id, or None."""

class Decoded:
    """The text decoded from one embedding."""

    @property
    def text(self) -> str:
        """The decoded text."""
    @property
    def confidence(self) -> float:
        """Confidence in [0, 1]."""
    @property
    def low_confidence(self) -> bool:
        """True when the best match was below the similarity threshold (lenient mode)."""
    @property
    def source(self) -> str:
        """``"phrase_bank"`` or ``"generative"``."""
    @property
    def phrase_ids(self) -> Optional[List[int]]:
        """Ids of the bank phrases the text is made of; None for generated text."""
    @property
    def candidates(self) -> List[Candidate]:
        """The top candidates with their similarities, best first."""
    @property
    def roundtrip_cosine(self) -> Optional[float]:
        """Cosine of the text's re-embedding with the input when an encoder verified it."""
    def to_dict(self) -> Dict[str, Any]:
        """The result as a dict, with the keys of ``lwdec decode``'s JSON lines (less ``row``)."""

class Session:
    """The context one stream of related embeddings carries from decode to decode."""

    def __len__(self) -> int:
        """Decodes remembered (at most the decoder's context window)."""

class _Decoder:
    """Methods every decoder has (not a runtime class)."""

    @property
    def dim(self) -> int:
        """Dimension of the embeddings this decoder accepts (768 for the bundled data)."""
    def new_session(self) -> Session:
        """A fresh session for a stream of related embeddings."""
    def decode(
        self, embedding: Embeddings, session: Optional[Session] = None, scale: Scale = None
    ) -> Decoded:
        """Decodes one 1-D embedding, in ``session`` when given."""
    def batch_decode(self, embeddings: Embeddings, scale: Scale = None) -> List[Decoded]:
        """Decodes the rows of a 2-D array (rows x dim), each in its own session."""
    def batch_decode_with_sessions(
        self, embeddings: Embeddings, boundaries: Sequence[int], scale: Scale = None
    ) -> List[Decoded]:
        """Decodes the rows grouped into sessions starting at ``boundaries``."""
    def decode_text(
        self,
        texts: Sequence[str],
        encoder: Optional["MpnetEncoder"] = None,
        *,
        boundaries: Optional[Sequence[int]] = None,
    ) -> List[Decoded]:
        """Embeds ``texts`` with ``encoder`` (None: ``MpnetEncoder()``), decodes them and sets
        each result's ``roundtrip_cosine`` (the output re-embedded, against the input), as
        ``lwdec decode --text``."""

class MpnetEncoder:
    """The sentence encoder all-mpnet-base-v2 in Rust: texts in, unit-norm 768-d rows out."""

    def __init__(
        self, path: Optional[PathLike] = None, *, batch_size: int = 64, precision: str = "auto"
    ) -> None: ...
    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeds ``texts``: float32, shape (len(texts), 768), unit-norm rows in input order."""
    @property
    def dim(self) -> int:
        """Length of every embedding (768)."""
    @property
    def path(self) -> Path:
        """The model folder the weights were loaded from."""
    @property
    def batch_size(self) -> int:
        """Texts per forward pass."""
    @property
    def precision(self) -> str:
        """The precision the encoder runs in: ``"bf16"`` or ``"f32"`` (or ``"int8"``)."""
    @property
    def max_seq_length(self) -> int:
        """The truncation length in tokens, special tokens included (384)."""
    @staticmethod
    def default_path() -> Path:
        """The folder ``MpnetEncoder()`` loads: ``$LWDEC_ENCODER_DIR`` or the default location."""

class PhraseBankDecoder(_Decoder):
    """FAISS search over a bank of phrases with known embeddings."""

    def __init__(
        self,
        bank_dir: Optional[PathLike] = None,
        config: Config = None,
        *,
        verify: bool = False,
        refine: bool = False,
        encoder: Optional[MpnetEncoder] = None,
    ) -> None: ...
    @staticmethod
    def default(
        config: Config = None,
        *,
        verify: bool = False,
        refine: bool = False,
        encoder: Optional[MpnetEncoder] = None,
    ) -> "PhraseBankDecoder":
        """The bundled bank (or ``$LWDEC_BANK_DIR``) with ``config``."""
    def statistics(self) -> Dict[str, Any]:
        """Counters: decodes, errors, cache hits, latency percentiles (microseconds)."""
    def health(self) -> Dict[str, Any]:
        """``{"status": "healthy" | "degraded" | "unhealthy", "reasons": [...]}``."""
    def manifest(self) -> Dict[str, Any]:
        """The bank's manifest (count, dimension, encoder, index kind, checksums)."""

class GenerativeDecoder(_Decoder):
    """A byte-level transformer guided by the bank's nearest phrases."""

    def __init__(
        self,
        model_path: Optional[PathLike] = None,
        bank_dir: Optional[PathLike] = None,
        config: Config = None,
        *,
        beam: int = 1,
        mbr: int = 0,
        mbr_temperature: float = 0.6,
        guide: bool = True,
        verify: bool = False,
        refine: bool = False,
        encoder: Optional[MpnetEncoder] = None,
    ) -> None: ...
    @staticmethod
    def bundled(
        config: Config = None,
        *,
        beam: int = 1,
        mbr: int = 0,
        mbr_temperature: float = 0.6,
        guide: bool = True,
        verify: bool = False,
        refine: bool = False,
        encoder: Optional[MpnetEncoder] = None,
    ) -> "GenerativeDecoder":
        """The bundled model (or ``$LWDEC_MODEL``), guided by the bundled bank."""
    def statistics(self) -> Dict[str, Any]:
        """Counters: decodes, errors, latency percentiles (microseconds)."""

class HybridDecoder(_Decoder):
    """Per input the bank's phrase or the generator's text."""

    def __init__(
        self,
        bank_dir: Optional[PathLike] = None,
        model_path: Optional[PathLike] = None,
        config: Config = None,
        *,
        beam: int = 1,
        mbr: int = 0,
        mbr_temperature: float = 0.6,
        guide: bool = True,
        verify: bool = False,
        refine: bool = False,
        encoder: Optional[MpnetEncoder] = None,
    ) -> None: ...
    @staticmethod
    def default(
        config: Config = None,
        *,
        beam: int = 1,
        mbr: int = 0,
        mbr_temperature: float = 0.6,
        guide: bool = True,
        verify: bool = False,
        refine: bool = False,
        encoder: Optional[MpnetEncoder] = None,
    ) -> "HybridDecoder":
        """The bundled bank and model with ``config`` (the shipped rule by default)."""
    def statistics(self) -> Dict[str, Any]:
        """``{"bank": {...}, "generator": {...}}``."""
    def health(self) -> Dict[str, Any]:
        """The bank's health: ``{"status": ..., "reasons": [...]}``."""

def bank_build(
    phrases: Union[Sequence[str], PathLike],
    embeddings: Union[Embeddings, PathLike],
    out: PathLike,
    *,
    index: str = "auto",
    scale: Union[Scale, PathLike] = None,
    nprobe: int = 16,
    train_size: int = 65536,
    seed: int = 2026,
) -> Dict[str, Any]:
    """Builds a phrase bank and saves it to ``out`` atomically; returns its manifest."""

def default_config() -> Dict[str, Any]:
    """The default settings (the keys a ``config`` dict may hold)."""

__all__ = [
    "CRATE_VERSION",
    "Candidate",
    "Decoded",
    "GenerativeDecoder",
    "HybridDecoder",
    "MpnetEncoder",
    "PhraseBankDecoder",
    "Session",
    "bank_build",
    "default_config",
]

