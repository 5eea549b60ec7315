#!/usr/bin/env bash
# The study (issue 11, part 4): does LoRA-Switch keep the accuracy of layer-wise MoE-LoRA at the backbone's speed?
#
# From a fresh clone: builds the release binary if missing, makes the training data (scripts/study/
# make_training_data.py), trains four adapters on the union of the tasks' train splits with the same budget —
# lora (static LoRA, rank = top-k · expert rank), moe-layer (a router per projection), moe-token (LoRA-Switch, the
# router on layer 0's normalized input) and moe-token-late (the router on layer STUDY_ROUTER_LAYER's) —, scores six
# rows (base-0shot, base-3shot and the four adapters) on every task's test split, times decoding of each adapter
# under auto and fused beside the bare backbone in the same run, counts each token-routed adapter's experts per
# task over test contexts, and writes RESULTS.md, study.json and the plots (scripts/study/report.py).
#
# Resumable: each stage leaves its output in the work folder and is skipped when it is there; an interrupted
# training run continues from its last checkpoint (train --save-every / --resume). Stop it at any time (Ctrl-C: the
# current training step finishes and is saved) and run it again with the same settings.
#
# Settings (environment; the defaults are the study's, picked on the validation splits — see
# scripts/study/README.md for the task selection, the pilot runs and the budget):
#   STUDY_DIR            work folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch/study/run)
#   STUDY_RESULTS        where RESULTS.md, study.json and the PNGs go (default: study/ in the repository)
#   STUDY_TASKS          comma-separated BIG-bench tasks (default below)
#   STUDY_STAGES         comma-separated stages to run: data,train,eval,decode,routing,report (default all)
#   STUDY_ROWS           comma-separated rows to train and score (default all six: base-0shot,base-3shot,lora,
#                        moe-layer,moe-token,moe-token-late); the report needs all six
#   STUDY_EVAL_SPLIT     test (default) or validation: the split the eval stage scores. Validation scores go to
#                        eval-validation/ beside eval/ and are what the hyperparameters are picked on; the report
#                        reads the test scores only
#   STUDY_THREADS        threads of every loraswitch call (default 2)
#   training budget, the same for every trained row:
#   STUDY_TRAIN_PER_TASK train examples per task (default 1500: all)   STUDY_VALID_PER_TASK (default 50)
#   STUDY_STEPS          optimizer steps (default below)   STUDY_BATCH examples a step   STUDY_LR   STUDY_WARMUP
#   STUDY_SCHEDULE       cosine|linear|constant   STUDY_SEED
#   STUDY_AUX            the MoE rows' load-balancing coefficient: one value for all three, or per row, e.g.
#                        "moe-layer=0.01,moe-token=0.05,moe-token-late=0.01" (a row not named takes 0.01)
#   STUDY_EXPERTS STUDY_TOPK STUDY_RANK (expert rank; LoRA gets TOPK·RANK)   STUDY_TARGETS
#   STUDY_FIRST_LAYER    the lowest adapted layer of every trained row (default = STUDY_ROUTER_LAYER, so the four
#                        adapters adapt the same layers and the MoE rows have the same experts)
#   STUDY_ROUTER_LAYER   moe-token-late's router layer (default 4)
#   STUDY_SAVE_EVERY     checkpoint every N steps (default 50)   STUDY_EVAL_EVERY validation loss every N steps
#   STUDY_STOP_AFTER     train at most this many more steps per adapter in this call, then stop (resume later)
#   evaluation:
#   STUDY_TEST_LIMIT     score only the first N test examples of each task (default: the whole test split)
#   STUDY_ROUTING_CONTEXTS  test contexts per task for the utilization counts (default 40)
#   STUDY_DECODE_TOKENS  tokens generated per decode measurement (default 64)   STUDY_DECODE_ROUNDS (default 3)
#   LORASWITCH           the binary (default .build/release/loraswitch, built when missing)
#   LORASWITCH_MODEL     the model (default: loraswitch's default model)
#   STUDY_PYTHON         the Python of the report step (default python3; the PNGs need matplotlib, the rest only
#                        the standard library)
#
# Smoke test of every stage on a tiny budget (a few minutes):
#   STUDY_DIR=/tmp/study-smoke STUDY_RESULTS=/tmp/study-smoke/results STUDY_TASKS=hyperbaton,strategyqa \
#   STUDY_TRAIN_PER_TASK=40 STUDY_VALID_PER_TASK=8 STUDY_STEPS=6 STUDY_BATCH=2 STUDY_SAVE_EVERY=3 \
#   STUDY_TEST_LIMIT=12 STUDY_ROUTING_CONTEXTS=3 STUDY_DECODE_TOKENS=8 STUDY_DECODE_ROUNDS=1 scripts/study/run.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"

