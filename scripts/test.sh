#!/usr/bin/env bash
# One command: install what is missing, build, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
bash deploy/check-test.sh   # the deployment files validate (and the check refuses broken ones)
swift build --build-tests
swift test
