"""sentence-transformers encodes texts; lightweight_decoder decodes the embeddings back.

    bash scripts/install-encoder.sh --python        # .venv with torch + sentence-transformers
    .venv/bin/pip install ./bindings/python
    .venv/bin/python bindings/python/examples/roundtrip.py ["a text" ...]

Prints each text beside what the bank and the hybrid decoder make of its embedding, and the
round-trip cosine (the decoded text re-embedded, against the input embedding).
"""

import os
import sys
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

import lightweight_decoder as ld

TEXTS = [
    "a domestic animal that barks",
    "the act of moving quickly on foot",
    "a large body of salt water",
    "I just want to ride on my motorcycle",
    "The meeting was moved to next Tuesday because of the storm.",
]


def encoder_dir():
    """The model folder scripts/install-encoder.sh installs ($LWDEC_ENCODER_DIR overrides)."""
    if os.environ.get("LWDEC_ENCODER_DIR"):
        return Path(os.environ["LWDEC_ENCODER_DIR"])
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "lightweight-decoder" / "all-mpnet-base-v2"


def main():
    texts = sys.argv[1:] or TEXTS
    model = SentenceTransformer(str(encoder_dir()), device="cpu")
    embeddings = model.encode(texts, normalize_embeddings=True).astype(np.float32)
    decoders = {"bank": ld.PhraseBankDecoder.default(), "hybrid": ld.HybridDecoder.default()}
    for name, decoder in decoders.items():
        decoded = decoder.batch_decode(embeddings)
        again = model.encode([d.text for d in decoded], normalize_embeddings=True)
        print(f"\n{name}")
        for text, d, e, r in zip(texts, decoded, embeddings, again):
            print(f"  {text!r}\n    -> {d.text!r} ({d.source}, confidence {d.confidence:.2f}, "
                  f"round-trip cosine {float(e @ r):.2f})")


if __name__ == "__main__":
    main()
