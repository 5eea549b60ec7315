#!/usr/bin/env bash
# The test command: installs build dependencies, builds everything (the CLI tests run the built executable), runs
# the tests. Never touches the network beyond the package installer; the fixtures are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
swift build --build-tests
swift test --skip-build "$@"
# Whether decoding allocates is a property of optimized code: that suite runs again in release (Tests/AdaptersTests/
# AllocationTests.swift; unoptimized builds allocate where the optimizer would not, so it is off there).
if [ $# -eq 0 ]; then
    swift test -c release -Xswiftc -enable-testing --filter AllocationTests
    # `loraswitch serve` from outside: the real openai client and Selenium (in a venv outside the repo), curl, and
    # headless Chromium for the chat page.
    venv="${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch/test-venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -c "import openai, selenium" 2>/dev/null || "$venv/bin/pip" install -q openai selenium
    LORASWITCH="$(swift build --show-bin-path)/loraswitch" "$venv/bin/python" Tests/server/test_server.py
    # The PyTorch package (python/) against the built engine: logits, gradients, files, torchrun/FSDP on 2 processes.
    # python/venv.sh makes its venv outside the repo once (torch without the CUDA parts its CPU use never loads).
    python/venv.sh
    LORASWITCH="$(swift build --show-bin-path)/loraswitch" OMP_NUM_THREADS=1 \
        "${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch/torch-venv/bin/python" -m unittest discover -s python/tests
fi