: "${STUDY_DIR:=${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch/study/run}"
: "${STUDY_RESULTS:=$repo/study}"
: "${STUDY_TASKS:=hyperbaton,bbq_lite_json,logical_fallacy_detection,social_iqa}"
: "${STUDY_STAGES:=data,train,eval,decode,routing,report}"
: "${STUDY_THREADS:=2}"
: "${STUDY_ROWS:=base-0shot,base-3shot,lora,moe-layer,moe-token,moe-token-late}"
: "${STUDY_EVAL_SPLIT:=test}"
: "${STUDY_TRAIN_PER_TASK:=1500}"
: "${STUDY_VALID_PER_TASK:=50}"
: "${STUDY_STEPS:=500}"
: "${STUDY_BATCH:=8}"
: "${STUDY_LR:=2e-3}"
: "${STUDY_WARMUP:=25}"
: "${STUDY_SCHEDULE:=cosine}"
default_aux=0.01   # also the coefficient of a row STUDY_AUX pairs do not name
: "${STUDY_AUX:=$default_aux}"
: "${STUDY_SEED:=1}"
: "${STUDY_EXPERTS:=8}"
: "${STUDY_TOPK:=2}"
: "${STUDY_RANK:=8}"
: "${STUDY_TARGETS:=all}"
: "${STUDY_ROUTER_LAYER:=4}"
: "${STUDY_FIRST_LAYER:=$STUDY_ROUTER_LAYER}"
: "${STUDY_SAVE_EVERY:=50}"
: "${STUDY_EVAL_EVERY:=100}"
: "${STUDY_STOP_AFTER:=}"
: "${STUDY_TEST_LIMIT:=}"
: "${STUDY_ROUTING_CONTEXTS:=40}"
: "${STUDY_DECODE_TOKENS:=64}"
: "${STUDY_DECODE_ROUNDS:=3}"
: "${LORASWITCH:=$repo/.build/release/loraswitch}"
: "${LORASWITCH_MODEL:=}"
: "${STUDY_PYTHON:=python3}"

say() { printf '== %s\n' "$*"; }
want() { [[ ",$STUDY_STAGES," == *",$1,"* ]]; }
now() { date +%s.%N; }

if [[ ! -x "$LORASWITCH" ]]; then
    say "building the release binary"
    swift build -c release
fi
bin="$LORASWITCH"
model_args=()
[[ -n "$LORASWITCH_MODEL" ]] && model_args=(--model "$LORASWITCH_MODEL")
IFS=, read -r -a tasks <<< "$STUDY_TASKS"
case "$STUDY_EVAL_SPLIT" in
    test | validation) ;;
    *) echo "run.sh: STUDY_EVAL_SPLIT must be test or validation, not '$STUDY_EVAL_SPLIT'" >&2; exit 1 ;;
esac
row_wanted() { [[ ",$STUDY_ROWS," == *",$1,"* ]]; }
mkdir -p "$STUDY_DIR"

# The settings that fix the results. A work folder holds one study: other settings there are refused rather than
# mixed with its finished stages (use another STUDY_DIR). Checkpoint, evaluation-every, decode and routing
# settings are not fixed and may change between calls.
config="$STUDY_DIR/config.txt"
fixed="tasks=$STUDY_TASKS
train_per_task=$STUDY_TRAIN_PER_TASK valid_per_task=$STUDY_VALID_PER_TASK
steps=$STUDY_STEPS batch=$STUDY_BATCH lr=$STUDY_LR warmup=$STUDY_WARMUP schedule=$STUDY_SCHEDULE aux=$STUDY_AUX seed=$STUDY_SEED
experts=$STUDY_EXPERTS top_k=$STUDY_TOPK rank=$STUDY_RANK targets=$STUDY_TARGETS first_layer=$STUDY_FIRST_LAYER router_layer=$STUDY_ROUTER_LAYER
model=${LORASWITCH_MODEL:-default}
test_limit=${STUDY_TEST_LIMIT:-all}"
if [[ -f "$config" ]]; then
    if [[ "$(cat "$config")" != "$fixed" ]]; then
        echo "run.sh: $STUDY_DIR holds a study with other settings:" >&2
        diff <(cat "$config") <(echo "$fixed") >&2 || true
        echo "run.sh: use another STUDY_DIR, or delete $config and the stages it invalidates" >&2
        exit 1
    fi
