#!/usr/bin/env python3
"""Writes the encoder parity fixture: samples/encoder_parity.jsonl (one {"text", "ids"} object a
line; ids are the token ids sentence-transformers feeds the model, after truncation) and
samples/encoder_parity.f32.npy (float32 [n, 768], sentence-transformers all-mpnet-base-v2
embeddings with normalize_embeddings=True, row i for line i).

Texts: the first 100 lines of samples/ood.txt, 90 lines spread over samples/validation.txt, and
edge cases (empty, whitespace only, one word, accents and other scripts, and texts longer than
the 384-token limit, one of them about 90 KB).

Usage: HF_HUB_OFFLINE=1 .venv/bin/python scripts/make_encoder_fixture.py [MODEL_DIR]
(MODEL_DIR defaults to .venv/all-mpnet-base-v2.)
"""
import json
import os
import sys

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lines(name):
    with open(os.path.join(ROOT, "samples", name), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".venv", "all-mpnet-base-v2")
    ood = lines("ood.txt")
    val = lines("validation.txt")
    wordnet = lines("wordnet_sample.txt")
    texts = ood[:100] + val[:: len(val) // 90][:90]
    texts += [
        "",
        "   ",
        "bank",
        "Crème brûlée à la française: naïve café owners in Zürich, São Paulo and Kraków.",
        "Ελληνικά, русский, 日本語のテキスト, emoji 🙂 and a tab\there.",
        "UPPER case, MiXeD case, numbers 3.14159 and punctuation!?... (ok) [yes] {no}",
        " ".join(val[100:160]),  # about 600 tokens
        "; ".join(ood[100:140]),  # about 700 tokens
        " ".join(wordnet),  # about 90 KB, 20k tokens
    ]
    torch.set_num_threads(2)
    model = SentenceTransformer(model_dir, device="cpu")
    assert model.max_seq_length == 384, model.max_seq_length
    emb = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    ids = model.tokenize(texts)["input_ids"]
    mask = model.tokenize(texts)["attention_mask"]
    out = os.path.join(ROOT, "samples", "encoder_parity")
    with open(out + ".jsonl", "w", encoding="utf-8") as f:
        for t, row, m in zip(texts, ids.tolist(), mask.tolist()):
            f.write(json.dumps({"text": t, "ids": row[: sum(m)]}, ensure_ascii=False) + "\n")
    np.save(out + ".f32.npy", emb)
    long = sum(1 for m in mask.tolist() if sum(m) == 384)
    print(f"{len(texts)} texts ({long} truncated at 384 tokens) -> {out}.jsonl, {out}.f32.npy {emb.shape}")


if __name__ == "__main__":
    main()
