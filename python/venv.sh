#!/usr/bin/env bash
# Makes (once) the venv the Python tests run in, outside the repo: VENV (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch/torch-venv) with torch, transformers, safetensors, accelerate, peft and
# this package (editable, so the tests run the checkout). Idempotent: does nothing when the venv imports them all.
#
# Why not `pip install torch`: PyPI has no CPU-only torch for Linux x86-64, and the CUDA build's dependencies
# (cuda-toolkit, cuDNN, NCCL, nvshmem, triton, ...) are ~5.3 GB installed. transformers 5 needs torch >= 2.6, and
# every such wheel on PyPI is a CUDA build, so no older torch is much lighter. What is lighter: torch with
# --no-deps plus only the NVIDIA wheels whose libraries libtorch_cuda.so / libtorch_python.so name as DT_NEEDED
# (the dynamic loader refuses `import torch` without them), leaving out triton, cuSOLVER, cuda-bindings and the
# cuda-toolkit meta-package: ~4.0 GB installed instead of ~5.3. Measured on this project's machines (2 cores, the
# package index fast): torch and those wheels 56 s, 4.0 GB; `pip install torch==2.15.0` 67 s, 5.3 GB; the whole
# venv (transformers, accelerate, peft, ...) about 90 s. The versions are the ones torch 2.15.0 pins.
set -euo pipefail
venv="${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch/torch-venv}"
here="$(cd "$(dirname "$0")" && pwd)"
pip=("$venv/bin/pip" install -q --disable-pip-version-check)
# The package is installed editable from one checkout; another checkout (a fresh clone, a worktree) re-points it
# to itself, so that its tests never import a different checkout's package (or a deleted one's).
ours() {
    "$venv/bin/python" -c "import sys, loraswitch_torch; sys.exit(not loraswitch_torch.__file__.startswith('$here/'))" \
        2>/dev/null
}
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch, transformers, safetensors, accelerate, peft" 2>/dev/null; then
    ours || "${pip[@]}" --no-deps -e "$here"
    ours || { echo "python/venv.sh: loraswitch_torch in $venv does not come from $here" >&2; exit 1; }
    exit 0
fi
echo "python/venv.sh: making $venv (torch 2.15.0 without its optional CUDA parts; a few GB, once)" >&2
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"${pip[@]}" --no-deps torch==2.15.0 \
    nvidia-cuda-runtime==13.2.86 nvidia-cuda-cupti==13.2.86 nvidia-cuda-nvrtc==13.2.86 nvidia-cublas==13.4.1.3 \
    nvidia-cufft==12.2.0.57 nvidia-cufile==1.17.1.22 nvidia-cusparse==12.7.10.12 nvidia-nvjitlink==13.5.37 \
    nvidia-cudnn-cu13==9.26.0.51 nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.30.7 nvidia-nvshmem-cu13==3.7.2
# torch's own pure-Python dependencies, then the rest (none of which depends on torch, so pip leaves it alone)
"${pip[@]}" filelock "typing-extensions>=4.13.0" "setuptools>=77.0.3" "sympy>=1.13.3" "networkx>=2.5.1" jinja2 \
    "fsspec>=0.8.5" "transformers>=5,<6" "safetensors>=0.4" numpy pyyaml psutil
# accelerate (examples/train.py and its launcher configs) and peft (the export test) depend on torch: --no-deps too
"${pip[@]}" --no-deps "accelerate>=1.10,<2" "peft>=0.17,<1"
# the package itself: --no-deps, or pip's resolver would fetch the CUDA parts left out above for torch
"${pip[@]}" --no-deps -e "$here"
"$venv/bin/python" -c "import torch, transformers, safetensors, accelerate, peft, loraswitch_torch"
ours || { echo "python/venv.sh: loraswitch_torch in $venv does not come from $here" >&2; exit 1; }
