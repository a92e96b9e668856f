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

Texts go in through ``MpnetEncoder`` (all-mpnet-base-v2 in Rust, no PyTorch; its weights
are installed once by ``bash scripts/install-encoder.sh``, not shipped in the package)::

    encoder = ld.MpnetEncoder()                    # where `lwdec` finds it, or a folder path
    vectors = encoder.encode(["a text", ...])      # float32, shape (n, 768)
    for d in decoder.decode_text(["a text"], encoder):
        print(d.text, d.roundtrip_cosine)          # as `lwdec decode --text` prints them

``GenerativeDecoder.bundled()`` writes text byte by byte with the bundled model;
``HybridDecoder.default()`` picks the better of the two per input. The GIL is released
while decoding, so threads share one decoder. Bad input raises ``ValueError`` (a wrong
dtype ``TypeError``), unreadable or corrupt files ``OSError``.

The bundled bank and model live in ``BUNDLED_DATA`` inside the package;
``$LWDEC_BANK_DIR`` and ``$LWDEC_MODEL`` override them.
"""

import platform
from pathlib import Path


def _check_cpu():
    """The extension's FAISS is compiled for x86-64 with AVX2, FMA, F16C and POPCNT (Intel
    Haswell, AMD Excavator and later): on an older CPU it would die of an illegal instruction
    at the first search, so the import says so instead."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next(line for line in f if line.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration, IndexError):
        return
    missing = [flag for flag in ("avx2", "fma", "f16c", "popcnt") if flag not in flags]
    if missing:
        raise ImportError(
            "lightweight_decoder's prebuilt extension needs an x86-64 CPU with AVX2, FMA, F16C "
            f"and POPCNT; this one lacks {', '.join(missing)}. Build the package from source "
            "with CXXFLAGS_x86_64_unknown_linux_gnu='' (see .cargo/config.toml)"
        )


_check_cpu()

from ._native import (  # noqa: E402  (after the CPU check)
    CRATE_VERSION,
    Candidate,
    Decoded,
    GenerativeDecoder,
    HybridDecoder,
    MpnetEncoder,
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
    "MpnetEncoder",
    "PhraseBankDecoder",
    "Session",
    "bank_build",
    "default_config",
    "__version__",
]
