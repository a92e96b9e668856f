"""Decode a batch of embeddings from a .npy file: one line per row, in row order.

    python decode_file.py EMBEDDINGS.npy [--scale SCALES.npy] [--decoder bank|hybrid|generative]
                          [--limit N] [--jsonl]

EMBEDDINGS.npy holds rows x 768 all-mpnet-base-v2 embeddings: float32 (or float64), or int8
with --scale (one float32 per row: row i = q[i] * scale[i]). For example, from the repository:

    python decode_file.py samples/ood.i8.npy --scale samples/ood.scale.npy --limit 5

The file is memory-mapped and decoded in chunks, so it may be larger than memory.
"""

import argparse
import json

import numpy as np

import lightweight_decoder as ld

CHUNK = 4096  # rows per batch_decode call


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("embeddings")
    parser.add_argument("--scale", help="per-row float32 scales of int8 embeddings (.npy)")
    parser.add_argument("--decoder", choices=["bank", "hybrid", "generative"], default="bank")
    parser.add_argument("--limit", type=int, help="decode only the first N rows")
    parser.add_argument("--jsonl", action="store_true", help="JSON lines, as `lwdec decode`")
    args = parser.parse_args()

    rows = np.load(args.embeddings, mmap_mode="r")[: args.limit]
    scale = np.load(args.scale)[: args.limit] if args.scale else None
    decoder = {
        "bank": ld.PhraseBankDecoder.default,       # FAISS over the bundled bank
        "hybrid": ld.HybridDecoder.default,         # the bank's phrase or the generator's text
        "generative": ld.GenerativeDecoder.bundled,  # text written byte by byte
    }[args.decoder]()

    for start in range(0, len(rows), CHUNK):
        chunk = np.asarray(rows[start:start + CHUNK])
        part = None if scale is None else scale[start:start + CHUNK]
        for row, d in enumerate(decoder.batch_decode(chunk, scale=part), start):
            if args.jsonl:
                print(json.dumps({"row": row, **d.to_dict()}))
            else:
                print(f"{row}\t{d.confidence:.3f}\t{d.source}\t{d.text}")


if __name__ == "__main__":
    main()
