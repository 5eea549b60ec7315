#!/usr/bin/env bash
# Installs what building needs on a fresh Debian machine: OpenBLAS (cblas), GNU libmicrohttpd (serve) and pkg-config.
# With --tests also what the tests need beyond building. Idempotent: does nothing when all are there.
set -euo pipefail
need=()
pkg-config --exists openblas 2>/dev/null || need+=(libopenblas-dev)
pkg-config --exists libmicrohttpd 2>/dev/null || need+=(libmicrohttpd-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# --tests: what the server's tests drive it with (curl, headless Chromium and its WebDriver).
if [ "${1:-}" = "--tests" ]; then
    command -v curl >/dev/null 2>&1 || need+=(curl)
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
fi
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
