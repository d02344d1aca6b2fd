#!/usr/bin/env bash
# The "any body, any motion" evaluation (docs/benchmarks/refine.md): lower body hidden, 150-frame clips, on
#   - the default validation split: the 24 held-out takes of earlier sessions (first clip of each), and
#   - the unseen-subject split: 24 takes of CMU subjects 05 (dance), 06 (basketball), 08 (walks) and
#     14 (stairs, jumps, sitting, ladder, everyday), never trained on,
# each on every body of BODIES. Usage: bash scripts/eval_bodies.sh SPLIT PRESET OUT [BODIES] [METHODS]
#   SPLIT: val | unseen; models from DREAMOR_MODELS_DIR (default models/).
set -euo pipefail
cd "$(dirname "$0")/.."
SPLIT=$1; PRESET=$2; OUT=$3; BODIES=${4:-native,smpl,x0.85,x1.2}; METHODS=${5:-input,infill,dreamor}
M=../shared/data/mocap
case "$SPLIT" in
  val) FILES="$M/extra/cmu_05_04.bvh.gz $M/extra/cmu_05_14.bvh.gz $M/extra/cmu_06_05.bvh.gz $M/extra/cmu_10_01.bvh.gz
       $M/extra/cmu_13_10.bvh.gz $M/extra/cmu_13_31.bvh.gz $M/train/dataset-1_bow_old_001.bvh.gz
       $M/train/dataset-1_bye_old_001.bvh.gz $M/train/dataset-1_byebye_old_001.bvh.gz $M/train/dataset-1_dash_old_001.bvh.gz
       $M/train/dataset-1_guide_old_001.bvh.gz $M/train/dataset-1_run_old_001.bvh.gz
       $M/train/dataset-1_walk-left_old_001.bvh.gz $M/train/dataset-1_walk-right_old_001.bvh.gz
       $M/train/dataset-2_raise-up-both-hands_active_101.bvh.gz $M/train/dataset-2_raise-up-left-hand_active_103.bvh.gz
       $M/train/dataset-2_raise-up-left-hand_youthful_061.bvh.gz $M/train/dataset-2_raise-up-right-hand_normal_079.bvh.gz
       $M/train/dataset-2_run_elderly_024.bvh.gz $M/train/dataset-2_walk-turn-left_elderly_017.bvh.gz
       $M/train/dataset-2_walk-turn-right_elderly_007.bvh.gz $M/train/dataset-2_walk-turn-right_normal_034.bvh.gz
       $M/train/dataset-2_wave-both-hands_elderly_003.bvh.gz $M/train/dataset-2_wave-left-hand_elderly_013.bvh.gz" ;;
  unseen) FILES=""
       for t in 05_02 05_05 05_08 05_11 05_16 06_03 06_06 06_09 06_12 14_04 14_07 14_08 14_12 14_21 14_23 14_27 14_30 14_33; do
         FILES="$FILES $M/extra/cmu_$t.bvh.gz"; done
       for t in 05_01 06_01 08_01 08_04 08_08 08_11; do FILES="$FILES $M/extra2/cmu_$t.bvh.gz"; done ;;
  *) echo "usage: bash scripts/eval_bodies.sh val|unseen PRESET OUT [BODIES] [METHODS]" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
exec .venv/bin/dreamor eval $FILES --protocol lower_body --methods "$METHODS" --preset "$PRESET" --clip-frames 150 \
  --clips-per-file 1 --bodies "$BODIES" --no-plots --quiet --out "$OUT"
