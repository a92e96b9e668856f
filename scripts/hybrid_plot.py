#!/usr/bin/env python3
"""Bar chart of docs/hybrid_report.json (written by scripts/hybrid_report.sh): token F1 of the
bank, the generator and the hybrid on each report set.
Usage: python scripts/hybrid_plot.py REPORT.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    report = json.load(open(sys.argv[1]))
    sets = report["report_sets"]
    names = ["bank_f1", "generator_f1", "hybrid_f1"]
    labels = ["phrase bank", "generator", "hybrid"]
    fig, ax = plt.subplots(figsize=(max(8, 2.7 * len(sets)), 4))
    width = 0.26
    for i, (key, label) in enumerate(zip(names, labels)):
        xs = [j + (i - 1) * width for j in range(len(sets))]
        ys = [s[key] for s in sets]
        bars = ax.bar(xs, ys, width, label=label)
        for b, y in zip(bars, ys):
            ax.text(b.get_x() + b.get_width() / 2, y + 0.01, f"{y:.3f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(sets)))
    ax.set_xticklabels([f"{s['set']}\n({s['rows']} rows)" for s in sets])
    ax.set_ylabel("token F1 (held-out half)")
    ax.set_ylim(0, 1.1)
    ax.legend(loc="upper left")
    rule = report["calibration"]["rule"]
    ax.set_title(f"hybrid rule: bank_similarity {rule['bank_similarity']:.3f}, "
                 f"rerank_weight {rule['rerank_weight']:.3g}, top {rule['rerank_top_k']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=100)
    print(f"wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
