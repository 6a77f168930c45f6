#!/usr/bin/env bash
# Install the Debian packages adatok's tests, demo and benchmarks use, when they are missing.
#   dataset-fashion-mnist  Fashion-MNIST IDX files (datasets, learned tokenizer)
#   opencv-doc             example photos (held-out rate-distortion images)
#   chromium               headless browser for the report test (driven by Playwright, never downloaded)
set -euo pipefail
PKGS=(dataset-fashion-mnist opencv-doc chromium)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root to run: apt-get install -y ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
