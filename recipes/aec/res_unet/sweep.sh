#!/usr/bin/env bash
# The distortion/suppression trade-off: one canceller + the RES U-Net at five alphas, scored by
# aec-evaluate, drawn by clarity-se report (aec_tradeoff.png: DSML against RESL in double talk).
#
#   bash recipes/aec/res_unet/sweep.sh ROOT EXP [CANCELLER] [ALPHAS...]
#
# ROOT: AEC Challenge synthetic folder (clarity-se aec-data); EXP: output folder; CANCELLER:
# an aec.name with a recipe (default deep_adaptive); ALPHAS default 0 0.25 0.5 0.75 1.
# The canceller alone is run and scored once beside WebRTC AEC3 (EXP/<canceller>); each alpha
# goes to EXP/<canceller>_res_a<alpha> (no reference rerun); the report to EXP/report.
# Every step resumes: a rerun recomputes nothing that is finished. RES_CHECKPOINT=path uses
# another suppressor checkpoint than the shipped one (aec.res_checkpoint); RES_OPTIONS="k=v ..."
# adds options to the runs with the suppressor (e.g. aec.deep_adaptive.post_filter=false for a
# suppressor trained with res-train data.post_filter=false); AEC_OPTIONS="k=v ..." adds options to
# every run, the canceller alone included (e.g. aec.checkpoint=... for another canceller).
set -euo pipefail
ROOT=$1
EXP=$2
SYSTEM=${3:-deep_adaptive}
shift $(( $# < 3 ? $# : 3 ))
ALPHAS=${*:-0 0.25 0.5 0.75 1}
CLI=${CLARITY_SE:-clarity-se}
RECIPE=recipes/aec/$SYSTEM/config.yaml
read -r -a EXTRA <<< "${RES_OPTIONS:-}"
read -r -a ALL <<< "${AEC_OPTIONS:-}"
RES=(aec.res=unet aec.res_checkpoint="${RES_CHECKPOINT:-}" "${ALL[@]}" "${EXTRA[@]}")
$CLI aec -c "$RECIPE" path.root="$ROOT" path.exp_folder="$EXP/$SYSTEM" "${ALL[@]}"
$CLI aec-evaluate -c "$RECIPE" path.root="$ROOT" path.exp_folder="$EXP/$SYSTEM" "${ALL[@]}"
for A in $ALPHAS; do
  OUT=$EXP/${SYSTEM}_res_a$A
  $CLI aec -c "$RECIPE" path.root="$ROOT" path.exp_folder="$OUT" "${RES[@]}" aec.res_alpha="$A"
  $CLI aec-evaluate -c "$RECIPE" path.root="$ROOT" path.exp_folder="$OUT" "${RES[@]}" \
      aec.res_alpha="$A" evaluate.reference_system=""
done
$CLI report "$EXP" --out "$EXP/report"  # every EXP/*/aec_scores.csv
