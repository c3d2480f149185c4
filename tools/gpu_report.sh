#!/usr/bin/env bash
# The GPU report: the one prepared script for a lent GPU machine (docs/methods.md, "GPU engine"; README, "On a
# GPU"), run from the project root after the embedded model is unpacked there. Every step has its own time limit,
# so a slow step costs only its own slot; every result lands in $OUT (8 files, the most that come back):
#   gpu.log              every step's output, and at its end the summary (tools/gpu_summary.py)
#   bench-bf16.json      ar, hf, eagle, rrs, spechub, bpd, pld, speed at bfloat16 (held-out prompts)
#   bench-multipart.json ar, sot, sgd on multi-part prompts, bfloat16
#   bench-f32.json       the lossless methods in float32: every answer must be ar's (identical_to_ar)
#   bench-compiled.json  ar with its step compiled by torch.compile instead of the hand-captured graph
#   bench-matched.json   every step at least 16 tokens wide (AR on the verification's kernels), bfloat16
#   profile.json         host and device time per step of ar and eagle, and their costliest operators
#   drift.json           where bfloat16 answers part from ar's, and why (tools/bf16_drift.py)
# STEPS picks steps (default all, in this order); a short baseline is STEPS="tests bf16".
# A dry run on a CPU: DEV=cpu NTOK=4 LIMIT=1 OUT=/tmp/dry bash tools/gpu_report.sh (tests/test_gpu_report.py).
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUTD=${OUT:-/tmp/gpu-report}; DEV=${DEV:-cuda}; NTOK=${NTOK:-256}; LIMIT=${LIMIT:-6}; PY=${PY:-python3}
STEPS=${STEPS:-"tests bf16 multipart float32 compiled matched profile drift"}
mkdir -p "$OUTD"; log=$OUTD/gpu.log; : > "$log"
want() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
step() { local name=$1 lim=$2; shift 2; want "$name" || return 0
  echo "== $name (limit ${lim}s) $(date +%T)" | tee -a "$log"; local t0=$SECONDS
  timeout "$lim" "$@" >> "$log" 2>&1; echo "== $name rc=$? in $((SECONDS - t0))s" | tee -a "$log"; }
B="$PY -m core.bench --device $DEV --max-new-tokens $NTOK --split held-out --limit $LIMIT"
LOSSLESS=ar,eagle,rrs,spechub,bpd,pld,speed

step tests 110 $PY -m pytest tests/test_gpu.py -q -s -p no:cacheprovider
step bf16 150 $B --dtype bfloat16 --methods ar,hf,eagle,rrs,spechub,bpd,pld,speed --json "$OUTD/bench-bf16.json"
step multipart 70 $PY -m core.bench --device "$DEV" --dtype bfloat16 --max-new-tokens "$NTOK" --category multipart \
  --limit "$LIMIT" --methods ar,sot,sgd --json "$OUTD/bench-multipart.json"
step float32 50 $B --dtype float32 --methods $LOSSLESS --json "$OUTD/bench-f32.json"
step compiled 70 env DECODING_LAB_COMPILE=1 $B --dtype bfloat16 --methods ar --json "$OUTD/bench-compiled.json"
step matched 40 env DECODING_LAB_MIN_BUCKET=16 $B --dtype bfloat16 --methods ar,eagle,rrs,bpd,pld \
  --json "$OUTD/bench-matched.json"
step profile 40 $PY tools/profile_step.py --device "$DEV" --dtype bfloat16 --tokens "$NTOK" --json "$OUTD/profile.json"
step drift 50 $PY tools/bf16_drift.py --device "$DEV" --dtype bfloat16 --tokens "$NTOK" --limit "$LIMIT" \
  --json "$OUTD/drift.json"
$PY tools/gpu_summary.py "$OUTD" | tee -a "$log"
