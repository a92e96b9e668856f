"""Checks `lwdec lm score` against KenLM (PyPI `kenlm`, the field's reference query code)
reading the ARPA export of the same model: every sentence's total log10 probability must
agree within 1e-3.

    python scripts/kenlm_parity.py MODEL.lm MODEL.arpa SENTENCES.txt [--lwdec target/release/lwdec]

Needs `pip install kenlm` (it compiles KenLM's query code; cmake is not needed).
"""
import argparse
import json
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("arpa")
    ap.add_argument("sentences")
    ap.add_argument("--lwdec", default="target/release/lwdec")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args()
    import kenlm

    reference = kenlm.Model(args.arpa)
    out = subprocess.run([args.lwdec, "lm", "score", "--model", args.model, args.sentences],
                         check=True, capture_output=True, text=True).stdout
    worst = 0.0
    rows = 0
    for line in out.splitlines():
        r = json.loads(line)
        theirs = reference.score(r["tokens_text"], bos=True, eos=True)
        worst = max(worst, abs(theirs - r["log10_prob"]))
        rows += 1
    print(json.dumps({"sentences": rows, "max_abs_difference": worst, "order": reference.order}))
    if rows == 0 or worst > args.tolerance:
        sys.exit(f"kenlm parity failed: max difference {worst} over {rows} sentences")


if __name__ == "__main__":
    main()
