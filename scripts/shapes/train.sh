#!/usr/bin/env bash
# Trains the bundled `shapes` model from scratch on 2 CPU cores and installs it into models/shapes: the two phases
# below are the commands that made the committed weights (30 + 82 minutes, 1 h 53 min on 2 cores with nothing
# else running), one 14,000-step learning-rate schedule that the second phase resumes. Every phase needs the same
# --aux/--probe flags:
# --aux, a training-only dense head on the vision tower's output (each patch's shape, colour, word and box, in
# --aux-digits as the box's decimal digits); --probe, training-only read-outs of layer 2 at the answer positions
# (what the question asks about, the box digit being written in --probe-digits, the scene's labels), which get
# the binding questions (yes/no, counting) off their plateau; --probe-where adds where the objects a question
# names are (relations, extremes, "where").
# Needs a Python with requirements.txt (torch, transformers, ...): PYTHON=/path/to/python.
#   scripts/shapes/train.sh [WORK_DIR]      (default /tmp/shapes-train; checkpoints and the log stay there)
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
work=${1:-/tmp/shapes-train}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
train() { "$python" -m torch.distributed.run --nproc-per-node 2 scripts/shapes/train.py train --out "$work" \
            --size m --batch 8 --lr 2e-3 --vision-warmup 1200 --aux 1 --probe 0.2 --probe-layer 2 --probe-where \
            --aux-digits --probe-digits --log-every 50 --save-minutes 8 --steps 14000 "$@"; }
# from step 1,200: image tokens read as answer words (--lens) and a curriculum of one-shape scenes (60% of
# scenes, falling to 10% by step 3,700)
curriculum=(--lens 0.5 --single-p0 0.6 --single-p1 0.1 --single-from 1200 --single-span 2500)
# 1. the vision tower alone on the dense targets for 1,200 steps, then everything on all tasks
train --fresh "${curriculum[@]}" --stop-at 4206
# 2. + absolute positions in the dense targets (for boxes), and the questions weighted towards detection,
# captions and yes/no
# (--compile: the blocks under torch.compile, about 3 minutes to warm up and then 12% off a step)
train "${curriculum[@]}" --absolute-aux --compile \
      --task-weights '{"caption": 4.0, "count": 1.5, "attribute": 1.0, "yesno": 3.5, "read": 0.7, "detect": 8.0}'
mkdir -p models/shapes
for f in config.json generation_config.json preprocessor_config.json tokenizer.json tokenizer_config.json \
         chat_template.jinja model.safetensors; do
  cp "$work/$f" models/shapes/
done
echo "models/shapes updated; score it through Glimpse with: python scripts/shapes/evaluate.py --scenes 500"
