#!/usr/bin/env bash
# Before / after of the broad default bank (issue 16): the bank, the guided generator and the
# hybrid on three held-out samples, with the WordNet bank (before) and a broad bank (after).
#
#   bash scripts/bank_report.sh BROAD_BANK_DIR [OUT]   (OUT default target/bank_report)
#
# Before: the WordNet bank (phrase_bank/ as of 3500dd3, format 2, or $WORDNET_BANK), the model
# $BEFORE_MODEL (default: the bundled one) and the hybrid rule $BEFORE_CONFIG (default:
# docs/hybrid_default_config.json, the rule fitted on the WordNet bank). After: BROAD_BANK_DIR,
# the bundled model and the default rule. Samples, all held out (never banked or trained on):
# samples/ood (crate descriptions, Python docstrings), samples/ood2 (the held-out corpus
# sources perl-doc and janeaustenr), samples/corpus_validation (the corpus's validation split:
# train sources, held-out sentences). Each row: token F1, BLEU,
# round-trip cosine (all-mpnet-base-v2), independent meaning (all-MiniLM-L6-v2), p50 s, from
# scripts/sweep_refine.sh (outputs are reused: delete OUT to rerun).
set -euo pipefail
cd "$(dirname "$0")/.."
broad=${1:?usage: bank_report.sh BROAD_BANK_DIR [OUT]}
out=${2:-target/bank_report}
wordnet=${WORDNET_BANK:-phrase_bank}
before_model=${BEFORE_MODEL:-model/generative.q4.gguf}
before_config=${BEFORE_CONFIG:-docs/hybrid_default_config.json}
cargo build --release --bin lwdec
for sample in ood ood2 corpus_validation; do
  echo "### samples/$sample"
  bash scripts/sweep_refine.sh "samples/$sample" "$out/$sample" \
    "bank (WordNet)|--decoder phrase-bank --bank $wordnet" \
    "bank (broad)|--decoder phrase-bank --bank $broad" \
    "generator (WordNet bank)|--decoder generative --bank $wordnet --model $before_model" \
    "generator (broad bank)|--decoder generative --bank $broad" \
    "hybrid (WordNet)|--decoder hybrid --bank $wordnet --model $before_model --config $before_config" \
    "hybrid (broad)|--decoder hybrid --bank $broad"
done
