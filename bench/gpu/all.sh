#!/bin/bash
# Issue 18's GPU figures in one device call, each part under its own time limit (570 s in all):
#   1. bench/train.py, the CNN at 28x28, fp32 and bf16, 3 rounds: the train step vs a bare loop (goal >= 0.9x)
#      and the dispatch line (what the step launches beyond the bare loop)      <= 240 s
#   2. bench/gpu/profile_train.py: where the step's time goes beside the bare loop's  <= 90 s
#   3. bench/gpu/run.sh: the bento on CUDA vs the CPU (answers, cold start, wrk load)  <= 240 s
# First, here: bash bench/gpu/kit.sh (builds .gpu/). Then, with a device lent:
#   run(command="bash bench/gpu/all.sh", carry=[".gpu"], timeout_s=590)    then give_back
# $OUT gets all.log (everything printed), and run.sh's summary.txt, results.json, servers.log.
# Rehearsal on the CPU here (each part, the CPU's sizes): LOCAL=1 OUT=/tmp/all bash bench/gpu/all.sh
set -u
: "${OUT:?}"
cd "$(dirname "$0")/../.."
exec > >(tee "$OUT/all.log") 2>&1
START=$(date +%s)
PY=python3
[ -n "${LOCAL:-}" ] && PY=$PWD/.venv-steps/bin/python
part() { echo "== $(( $(date +%s) - START )) s: $*"; }

part "1. bench/train.py (CNN 28x28, 3 rounds)"
BENCH_ROUNDS=3 BENCH_SIZES=28 BENCH_ARCHITECTURES=cnn PYTHONPATH=$PWD/images/steps/src timeout 240 $PY bench/train.py
part "1. exit $?"

part "2. bench/gpu/profile_train.py"
PYTHONPATH=$PWD/images/steps/src timeout 90 $PY bench/gpu/profile_train.py
part "2. exit $?"

part "3. bench/gpu/run.sh (the bento on CUDA)"
BUDGET_S=${BUDGET_S:-150} timeout 240 bash bench/gpu/run.sh
part "3. exit $?"
