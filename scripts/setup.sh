#!/usr/bin/env bash
# Installs the Debian packages the build and tests need (only those missing).
# Safe to run repeatedly; needs root (or sudo) the first time.
set -euo pipefail
PKGS="build-essential libopenblas-dev libopenblas-openmp-dev libhdf5-dev libcriterion-dev libutf8proc-dev libjansson-dev libinih-dev libopenmpi-dev openmpi-bin"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
else
  echo "setup: all Debian packages present"
fi
