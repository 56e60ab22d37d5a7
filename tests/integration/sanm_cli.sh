#!/usr/bin/env bash
# SenseVoice SAN-M end to end: a fresh random FunASR-layout checkpoint (torch.save'd state_dict + config.yaml +
# am.mvn) goes through data_tools/convert_funasr.py, `vox encode` must reproduce the PyTorch reference of
# tests/fixtures/sanm/make_golden.py on it; then audio -> `vox features` (fbank, LFR, CMVN) -> `vox encode` runs on
# the golden fixture, and bad input fails with a message naming it.
set -euo pipefail
: "${VOX:?set VOX to the vox binary}" "${VOX_SOURCE_DIR:?set VOX_SOURCE_DIR to the repository}"
py=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1 # make_golden.py is imported from the source tree
fx="$VOX_SOURCE_DIR/tests/fixtures/sanm"
tmp=$(mktemp -d /tmp/vox_sanm_cli_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
"$py" -c 'import torch, yaml' 2>/dev/null || { echo "SKIP: $py lacks torch or yaml"; exit 0; }

# 1. Converter + CLI on a checkpoint made here (kernel 7, shift 2: left pad 5, right pad 1; 2+1 blocks).
"$py" - "$tmp" "$fx" <<'PY' || fail "building the FunASR-layout checkpoint"
import sys, torch, numpy as np
tmp, fx = sys.argv[1], sys.argv[2]
sys.path.insert(0, fx)
import make_golden as mg
torch.manual_seed(3)
enc = mg.SenseVoiceEncoder(input_size=24, output_size=16, heads=2, units=20, num_blocks=2, tp_blocks=1, kernel=7, shift=2)
torch.save({"state_dict": mg.Wrapper(enc).state_dict()}, f"{tmp}/model.pt")  # a training checkpoint's layout
open(f"{tmp}/config.yaml", "w").write(
    "encoder: SenseVoiceEncoderSmall\nencoder_conf:\n  output_size: 16\n  attention_heads: 2\n  linear_units: 20\n"
    "  num_blocks: 2\n  tp_blocks: 1\n  kernel_size: 7\n  sanm_shfit: 2\nfrontend_conf:\n  n_mels: 8\n  lfr_m: 3\n  lfr_n: 2\n")
x = torch.randn(1, 11, 24)
np.save(f"{tmp}/feats.npy", x[0].numpy())
with torch.no_grad():
    h, _ = enc.double().eval()(x.double(), torch.tensor([11]))
np.save(f"{tmp}/ref.npy", h[0].numpy().astype(np.float32))
PY
"$py" "$VOX_SOURCE_DIR/data_tools/convert_funasr.py" "$tmp/model.pt" --config "$tmp/config.yaml" --out "$tmp/sv" \
  > "$tmp/conv.txt" || { cat "$tmp/conv.txt"; fail "convert_funasr.py"; }
grep -q "blocks 2+1, kernel 7, no am.mvn" "$tmp/conv.txt" || { cat "$tmp/conv.txt"; fail "converter summary"; }
"$VOX" encode --model "$tmp/sv" --features "$tmp/feats.npy" --out "$tmp/enc.npy" > "$tmp/out.txt" \
  || { cat "$tmp/out.txt"; fail "vox encode"; }
grep -q "(sensevoice): 11 frames -> 11 x 16" "$tmp/out.txt" || { cat "$tmp/out.txt"; fail "encode: unexpected summary"; }
"$py" - "$tmp/enc.npy" "$tmp/ref.npy" <<'PY' || fail "vox encode differs from the PyTorch reference"
import sys, numpy as np
g, r = np.load(sys.argv[1]), np.load(sys.argv[2])
assert g.dtype == np.float32 and g.shape == r.shape, (g.dtype, g.shape, r.shape)
err = np.linalg.norm(g - r) / np.linalg.norm(r)
print("converted checkpoint: rel err %.2e" % err)
assert err < 1e-5 and np.allclose(g, r, rtol=1e-4, atol=1e-4)
PY

# 2. The golden fixture's unpadded row 0 through the CLI.
"$py" -c "import numpy as np; np.save('$tmp/row0.npy', np.load('$fx/tiny/feats.npy')[:1])"
"$VOX" encode --model "$fx/tiny" --features "$tmp/row0.npy" --out "$tmp/row0_enc.npy" > /dev/null || fail "encode row 0"
"$py" -c "
import numpy as np
g, r = np.load('$tmp/row0_enc.npy'), np.load('$fx/tiny/hidden.npy')[0]
err = np.linalg.norm(g - r) / np.linalg.norm(r); print('golden row 0: rel err %.2e' % err); assert err < 1e-5
" || fail "golden row 0 differs"

# 3. Audio -> fbank (8 mels) -> LFR 5,3 -> CMVN (the converter's copied am.mvn) -> encoder (input 40).
"$VOX" features --type fbank --n-mels 8 --lfr 5,3 --cmvn "$fx/tiny/am.mvn" \
  "$VOX_SOURCE_DIR/tests/fixtures/audio/speech_16k.npy" --out "$tmp/lfr.npy" > /dev/null || fail "vox features"
"$VOX" encode --model "$fx/tiny" --features "$tmp/lfr.npy" --out "$tmp/speech_enc.npy" > "$tmp/out.txt" \
  || { cat "$tmp/out.txt"; fail "encode speech"; }
"$py" -c "
import numpy as np
f, h = np.load('$tmp/lfr.npy'), np.load('$tmp/speech_enc.npy')
assert f.shape[1] == 40 and h.shape == (f.shape[0], 32) and np.isfinite(h).all(), (f.shape, h.shape)
print('speech: %d LFR frames -> %s' % (f.shape[0], h.shape))
" || fail "speech pipeline shapes"

# 4. Bad input fails with a message naming it.
expect_fail() { # pattern, command...
  local pat=$1; shift
  if "$@" > "$tmp/bad.txt" 2>&1; then cat "$tmp/bad.txt"; fail "accepted: $*"; fi
  grep -q -- "$pat" "$tmp/bad.txt" || { cat "$tmp/bad.txt"; fail "no '$pat' in the message of: $*"; }
}
expect_fail "expected \[B, T, 40\]" "$VOX" encode --model "$fx/tiny" --features "$tmp/feats.npy" --out "$tmp/x.npy"
printf 'encoder_conf:\n  output_size: 64\n' > "$tmp/bad.yaml"
expect_fail "encoder_conf.output_size = 64 but the checkpoint has 16" \
  "$py" "$VOX_SOURCE_DIR/data_tools/convert_funasr.py" "$tmp/model.pt" --config "$tmp/bad.yaml" --out "$tmp/bad"
echo "sanm_cli: ok"