else
    echo "$fixed" > "$config"
fi

data="$STUDY_DIR/data"
adapters="$STUDY_DIR/adapters"
logs="$STUDY_DIR/logs"
evals="$STUDY_DIR/eval"
[[ "$STUDY_EVAL_SPLIT" == validation ]] && evals="$STUDY_DIR/eval-validation"
mkdir -p "$adapters" "$logs" "$evals"

# ---------------------------------------------------------------------------------------------------------- data
if want data; then
    say "data: the union of the train splits of $STUDY_TASKS"
    python3 scripts/study/make_training_data.py --tasks "$STUDY_TASKS" --out "$data" --seed "$STUDY_SEED" \
        --train-per-task "$STUDY_TRAIN_PER_TASK" --valid-per-task "$STUDY_VALID_PER_TASK"
fi

# --------------------------------------------------------------------------------------------------------- train
# The model's last layer (inspect prints "layers:  30").
model_file="${LORASWITCH_MODEL:-${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch/SmolLM2-135M-Instruct.Q4_1.gguf}"
layer_count=$("$bin" inspect "$model_file" | sed -n 's/^layers: *\([0-9][0-9]*\).*/\1/p' | head -1)
if [[ -z "$layer_count" ]]; then
    echo "run.sh: cannot read the layer count of $model_file from 'loraswitch inspect'" >&2
    exit 1
fi
last_layer=$((layer_count - 1))
layers_list() {
    local from=$STUDY_FIRST_LAYER to=$1 out=""
    for ((l = from; l <= to; l++)); do out+="${out:+,}$l"; done
    echo "$out"
}

# The aux coefficient of a MoE row (STUDY_AUX: one value, or row=value pairs).
aux_of() {
    if [[ "$STUDY_AUX" != *=* ]]; then echo "$STUDY_AUX"; return; fi
    local pair value=$default_aux
    IFS=, read -r -a pairs <<< "$STUDY_AUX"
    for pair in "${pairs[@]}"; do [[ "${pair%%=*}" == "$1" ]] && value="${pair#*=}"; done
    echo "$value"
}

# The options of one trained row, by name.
row_options() {
    local layers
    layers=$(layers_list "$last_layer")
    case "$1" in
        lora) echo "--type lora --rank $((STUDY_TOPK * STUDY_RANK)) --targets $STUDY_TARGETS --layers $layers" ;;
        moe-layer) echo "--type moe-layer --experts $STUDY_EXPERTS --top-k $STUDY_TOPK --rank $STUDY_RANK --targets $STUDY_TARGETS --layers $layers --aux-loss-coef $(aux_of moe-layer)" ;;
        moe-token) echo "--type moe-token --experts $STUDY_EXPERTS --top-k $STUDY_TOPK --rank $STUDY_RANK --targets $STUDY_TARGETS --layers $layers --router-layer 0 --aux-loss-coef $(aux_of moe-token)" ;;
        moe-token-late) echo "--type moe-token --experts $STUDY_EXPERTS --top-k $STUDY_TOPK --rank $STUDY_RANK --targets $STUDY_TARGETS --layers $layers --router-layer $STUDY_ROUTER_LAYER --aux-loss-coef $(aux_of moe-token-late)" ;;
    esac
}
trained_rows=()
for row in lora moe-layer moe-token moe-token-late; do row_wanted "$row" && trained_rows+=("$row"); done

# Whether the training log of a row ends with a finished run (its last "done" record at the last step).
finished() {
    local log="$logs/$1.train.jsonl"
    [[ -f "$log" ]] && python3 - "$log" <<'PY'
import json, sys
done = None
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("type") == "done":
        done = r
sys.exit(0 if done and done["step"] == done["total_steps"] else 1)
PY
}

