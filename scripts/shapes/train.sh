#!/usr/bin/env bash
# Trains the bundled `shapes` model from scratch on 2 CPU cores and installs it into models/shapes: the ten
# phases below are the commands that made the committed weights (17 + 13 + 45 + 15 + 11 + 35 + 47 + 83 + 35 + 80
# minutes, 6 h 21 min on 2 cores, phase 8 with a cargo build beside it; the first four, 1 h 30 min, met every
# threshold but detection's; --stop-at ends the first two where an earlier run's phases ended). --probe: training-only
# read-outs of layer 2 at the answer positions (what the question asks about, the box digit being written, the
# scene's labels), which get the binding questions (yes/no, counting) off their plateau; --probe-where adds where
# the objects a question names are (relations, extremes, "where"); every phase needs the same --aux/--probe flags.
# Needs a Python with requirements.txt (torch, transformers, ...): PYTHON=/path/to/python.
#   scripts/shapes/train.sh [WORK_DIR]      (default /tmp/shapes-train; checkpoints and the log stay there)
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
work=${1:-/tmp/shapes-train}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
train() { "$python" -m torch.distributed.run --nproc-per-node 2 scripts/shapes/train.py train --out "$work" \
            --size m --batch 8 --lr 2e-3 --vision-warmup 1200 --aux 1 --probe 0.2 --probe-layer 2 --probe-where --log-every 50 --save-minutes 8 "$@"; }
# 1. the vision tower alone on the dense targets, then everything on all tasks
train --fresh --steps 7800 --stop-at 2339
# 2. + image tokens read as answer words (--lens), + a curriculum of one-shape scenes
curriculum=(--lens 0.5 --single-p0 0.6 --single-p1 0.1 --single-from 2339 --single-span 2500)
train --steps 7800 "${curriculum[@]}" --stop-at 4206
# 3. + absolute positions in the dense targets (for boxes), more yes/no, counting and detection questions
# (the task weights: captions' weight, then yes/no's and detection's where they differ from phase 3's)
weights() { echo "{\"caption\": $1, \"count\": 1.5, \"attribute\": 1.0, \"yesno\": ${2:-2.0}, \"read\": 0.7, \"detect\": ${3:-1.5}}"; }
train --steps 8800 "${curriculum[@]}" --absolute-aux --task-weights "$(weights 0.7)"
# 4. 2,200 more steps on a longer schedule's tail (learning rate 2.8e-4 falling to 1e-4), captions weighted 3
train --steps 11000 "${curriculum[@]}" --absolute-aux --task-weights "$(weights 3.0)"
# 5-7. detection weighted up, each phase the tail of a longer schedule than the last: the learning rate rises
# again (to 1.7e-4, 4.1e-4, 4.0e-4) and falls to 1e-4, and the training-only losses return (at 0.24, 0.53, 0.52 of
# their weight) and fade out (warm restarts; 11 + 35 + 47 minutes)
train --steps 12500 "${curriculum[@]}" --absolute-aux --task-weights "$(weights 3.0 2.0 5.0)"
train --steps 17000 "${curriculum[@]}" --absolute-aux --task-weights "$(weights 3.0 3.0 6.0)"
train --steps 23000 "${curriculum[@]}" --absolute-aux --task-weights "$(weights 3.0 3.0 8.0)"
# 8. a longer restart (learning rate up to 4.3e-4; training-only losses back at 0.56), detection weighted 10. It
# starts from phase 7's model.safetensors with fresh optimizer state and training-only heads, not from ckpt.pt,
# as the run that made the committed weights had to (phase 7's ckpt.pt was not kept): --restart trains the heads
# alone for 150 steps, then ramps the model's learning rate up over 150 more
train --steps 32000 --init-weights "$work" --init-step 23000 --restart 150 "${curriculum[@]}" --absolute-aux \
      --task-weights "$(weights 3.0 3.0 10.0)"
# 9-10. two more warm restarts resumed from ckpt.pt (learning rate up to 1.7e-4, then 3.3e-4, falling to 1e-4;
# training-only losses back at 0.25, then 0.45); phase 10 took detection past 0.75
train --steps 36500 "${curriculum[@]}" --absolute-aux --task-weights "$(weights 3.0 3.0 10.0)"
train --steps 47000 "${curriculum[@]}" --absolute-aux --task-weights "$(weights 3.0 3.0 10.0)"
mkdir -p models/shapes
for f in config.json generation_config.json preprocessor_config.json tokenizer.json tokenizer_config.json \
         chat_template.jinja model.safetensors; do
  cp "$work/$f" models/shapes/
done
echo "models/shapes updated; score it through Glimpse with: python scripts/shapes/evaluate.py --scenes 500"
