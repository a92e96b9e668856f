"""Decode what your own sentence-transformers model makes of your texts.

    pip install sentence-transformers        # optional: without it MpnetEncoder stands in
    python sentence_transformers_model.py ["a text" ...]

The decoders read all-mpnet-base-v2 embeddings (768-d, unit norm): load that model as you
already do and hand its output to ``batch_decode``. Without PyTorch the example embeds with
``lightweight_decoder.MpnetEncoder``, the same model in Rust (weights from
``bash scripts/install-encoder.sh``), so it runs either way. For another model, build a bank
from its embeddings of your sentences first (see own_bank.py): a bank decodes only the
embedding space it was built in.
"""

import sys

import numpy as np

import lightweight_decoder as ld

TEXTS = [
    "a domestic animal that barks",
    "the act of moving quickly on foot",
    "I just want to ride on my motorcycle",
    "The meeting was moved to next Tuesday because of the storm.",
]


def load_model():
    """A function from texts to unit-norm float32 rows: your sentence-transformers model when
    the package is installed, else MpnetEncoder."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("(sentence-transformers is not installed: embedding with ld.MpnetEncoder)",
              file=sys.stderr)
        return ld.MpnetEncoder().encode
    # your model: a name on the Hugging Face hub or a local folder; ld.MpnetEncoder.default_path()
    # is the folder scripts/install-encoder.sh fills
    model = SentenceTransformer(str(ld.MpnetEncoder.default_path()), device="cpu")
    return lambda texts: model.encode(
        texts, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)


def main():
    texts = sys.argv[1:] or TEXTS
    embed = load_model()
    embeddings = embed(texts)                              # len(texts) x 768
    decoded = ld.HybridDecoder.default().batch_decode(embeddings)
    again = embed([d.text for d in decoded])               # the round trip: re-embed the output
    for text, d, e, r in zip(texts, decoded, embeddings, again):
        print(f"{text!r}\n  -> {d.text!r} ({d.source}, confidence {d.confidence:.2f}, "
              f"round-trip cosine {float(e @ r):.3f})")


if __name__ == "__main__":
    main()
