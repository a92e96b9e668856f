"""Decode 768-d sentence embeddings (all-mpnet-base-v2) back into text, on a CPU.

The Python face of the Rust crate lightweight-decoder. Three decoders share one input
contract, a vector of 768 values (float32; float64 is rounded to float32; int8 needs a
``scale``), and the same methods: ``decode``, ``batch_decode``,
``batch_decode_with_sessions`` and ``new_session``, each returning ``Decoded`` objects
(``text``, ``confidence``, ``source``, ``candidates``)::

    import numpy as np
    import lightweight_decoder as ld

    decoder = ld.PhraseBankDecoder.default()      # FAISS over the bundled bank
    print(decoder.decode(v).text)                 # v: a 768-d NumPy vector
    for d in decoder.batch_decode(matrix):        # rows x 768
        print(d.text, d.confidence, d.source)

``GenerativeDecoder.bundled()`` writes text byte by byte with the bundled model;
``HybridDecoder.default()`` picks the better of the two per input. The GIL is released
while decoding, so threads share one decoder. Bad input raises ``ValueError`` (a wrong
dtype ``TypeError``), unreadable or corrupt files ``OSError``.

The bundled bank and model live in ``BUNDLED_DATA`` inside the package;
``$LWDEC_BANK_DIR`` and ``$LWDEC_MODEL`` override them.
"""

from pathlib import Path

from ._native import (
    CRATE_VERSION,
    Candidate,
    Decoded,
    GenerativeDecoder,
    HybridDecoder,
    PhraseBankDecoder,
    Session,
    bank_build,
    default_config,
)

#: Folder of the bundled bank (``phrase_bank/``) and model (``generative.q4.gguf``).
BUNDLED_DATA = Path(__file__).resolve().parent / "data"

__version__ = CRATE_VERSION

__all__ = [
    "BUNDLED_DATA",
    "Candidate",
    "Decoded",
    "GenerativeDecoder",
    "HybridDecoder",
    "PhraseBankDecoder",
    "Session",
    "bank_build",
    "default_config",
    "__version__",
]
