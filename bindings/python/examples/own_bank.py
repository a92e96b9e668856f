"""Build a phrase bank from your own sentences and decode against it.

    python own_bank.py [SENTENCES.txt] [--out my_bank]

SENTENCES.txt has one sentence per line (default: a few built-in ones). They are embedded with
``MpnetEncoder`` (weights from ``bash scripts/install-encoder.sh``; any all-mpnet-base-v2
embeddings will do, e.g. sentence-transformers' ``model.encode(sentences,
normalize_embeddings=True)``), saved as a bank with ``bank_build``, and paraphrases of them are
decoded against it: each comes back as the bank's closest sentence.
"""

import argparse
import tempfile
from pathlib import Path

import lightweight_decoder as ld

SENTENCES = [
    "The invoice is due at the end of the month.",
    "Please restart the server before the deployment.",
    "Our office is closed on public holidays.",
    "The package was delivered to the wrong address.",
    "Refunds are processed within five business days.",
    "The password must be at least twelve characters long.",
    "Lunch will be served in the main hall at noon.",
    "The train to Berlin leaves from platform nine.",
]
QUERIES = [
    "When do I have to pay the bill?",
    "My parcel went to another house.",
    "How long does it take to get my money back?",
    "Which platform for the Berlin train?",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sentences", nargs="?", help="a UTF-8 file, one sentence per line")
    parser.add_argument("--out", help="bank folder to write (default: a temporary folder)")
    args = parser.parse_args()
    sentences = (Path(args.sentences).read_text(encoding="utf-8").splitlines()
                 if args.sentences else SENTENCES)

    encoder = ld.MpnetEncoder()
    embeddings = encoder.encode(sentences)                 # len(sentences) x 768, float32
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "my_bank")
        manifest = ld.bank_build(sentences, embeddings, out, index="Flat")  # exact search
        print(f"built {out}: {manifest['count']} phrases, index {manifest['index_spec']}")

        # whole sentences, not pieces of them: the greedy method returns the nearest phrase
        decoder = ld.PhraseBankDecoder(out, config={"method": "greedy"})
        for query, d in zip(QUERIES, decoder.decode_text(QUERIES, encoder)):
            print(f"{query!r}\n  -> {d.text!r} (similarity {d.candidates[0].similarity:.2f}, "
                  f"round-trip cosine {d.roundtrip_cosine:.2f})")


if __name__ == "__main__":
    main()
