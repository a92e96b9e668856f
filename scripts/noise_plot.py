#!/usr/bin/env python3
"""Quality against cosine noise level, per decoder: runs `lwdec eval` at several noise levels and
plots token F1 and exact match (PNG) and writes the figures as JSON.

Setup once: bash scripts/install-encoder.sh --python && .venv/bin/pip install matplotlib
Usage (from the repository root, after `cargo build --release`):
  .venv/bin/python scripts/noise_plot.py --input samples/wordnet_sample.i8.npy \
      --scale samples/wordnet_sample.scale.npy --reference samples/wordnet_sample.txt \
      --decoder phrase-bank --out docs/noise_wordnet_sample [-- EXTRA lwdec eval ARGS]
Writes OUT.json and OUT.png.
"""
import argparse
import json
import subprocess
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COSINES = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.25]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--scale")
    ap.add_argument("--reference", required=True)
    ap.add_argument("--decoder", default="phrase-bank")
    ap.add_argument("--out", required=True)
    ap.add_argument("--lwdec", default="target/release/lwdec")
    ap.add_argument("extra", nargs="*", help="more `lwdec eval` arguments (after --)")
    args = ap.parse_args()
    results = {}
    for cos in COSINES:
        with tempfile.NamedTemporaryFile(suffix=".json") as report:
            cmd = [args.lwdec, "eval", "--input", args.input, "--reference", args.reference,
                   "--decoder", args.decoder, "--noise-cosine", str(cos),
                   "--output", report.name, *args.extra]
            if args.scale:
                cmd += ["--scale", args.scale]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            for d in json.load(open(report.name))["decoders"]:
                results.setdefault(d["decoder"], []).append(
                    {"cosine": cos, "token_f1": d["token_f1"], "exact_match": d["exact_match"],
                     "bleu": d["bleu"], "chrf": d["chrf"]})
        print(f"cosine {cos}: done", flush=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"input": args.input, "results": results}, f, indent=2)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in results.items():
        xs = [r["cosine"] for r in rows]
        axes[0].plot(xs, [r["token_f1"] for r in rows], marker="o", label=name)
        axes[1].plot(xs, [100 * r["exact_match"] for r in rows], marker="o", label=name)
    for ax, title in zip(axes, ["token F1", "exact match (%)"]):
        ax.set_xlabel("cosine between input and clean embedding")
        ax.set_title(title)
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{args.input}: quality against noise")
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=100)
    print(f"wrote {args.out}.png and {args.out}.json")


if __name__ == "__main__":
    main()
