#!/usr/bin/env bash
# Rebuild the shipped pick_place models from nothing: demonstrations -> MeanFlow base decoder (+ the
# K=10 flow decoder) -> LP-DS / LPS / DSRL heads -> ONNX + manifests -> evaluation recorded in the
# manifests. Datasets and run folders (data/, runs/) are not committed; models/pick_place/ is.
#
#   scripts/make_models.sh                       # the whole chain (about 4 h on a 2-core CPU)
#   STAGES="eval" scripts/make_models.sh         # one or more stages: demos base export heads eval
#   LPS_SEED=0 LPS_ROUNDS=4 STAGES=heads scripts/make_models.sh   # LPS rounds: another seed, at most 4 rounds
#
# Every setting is a named preset of `lps-train` (lps_train/configs.py; `lps-train <command> --help`
# lists them); each run writes its settings next to its outputs (<out>.config.json), and each
# model's manifest records its command, seed, commit, training wall time and evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=scripts/with-env
RUNS=runs/pick_place
MODELS=models/pick_place
STAGES=${STAGES:-"demos base export heads eval"}
# 200 episodes per head: with 100, a 30-point gain near these success rates is known to about
# +-12 points (docs/training.md, "Evaluating a head").
EPISODES=${EPISODES:-200}
# The rollout-augmented LPS head's training seed and its most rounds (heads stage, below).
LPS_SEED=${LPS_SEED:-1}
LPS_ROUNDS=${LPS_ROUNDS:-6}
[[ $LPS_ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "LPS_ROUNDS must be a positive integer, got '$LPS_ROUNDS'" >&2; exit 2; }
[[ $LPS_SEED =~ ^[0-9]+$ ]] || { echo "LPS_SEED must be a non-negative integer, got '$LPS_SEED'" >&2; exit 2; }

has() { [[ " $STAGES " == *" $1 "* ]]; }
stage() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
mkdir -p "$RUNS" "$MODELS/heads" "$MODELS/flow"

if has demos; then
  stage "demonstrations"
  # 800 episodes of two operators: careful ones, and in 15% of the episodes a careless one who
  # closes the gripper 3 cm above the grasp point (docs/training.md, "The base decoder").
  $RUN lps-train collect --preset shipped-demos
fi

if has base; then
  stage "base decoders"
  $RUN lps-train train-base --preset shipped-meanflow
  $RUN lps-train train-base --preset shipped-flow
fi

if has export; then
  stage "export decoders"
  $RUN lps-train export --checkpoint "$RUNS/mf_mixed15.pt" --out "$MODELS/decoder.onnx"
  $RUN lps-train export --checkpoint "$RUNS/flow_mixed15.pt" --out "$MODELS/flow/decoder.onnx"
fi

if has heads; then
  stage "heads"
  # LP-DS: delta 4, Q^A on the 4 executed actions of each chunk, faster critics, a hold ends the
  # training episode (docs/training.md, "LP-DS").
  $RUN lps-train train-head --preset shipped-lpds
  # LPS differentiates through the decoder, so it trains on the exported decoder's own weights
  # (import-decoder): in a full chain the base just trained, with STAGES=heads the committed
  # decoder.onnx, which a retrained base does not reproduce bit for bit.
  $RUN lps-train import-decoder --onnx "$MODELS/decoder.onnx" --like "$RUNS/mf_mixed15.pt" --out "$RUNS/decoder_shipped.pt"
  # The LPS head (lps.onnx), strictly offline: the demonstrations and two datasets of scripted
  # operators who sometimes fail, no environment step of a learned policy (docs/training.md, "LPS").
  $RUN lps-train collect --preset play-careless50
  $RUN lps-train collect --preset play-sloppy
  $RUN lps-train train-head --preset offline-lps
  # The rollout-augmented LPS head (lps_rounds.onnx): the demonstrations and 200 rollouts of the
  # frozen base, then per round 200 rollouts of that round's head; the rounds stop at the first
  # head whose rollouts do not beat the best so far, and the best is kept.
  $RUN lps-train collect --preset shipped-base-rollouts
  $RUN lps-train lps-rounds --head.lps.seed "$LPS_SEED" --max-rounds "$LPS_ROUNDS" --out "$RUNS/lps_rounds.pt"
  # LP-DS at the paper's settings and DSRL at its authors', both through the exported decoder's own
  # weights with the shipped LP-DS run's env-step budget (docs/training.md, "LP-DS", "DSRL").
  $RUN lps-train train-head --preset paper-lpds
  $RUN lps-train train-head --preset shipped-dsrl
  for h in lpds lpds_paper lps lps_rounds dsrl; do
    $RUN lps-train export --checkpoint "$RUNS/$h.pt" --decoder-onnx "$MODELS/decoder.onnx" --out "$MODELS/heads/$h.onnx"
  done
fi

if has eval; then
  stage "evaluation"
  # Every head in the heads folder: those the heads stage exported, or those shipped.
  heads=$(cd "$MODELS/heads" && ls -- *.onnx | sed 's/\.onnx$//')
  # shellcheck disable=SC2086 # one word per head
  $RUN lps-train evaluate --decoder "$MODELS/decoder.onnx" --head none $heads --episodes "$EPISODES" \
    --profile nominal --record --out "$RUNS/eval_nominal.json"
  # shellcheck disable=SC2086
  $RUN lps-train evaluate --decoder "$MODELS/decoder.onnx" --head none $heads --episodes "$EPISODES" \
    --profile sim2real --out "$RUNS/eval_sim2real.json"
fi
stage "done"
