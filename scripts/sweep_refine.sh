#!/usr/bin/env bash
# Fidelity of decoders on one sample, a markdown row per configuration: token F1, BLEU,
# round-trip cosine (all-mpnet-base-v2), independent meaning (all-MiniLM-L6-v2), p50 seconds.
#
#   bash scripts/sweep_refine.sh PREFIX OUTDIR "LABEL|lwdec eval flags" ["LABEL|flags" ...]
#
# PREFIX names PREFIX.i8.npy, PREFIX.scale.npy and PREFIX.txt (e.g. samples/ood); each
# configuration's decoded texts and reports go to OUTDIR/LABEL.{jsonl,json,meaning.json} and
# are reused when present (delete them to rerun). Example, the refinement budgets:
#   bash scripts/sweep_refine.sh samples/ood target/sweep/ood \
#     "hybrid|--decoder hybrid" "refine16|--decoder hybrid --verify --refine --budget 16"
# With JUDGE=path/judge.lm (scripts/build_fluency_judge.sh) it adds fluency, the share below
# the references' 5th percentile, word repetition and BLEU's bootstrap 95% interval.
# LWDEC=path runs another lwdec binary (e.g. a baseline build); LWDEC_TOOL=path is the build
# that judges (lwdec lm judge), default target/release/lwdec.
# Needs target/release/lwdec and the .venv of scripts/install-encoder.sh --python.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$1 out=$2
shift 2
mkdir -p "$out"
S=(--input "$prefix.i8.npy" --scale "$prefix.scale.npy" --reference "$prefix.txt")
lwdec=${LWDEC:-target/release/lwdec}
judge=()
[[ -n ${JUDGE:-} ]] && judge=(--judge "$JUDGE")
echo "| config | rows | token F1 | BLEU [95%] | round-trip | meaning | fluency | <p5 | repeat | p50 s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for spec in "$@"; do
  label=${spec%%|*} flags=${spec#*|}
  if [[ ! -s $out/$label.json ]]; then
    # shellcheck disable=SC2086  # flags are words
    "$lwdec" eval "${S[@]}" $flags --decoded "$out/$label.jsonl.tmp" \
      --output "$out/$label.json.tmp" >/dev/null
    mv "$out/$label.jsonl.tmp" "$out/$label.jsonl"
    mv "$out/$label.json.tmp" "$out/$label.json"
    rm -f "$out/$label.meaning.json"
  fi
  if [[ ! -s $out/$label.meaning.json ]]; then
    limit=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['decoders'][0]['rows'])" "$out/$label.json")
    .venv/bin/python scripts/meaning.py "${S[@]}" --limit "$limit" "${judge[@]}" --json "$out/$label.jsonl" \
      > "$out/$label.meaning.json.tmp" 2>/dev/null
    mv "$out/$label.meaning.json.tmp" "$out/$label.meaning.json"
  fi
  python3 - "$label" "$out/$label.json" "$out/$label.meaning.json" <<'PY'
import json, sys
label, ev, me = sys.argv[1:]
d = json.load(open(ev))["decoders"][0]
m = json.load(open(me))
m = m[0] if isinstance(m, list) else next(iter(m.values())) if "rows" not in m else m
bleu = f"{d['bleu']:.2f}"
if "bleu_interval" in m:
    lo, hi = m["bleu_interval"][1:]
    bleu += f" [{lo:.2f}, {hi:.2f}]"
flu = (f"{m['fluency']:.3f} | {100 * m['below_reference_p5']:.0f}% | {100 * m['repetition']:.0f}%"
       if "fluency" in m else "- | - | -")
print(f"| {label} | {d['rows']} | {d['token_f1']:.3f} | {bleu} | "
      f"{m['roundtrip_cosine']:.3f} | {m['independent_meaning']:.3f} | {flu} | {d['latency_us'][0] / 1e6:.3f} |")
PY
done
