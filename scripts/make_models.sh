#!/usr/bin/env bash
# Rebuild the shipped pick_place models from nothing: demonstrations -> MeanFlow base decoder (+ the
# K=10 flow decoder) -> LP-DS / LPS / DSRL heads -> ONNX + manifests -> evaluation recorded in the
# manifests. Datasets and run folders (data/, runs/) are not committed; models/pick_place/ is.
#
#   scripts/make_models.sh            # the whole chain (about 3.5 h on a busy 2-core CPU)
#   STAGES="eval" scripts/make_models.sh   # one or more stages: demos base export heads eval
#   LPS_SEED=0 LPS_ROUNDS=4 STAGES=heads scripts/make_models.sh   # the heads, LPS with another seed, at most 4 rounds
#
# Every stage prints its wall time; each model's manifest records its command, seed, commit,
# training wall time and evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=scripts/with-env
DATA=data/pick_place
RUNS=runs/pick_place
MODELS=models/pick_place
STAGES=${STAGES:-"demos base export heads eval"}
# 200 episodes per head: with 100, a 30-point gain near these success rates is known to about
# +-12 points (docs/training.md, seventh session).
EPISODES=${EPISODES:-200}
# The LPS head's training seed and its most rounds (heads stage, below).
LPS_SEED=${LPS_SEED:-1}
LPS_ROUNDS=${LPS_ROUNDS:-6}
[[ $LPS_ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "LPS_ROUNDS must be a positive integer, got '$LPS_ROUNDS'" >&2; exit 2; }
[[ $LPS_SEED =~ ^[0-9]+$ ]] || { echo "LPS_SEED must be a non-negative integer, got '$LPS_SEED'" >&2; exit 2; }

has() { [[ " $STAGES " == *" $1 "* ]]; }
stage() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
mkdir -p "$DATA" "$RUNS" "$MODELS/heads" "$MODELS/flow"

if has demos; then
  stage "demonstrations"
  # Two operators, as in a multi-operator dataset: careful ones, and in 15% of the episodes a careless
  # one who closes the gripper 3 cm above the grasp point (docs/training.md, sixth session: 800
  # careful episodes alone clone into an 88% base, with these careless ones into a 50-54% base).
  $RUN lps-train collect --task pick_place --episodes 800 --quality careful --set early_close_prob=0.15 \
    --set early_close=0.03 --seed 0 --out "$DATA/demos_mixed15.npz"
fi

if has base; then
  stage "base decoders"
  $RUN lps-train train-base --demos "$DATA/demos_mixed15.npz" --decoder meanflow --steps 24000 --hidden 512 --layers 3 \
    --lr 1e-3 --seed 0 --set ema_decay=0.998 --out "$RUNS/mf_mixed15.pt"
  $RUN lps-train train-base --demos "$DATA/demos_mixed15.npz" --decoder flow --steps 24000 --hidden 512 --layers 3 \
    --lr 1e-3 --seed 0 --set ema_decay=0.998 --out "$RUNS/flow_mixed15.pt"
fi

if has export; then
  stage "export decoders"
  $RUN lps-train export --checkpoint "$RUNS/mf_mixed15.pt" --out "$MODELS/decoder.onnx"
  $RUN lps-train export --checkpoint "$RUNS/flow_mixed15.pt" --out "$MODELS/flow/decoder.onnx"
fi

if has heads; then
  stage "heads"
  # LP-DS: Q^A on the 4 executed actions of each chunk, faster critics, a hold ends the training
  # episode (docs/training.md, second session). delta 4: one latent std moves a grasp by about
  # 2 mm per chunk, so the head needs a longer lever than the paper's 0.35 (fifth session).
  $RUN lps-train train-head --algo lpds --decoder "$RUNS/mf_mixed15.pt" --decoder-onnx "$MODELS/decoder.onnx" \
    --task pick_place --steps 40000 --delta 4.0 --seed 1 --terminate-on-hold --set critic_steps=4 \
    --set time_budget_s=1500 --set critic_lr=1e-3 --set latent_critic_lr=1e-3 --set tau=0.01 --set gamma=0.98 \
    --out "$RUNS/lpds.pt"
  # LPS in rounds (docs/training.md, tenth and eleventh sessions). The offline data never shows
  # what a deterministic latent actor gets wrong (stalls, drops, refused chunks), so each round's
  # head is rolled out for 200 sim episodes (training seeds 50000+, a refused chunk ending the
  # episode) and the next round trains on all data so far plus these rollouts (round 1: the
  # demonstrations + the frozen base's rollouts). lps.py is unchanged: only the data grows. Rounds
  # do not improve monotonically, so the rounds stop at the first head whose rollouts do not beat
  # the best so far, and that best head is kept; the choice never looks at evaluation seeds. On the
  # eleventh session's runs (made by hand, before this loop was written) the rollouts' success
  # ordered each seed's rounds as the 200-episode evaluation did, and the rule would have kept
  # seed 1's round 2 (the shipped head, 70.5% of 200) and seed 0's round 4 of 5 (72.5%). Ten
  # critics (the actor reads their minimum) that also see the TCP relative to the cube and the zone
  # (ninth session).
  # LPS differentiates through the decoder, so it trains on the exported decoder's own weights
  # (import-decoder). In a full chain that is the base just trained; with STAGES=heads it is the
  # committed decoder.onnx, which a retrained base does not reproduce bit for bit.
  $RUN lps-train import-decoder --onnx "$MODELS/decoder.onnx" --like "$RUNS/mf_mixed15.pt" --out "$RUNS/decoder_shipped.pt"
  $RUN lps-train collect --task pick_place --policy "$MODELS/decoder.onnx" --episodes 200 --seed 40000 \
    --terminate-on-hold --out "$DATA/rollouts_hold.npz"
  LPS_ARGS=(--algo lps --decoder "$RUNS/decoder_shipped.pt" --steps 5000 --seed "$LPS_SEED" --set hidden=256
    --set critic_layers=3 --set actor_layers=2 --set critic_steps=4 --set actor_q=min --set critics=10
    --critic-features tcp-target)
  LPS_DATA=("$DATA/demos_mixed15.npz" "$DATA/rollouts_hold.npz")
  best_rate=-1
  best_round=0
  for ((round = 1; round <= LPS_ROUNDS; round++)); do
    head="$RUNS/lps_s${LPS_SEED}_round$round"
    rollouts="$DATA/rollouts_lps_s${LPS_SEED}_round$round.npz"
    $RUN lps-train train-head "${LPS_ARGS[@]}" --demos "${LPS_DATA[@]}" --out "$head.pt"
    $RUN lps-train export --checkpoint "$head.pt" --decoder-onnx "$MODELS/decoder.onnx" --out "$head.onnx"
    $RUN lps-train collect --task pick_place --policy "$MODELS/decoder.onnx" --head "$head.onnx" \
      --episodes 200 --seed 50000 --terminate-on-hold --out "$rollouts"
    rate=$($RUN python -c 'import sys, numpy
s = numpy.load(sys.argv[1])["episode_success"]
sys.exit(f"{sys.argv[1]} holds no episodes") if len(s) == 0 else print(s.mean())' "$rollouts")
    echo "LPS round $round: its rollouts succeed in $rate (best so far: $best_rate, round $best_round)"
    awk -v a="$rate" -v b="$best_rate" 'BEGIN { exit !(a > b) }' || break
    best_rate=$rate
    best_round=$round
    LPS_DATA+=("$rollouts")
  done
  cp "$RUNS/lps_s${LPS_SEED}_round$best_round.pt" "$RUNS/lps.pt"
  $RUN lps-train train-head --algo dsrl --decoder "$RUNS/mf_mixed15.pt" --decoder-onnx "$MODELS/decoder.onnx" \
    --task pick_place --steps 20000 --seed 0 --set time_budget_s=1500 --out "$RUNS/dsrl.pt"
  for h in lpds lps dsrl; do
    $RUN lps-train export --checkpoint "$RUNS/$h.pt" --decoder-onnx "$MODELS/decoder.onnx" --out "$MODELS/heads/$h.onnx"
  done
fi

if has eval; then
  stage "evaluation"
  $RUN lps-train evaluate --decoder "$MODELS/decoder.onnx" --head none lpds lps dsrl --episodes "$EPISODES" \
    --profile nominal --record --out "$RUNS/eval_nominal.json" --png docs/img/pick_place_heads.png
fi
stage "done"
