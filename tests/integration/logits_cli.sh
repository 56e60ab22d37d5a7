#!/usr/bin/env bash
# `vox logits` and `vox encode` on the HF golden fixtures (tests/fixtures/hf): the written .npy must match the
# reference outputs of tests/fixtures/hf/make_golden.py; bad input must fail with a message naming the problem.
set -euo pipefail
: "${VOX:?set VOX to the vox binary}" "${VOX_SOURCE_DIR:?set VOX_SOURCE_DIR to the repository}"
py=/usr/bin/python3
fx="$VOX_SOURCE_DIR/tests/fixtures/hf"
tmp=$(mktemp -d /tmp/vox_logits_cli_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Row 0 of each golden batch is unpadded: its ids give the reference logits[0].
for m in qwen2_untied qwen2_tied; do
  ids=$("$py" -c "import numpy as np; print(' '.join(map(str, np.load('$fx/$m/ids.npy')[0])))")
  "$VOX" logits --model "$fx/$m" --ids "$ids" --out "$tmp/$m.npy" > "$tmp/out.txt" || { cat "$tmp/out.txt"; fail "vox logits $m"; }
  grep -q "positions x 64 vocab" "$tmp/out.txt" || { cat "$tmp/out.txt"; fail "$m: unexpected summary"; }
  "$py" - "$tmp/$m.npy" "$fx/$m/logits.npy" <<'PY' || fail "$m logits differ from the reference"
import sys, numpy as np
got, ref = np.load(sys.argv[1]), np.load(sys.argv[2])[0]
assert got.dtype == np.float32 and got.shape == ref.shape, (got.dtype, got.shape, ref.shape)
err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
print("%s: rel err %.2e, max abs %.2e" % (sys.argv[1].rsplit("/", 1)[-1], err, np.abs(got - ref).max()))
assert err < 1e-5 and np.allclose(got, ref, rtol=1e-4, atol=1e-4)
PY
done

# Whisper: [1, T, n_mels] and [T, n_mels] inputs, 40 and 26 frames.
"$py" -c "import numpy as np; np.save('$tmp/feats2d.npy', np.load('$fx/whisper/feats_short.npy')[0])"
"$VOX" encode --model "$fx/whisper" --features "$fx/whisper/feats.npy" --out "$tmp/enc.npy" > "$tmp/out.txt" \
  || { cat "$tmp/out.txt"; fail "vox encode"; }
grep -q "(whisper): 40 frames -> 20 x 24" "$tmp/out.txt" || { cat "$tmp/out.txt"; fail "encode: unexpected summary"; }
"$VOX" encode --model "$fx/whisper" --features "$tmp/feats2d.npy" --out "$tmp/enc_short.npy" > /dev/null \
  || fail "vox encode (26 frames, 2-D features)"
"$py" - "$tmp" "$fx/whisper" <<'PY' || fail "encoder outputs differ from the reference"
import sys, numpy as np
t, fx = sys.argv[1], sys.argv[2]
for got, ref in (("enc", "hidden"), ("enc_short", "hidden_short")):
    g, r = np.load("%s/%s.npy" % (t, got)), np.load("%s/%s.npy" % (fx, ref))[0]
    assert g.shape == r.shape, (got, g.shape, r.shape)
    err = np.linalg.norm(g - r) / np.linalg.norm(r)
    print("%s: rel err %.2e" % (got, err))
    assert err < 1e-5 and np.allclose(g, r, rtol=1e-4, atol=1e-4)
PY

# Bad input fails with a message naming it.
expect_fail() { # pattern, command...
  local pat=$1; shift
  if "$@" > "$tmp/bad.txt" 2>&1; then cat "$tmp/bad.txt"; fail "accepted: $*"; fi
  grep -q -- "$pat" "$tmp/bad.txt" || { cat "$tmp/bad.txt"; fail "no '$pat' in the message of: $*"; }
}
expect_fail "outside \[0, 64)" "$VOX" logits --model "$fx/qwen2_tied" --ids "1 2 64" --out "$tmp/x.npy"
expect_fail "'x7' is not a token id" "$VOX" logits --model "$fx/qwen2_tied" --ids "1 x7" --out "$tmp/x.npy"
expect_fail 'model_type "whisper" is not a Qwen2' "$VOX" logits --model "$fx/whisper" --ids "1" --out "$tmp/x.npy"
expect_fail 'model_type "qwen2" is no speech encoder' \
  "$VOX" encode --model "$fx/qwen2_tied" --features "$fx/whisper/feats.npy" --out "$tmp/x.npy"
"$py" -c "import numpy as np; np.save('$tmp/wide.npy', np.load('$fx/qwen2_tied/hidden.npy')[0])"
expect_fail "expected \[B, T, 16\]" "$VOX" encode --model "$fx/whisper" --features "$tmp/wide.npy" --out "$tmp/x.npy"
echo "logits_cli: ok"