if want train; then
    # Epochs enough for STUDY_STEPS steps; --steps ends the run (the schedule spans the steps).
    examples=$(wc -l < "$data/train.jsonl")
    epochs=$(( STUDY_STEPS / (examples / STUDY_BATCH > 0 ? examples / STUDY_BATCH : 1) + 1 ))
    for row in "${trained_rows[@]}"; do
        out="$adapters/$row"
        if finished "$row"; then
            say "train $row: done ($out)"
            continue
        fi
        resume=()
        if [[ -f "$out/training_state.safetensors" ]]; then
            resume=(--resume "$out")
        elif [[ -e "$out" ]]; then
            rm -rf "$out"
        fi
        stop=()
        if [[ -n "$STUDY_STOP_AFTER" ]]; then
            at=0
            [[ ${#resume[@]} -gt 0 ]] && at=$(python3 -c '
import json, sys
step = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("type") == "checkpoint": step = r["step"]
print(step)' "$logs/$row.train.jsonl")
            stop=(--stop-after $((at + STUDY_STOP_AFTER)))
            [[ $((at + STUDY_STOP_AFTER)) -ge $STUDY_STEPS ]] && stop=()
        fi
        say "train $row${resume:+ (resuming)}: $(row_options "$row")"
        # shellcheck disable=SC2046
        "$bin" train "${model_args[@]}" --data "$data/train.jsonl" --valid "$data/validation.jsonl" --out "$out" \
            $(row_options "$row") --steps "$STUDY_STEPS" --epochs "$epochs" --batch-size "$STUDY_BATCH" --lr "$STUDY_LR" \
            --warmup "$STUDY_WARMUP" --schedule "$STUDY_SCHEDULE" --seed "$STUDY_SEED" --threads "$STUDY_THREADS" \
            --save-every "$STUDY_SAVE_EVERY" --eval-every "$STUDY_EVAL_EVERY" --log "$logs/$row.train.jsonl" \
            "${resume[@]}" "${stop[@]}" 2>&1 | tee -i -a "$logs/$row.train.txt"
        if ! finished "$row"; then
            say "train $row: stopped before its last step; run again to continue"
            exit 0
        fi
    done
fi

# ---------------------------------------------------------------------------------------------------------- eval
# One JSON per (row, task): eval --json writes it atomically, so a file that is there is finished.
eval_row() {  # row task extra-args...
    local row=$1 task=$2
    shift 2
    local json="$evals/$row/$task.json"
    [[ -f "$json" ]] && return 0
    mkdir -p "$evals/$row"
    local limit=()
    [[ -n "$STUDY_TEST_LIMIT" ]] && limit=(--limit "$STUDY_TEST_LIMIT")
    say "eval $row on $task ($STUDY_EVAL_SPLIT)"
    local t0 t1
    t0=$(now)
    "$bin" eval "${model_args[@]}" --task "bigbench:$task" --split "$STUDY_EVAL_SPLIT" "${limit[@]}" --threads "$STUDY_THREADS" \
        --json "$json.part" "$@" | tee -i "$evals/$row/$task.txt"
    t1=$(now)
    # The wall time beside the scores (eval --json has none); the .part keeps a killed run from counting as done.
    python3 - "$json.part" "$json" "$t0" "$t1" <<'PY'
import json, os, sys
part, final, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
r = json.load(open(part))
r["wall_seconds"] = t1 - t0
r["examples_per_second"] = r["n"] / (t1 - t0)
json.dump(r, open(final + ".tmp", "w"))
os.replace(final + ".tmp", final)
os.remove(part)
PY
}

if want eval; then
    for task in "${tasks[@]}"; do
        row_wanted base-0shot && eval_row base-0shot "$task"
        row_wanted base-3shot && eval_row base-3shot "$task" --shots 3
        for row in "${trained_rows[@]}"; do
            if ! finished "$row"; then
                say "eval $row: not trained yet; skipped"
                continue
            fi
            eval_row "$row" "$task" --adapter "$adapters/$row"
        done
    done
fi

# -------------------------------------------------------------------------------------------------------- decode
# Decode ms/token of each trained adapter under auto and fused, each measurement beside one of the bare backbone
# run right before it, in rounds (every measurement of round r before any of round r+1): `generate --stats`,
# greedy, the same prompt, STUDY_DECODE_TOKENS tokens. This is the trained adapters in the real decoding loop;
# `bench` measures random adapters of a given shape, not these.
decode_prompt="The history of the printing press begins in the fifteenth century, when"
if want decode; then
    decode="$STUDY_DIR/decode.jsonl"
    if [[ -f "$STUDY_DIR/decode.done" ]]; then
        say "decode: done ($decode)"
    else
        ready=()
        for row in "${trained_rows[@]}"; do finished "$row" && ready+=("$row"); done
        if [[ ${#ready[@]} -eq 0 ]]; then
            say "decode: no trained adapter yet; skipped"
        else
            : > "$decode.part"
            measure() {  # round row strategy [generate args...]
                local round=$1 row=$2 strategy=$3
                shift 3
                local line
                line=$("$bin" generate "${model_args[@]}" --prompt "$decode_prompt" --temperature 0 \
                    --max-tokens "$STUDY_DECODE_TOKENS" --threads "$STUDY_THREADS" --stats "$@" 2>&1 >/dev/null \
                    | grep '^prompt: ' | tail -1)
                python3 - "$round" "$row" "$strategy" "$line" >> "$decode.part" <<'PY'
import json, re, sys
round_, row, strategy, line = sys.argv[1:5]
m = re.search(r"prompt: (\d+) tokens at ([\d.]+) tokens/s; generated: (\d+) tokens at ([\d.]+) ms/token", line)
if not m:
    sys.exit(f"run.sh: no --stats line from generate ({row}, {strategy}): {line!r}")
print(json.dumps({"round": int(round_), "method": row, "strategy": strategy, "prompt_tokens": int(m[1]),
                  "prefill_tokens_per_second": float(m[2]), "generated": int(m[3]), "ms_per_token": float(m[4])}))
PY
            }
            for ((round = 1; round <= STUDY_DECODE_ROUNDS; round++)); do
                for row in "${ready[@]}"; do
                    for strategy in auto fused; do
                        say "decode round $round: backbone, then $row under $strategy"
                        measure "$round" backbone none
                        measure "$round" "$row" "$strategy" --adapter "$adapters/$row" --strategy "$strategy"
                    done
                done
            done
            mv "$decode.part" "$decode"
            [[ ${#ready[@]} -eq 4 ]] && touch "$STUDY_DIR/decode.done"
        fi
    fi
fi

# ------------------------------------------------------------------------------------------------------- routing
# Expert utilization per task of the token-routed adapters: `generate --show-routing` prints the experts of every
# prompt position; each of the first STUDY_ROUTING_CONTEXTS test contexts of a task is run as a prompt (stripped
# of its trailing whitespace, as eval splits it) with one generated token, and report.py counts the top-k slots per
# expert. (eval prints no routing and moe-layer has no per-token decision to show.)
if want routing; then
    for row in moe-token moe-token-late; do
        finished "$row" || { say "routing $row: not trained yet; skipped"; continue; }
        for task in "${tasks[@]}"; do
            out="$STUDY_DIR/routing/$row/$task.txt"
            [[ -f "$out" ]] && continue
            mkdir -p "$(dirname "$out")"
            say "routing $row on $task ($STUDY_ROUTING_CONTEXTS test contexts)"
            : > "$out.part"
            python3 -c '
import json, sys
with open(sys.argv[1]) as f:
    for i, line in enumerate(f):
        if i == int(sys.argv[2]): break
        sys.stdout.buffer.write(json.loads(line)["context"].rstrip().encode() + b"\0")
' "data/bigbench/$task/test.jsonl" "$STUDY_ROUTING_CONTEXTS" |
            while IFS= read -r -d '' context; do
                echo "# context" >> "$out.part"
                "$bin" generate "${model_args[@]}" --prompt "$context" </dev/null --temperature 0 --max-tokens 1 \
                    --threads "$STUDY_THREADS" --adapter "$adapters/$row" --show-routing 2>&1 >/dev/null \
                    | grep '^\[routing\]' >> "$out.part"
            done
            mv "$out.part" "$out"
        done
    done
fi

# -------------------------------------------------------------------------------------------------------- report
if want report; then
    say "report: $STUDY_RESULTS"
    mkdir -p "$STUDY_RESULTS"
    "$STUDY_PYTHON" scripts/study/report.py --work "$STUDY_DIR" --out "$STUDY_RESULTS" --tasks "$STUDY_TASKS" \
        --binary "$bin" --threads "$STUDY_THREADS"
fi
