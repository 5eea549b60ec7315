#!/usr/bin/env bash
# The test command: installs build dependencies, builds everything (the CLI tests run the built executable), runs
# the tests. Never touches the network beyond the package installer; the fixtures are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
# Whether decoding allocates is a property of optimized code: that suite runs again in release (Tests/AdaptersTests/
# AllocationTests.swift; unoptimized builds allocate where the optimizer would not, so it is off there).
if [ $# -eq 0 ]; then
    swift test -c release -Xswiftc -enable-testing --filter AllocationTests
fi
