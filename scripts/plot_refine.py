#!/usr/bin/env python3
"""Plot refinement's fidelity against its budget, from the outputs of scripts/sweep_refine.sh.

Usage (matplotlib in the .venv: .venv/bin/pip install matplotlib):
  .venv/bin/python scripts/plot_refine.py --out docs/refine_budget NAME=OUTDIR [NAME=OUTDIR ...]

Each OUTDIR holds LABEL.json (lwdec eval --output) and LABEL.meaning.json (scripts/meaning.py
--json) for the labels bank, hybrid, verified and rB or rB_N (refine at budget B, e.g. r16,
r32_100). Writes OUT.json (every figure, per sample and label) and OUT.png: round-trip cosine
and independent meaning against the budget (log scale), one line per row count (hollow
markers: fewer rows than the sample's), the unrefined decoders as horizontal lines, and
seconds per input (p50) on a second axis.
"""
import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def figures(outdir):
    rows = {}
    for ev in sorted(Path(outdir).glob("*.json")):
        if ev.name.endswith(".meaning.json"):
            continue
        label = ev.stem
        me = ev.with_name(label + ".meaning.json")
        if not me.exists():
            continue
        d = json.loads(ev.read_text())["decoders"][0]
        m = next(iter(json.loads(me.read_text()).values()))
        rows[label] = {"rows": d["rows"], "token_f1": d["token_f1"], "bleu": d["bleu"],
                       "roundtrip_cosine": m["roundtrip_cosine"],
                       "independent_meaning": m["independent_meaning"],
                       "p50_s": d["latency_us"][0] / 1e6}
        for key in ("fluency", "below_reference_p5", "repetition", "bleu_interval"):
            if key in m:
                rows[label][key] = m[key]
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("samples", nargs="+", help="NAME=OUTDIR")
    args = ap.parse_args()
    report = {}
    for spec in args.samples:
        name, outdir = spec.split("=", 1)
        report[name] = figures(outdir)
    fig, axes = plt.subplots(1, len(report), figsize=(6 * len(report), 4.2), squeeze=False)
    for ax, (name, rows) in zip(axes[0], report.items()):
        # refinement points by the rows they ran on: filled for all rows, hollow for fewer
        series = {}
        for label, r in rows.items():
            if m := re.fullmatch(r"r(\d+)(?:_\d+)?", label):
                series.setdefault(r["rows"], []).append((int(m.group(1)), label))
        full = max(series, default=0)
        sec = ax.twinx()
        for n, points in sorted(series.items(), reverse=True):
            points.sort()
            xs = [b for b, _ in points]
            face = None if n == full else "none"
            for key, colour in (("roundtrip_cosine", "tab:blue"),
                                ("independent_meaning", "tab:green")):
                ax.plot(xs, [rows[l][key] for _, l in points], "o-" if n == full else "o--",
                        color=colour, mfc=face,
                        label=f"refine, {n} rows: {key.replace('_', ' ')}")
            sec.plot(xs, [rows[l]["p50_s"] for _, l in points], "s-" if n == full else "s--",
                     color="tab:red", alpha=0.6, mfc=face, label=f"refine, {n} rows: p50 s")
        for key, colour in (("roundtrip_cosine", "tab:blue"), ("independent_meaning", "tab:green")):
            for base, style in (("hybrid", "--"), ("verified", ":")):
                if base in rows:
                    ax.axhline(rows[base][key], color=colour, ls=style, lw=1,
                               label=f"{base} ({rows[base]['rows']} rows): {key.replace('_', ' ')}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("budget (encoder calls per input)")
        ax.set_ylabel("cosine")
        ax.set_title(name)
        sec.set_ylabel("seconds per input (p50)", color="tab:red")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = sec.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=100)
    Path(args.out + ".json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}.png and {args.out}.json")


if __name__ == "__main__":
    main()
