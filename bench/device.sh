#!/usr/bin/env bash
# The GPU benchmarks in one prepared run, for a lent GPU machine (see docs/performance.md).
#
#   bench/device.sh wheels    here: the packages the GPU image lacks, as Python 3.12 wheels in
#                             .wheels/ (git-ignored), at this venv's versions
#   bench/device.sh run       there, with .wheels carried: install them, check that a tiny step
#                             runs, build one full-size stand-in hub with every family, then
#                             bench/e2e.py --gpu for sd-turbo and each family; each run's output
#                             goes to $OUT/e2e-<name>.txt and its key lines to $OUT/summary.txt
#
# The GPU image (Python 3.12, torch, transformers, accelerate, peft, timm) has no diffusers or
# open_clip: those come from .wheels/. If a tiny step fails with the image's transformers,
# .wheels/stack/ (this venv's transformers, huggingface_hub, tokenizers and what they need) is
# installed over it and the step is tried again. The runs stop starting once DEADLINE seconds
# have passed, so the call ends inside the device's per-command limit.
#
# Settings (environment): PYTHON (here .venv/bin/python, there python3), OUT (a temp dir), MODE (--gpu), HUB_SIZE (full),
# SD_VARIANT (fp16: what CUDA loads; "" on a CPU), FAMILIES (sd sdxl sd3 flux pixart sana),
# PER_RUN (150 s), DEADLINE (520 s). On a CPU, as a check of the script itself:
#   PYTHON=.venv/bin/python HUB_SIZE=small SD_VARIANT= \
#   MODE="--real --device cpu --ideas 2 --size 64 --steps 1 --repeats 1" bench/device.sh run
set -uo pipefail
cd "$(dirname "$0")/.."

PINNED=(diffusers open_clip_torch ftfy wcwidth importlib_metadata)
STACK=(transformers huggingface_hub tokenizers)
PLATFORM=(--only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64)

version() { "$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }

pins() { for p in "$@"; do echo "$p==$(version "$p")"; done; }

wheels() {
    PYTHON=${PYTHON:-.venv/bin/python}
    rm -rf .wheels && mkdir -p .wheels/stack
    "$PYTHON" -m pip download -q --no-deps "${PLATFORM[@]}" -d .wheels $(pins "${PINNED[@]}") &&
        "$PYTHON" -m pip download -q "${PLATFORM[@]}" -d .wheels/stack $(pins "${STACK[@]}") || return 1
    pins "${STACK[@]}" >.wheels/stack/pins.txt # what run installs from there
    rm -f .wheels/stack/numpy-*.whl # the image's numpy serves
    du -sh .wheels
}

smoke() { # one tiny step on the device, the loop's whole path
    timeout 180 "$PYTHON" bench/e2e.py --steps 1 --ideas 2 --repeats 1 >"$OUT/smoke.txt" 2>&1
}

run() {
    PYTHON=${PYTHON:-python3}
    OUT=${OUT:-$(mktemp -d)}
    local mode=${MODE:---gpu} hub=${HUB:-/tmp/promptrl-standin} start=$SECONDS
    local families=${FAMILIES:-sd sdxl sd3 flux pixart sana}
    export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
    if [ -d .wheels ]; then "$PYTHON" -m pip install -q --no-index --no-deps .wheels/*.whl || return 1; fi
    if ! smoke; then
        echo "a tiny step failed with the image's packages (tail below); installing .wheels/stack" | tee "$OUT/env.txt"
        tail -5 "$OUT/smoke.txt" | tee -a "$OUT/env.txt"
        "$PYTHON" -m pip install -q --no-index --find-links .wheels/stack -r .wheels/stack/pins.txt || return 1
        smoke || { tail -20 "$OUT/smoke.txt"; return 1; }
    fi
    "$PYTHON" - >>"$OUT/env.txt" <<'EOF'
import importlib.metadata as m, platform, torch
names = ("torch", "transformers", "huggingface_hub", "diffusers", "open_clip_torch", "accelerate", "peft")
print("python", platform.python_version(), *(f"{n} {m.version(n)}" for n in names))
print("device:", torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
EOF
    cat "$OUT/env.txt"
    local fams="" f
    for f in $families; do fams+="'$f',"; done
    "$PYTHON" -c "from promptrl.standins.hub import build_standin_hub as b; b('$hub', '${HUB_SIZE:-full}', \
sd_variants=('${SD_VARIANT-fp16}',), families=($fams))" >"$OUT/hub.txt" 2>&1 || { tail -20 "$OUT/hub.txt"; return 1; }
    echo "stand-in hub built in $((SECONDS - start)) s (with the smoke step)" | tee -a "$OUT/summary.txt"
    for f in sd-turbo $families; do
        if ((SECONDS - start > ${DEADLINE:-520})); then
            echo "$f: not started, past the deadline" | tee -a "$OUT/summary.txt"
            continue
        fi
        local args=() t0=$SECONDS
        [ "$f" != sd-turbo ] && args=(--family "$f")
        # shellcheck disable=SC2086  # MODE is a list of flags
        timeout "${PER_RUN:-150}" "$PYTHON" bench/e2e.py $mode --hub "$hub" "${args[@]}" >"$OUT/e2e-$f.txt" 2>&1
        local rc=$?
        {
            echo "== $f (exit $rc, $((SECONDS - t0)) s)"
            grep -E "preset|^render,|^preview|^  (generate|render|score|optimize|step|peak|renderer|plain|one by|same|decode) " "$OUT/e2e-$f.txt" ||
                tail -5 "$OUT/e2e-$f.txt"
        } | tee -a "$OUT/summary.txt"
    done
}

case "${1:-}" in
wheels) wheels ;;
run) run ;;
*)
    echo "usage: bench/device.sh wheels | run" >&2
    exit 2
    ;;
esac
