#!/usr/bin/env python3
"""FunASR SenseVoice (SAN-M encoder) checkpoint -> vox model directory: config.json (model_type "sensevoice"),
model.safetensors (the encoder.* tensors, FunASR names kept) and am.mvn (CMVN) copied alongside.

    /usr/bin/python3 data_tools/convert_funasr.py SRC --out DIR [--config config.yaml] [--cmvn am.mvn]
                                                  [--dtype f32|bf16|f16] [--heads N]

SRC is a FunASR model directory (model.pt, config.yaml, am.mvn as the SenseVoiceSmall release ships them) or a
model.pt / training checkpoint ({"state_dict": ...} or {"model": ...}). Sizes come from the tensors themselves and
are cross-checked against config.yaml's encoder_conf (attention_heads, which the tensors cannot tell, comes from it,
else --heads). Needs torch (to unpickle); the safetensors file is written with json + struct, so the
`safetensors` package is not required. The encoder it targets is FunASR's SenseVoiceEncoderSmall
(funasr/models/sense_voice/model.py); vox loads the result with vox_sanm_encoder_load_hf (src/models/sanm_encoder.h).
"""

import argparse
import json
import os
import re
import shutil
import struct
import sys

import torch

# SenseVoiceEncoderSmall.__init__ defaults, used for keys config.yaml leaves out.
ENCODER_DEFAULTS = {
    "output_size": 256, "attention_heads": 4, "linear_units": 2048, "num_blocks": 6, "tp_blocks": 0,
    "dropout_rate": 0.1, "attention_dropout_rate": 0.0, "kernel_size": 11, "sanm_shfit": 0,
    "normalize_before": True, "concat_after": False,
}
FRONTEND_KEYS = ("fs", "window", "n_mels", "frame_length", "frame_shift", "lfr_m", "lfr_n", "dither")
ST_DTYPES = {"f32": ("F32", torch.float32), "bf16": ("BF16", torch.bfloat16), "f16": ("F16", torch.float16)}


def fail(msg):
    sys.exit(f"convert_funasr: {msg}")


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        fail(f"{path}: expected a state_dict (name -> tensor), or a dict holding one under 'state_dict'/'model'")
    if obj and all(k.startswith("module.") for k in obj):  # saved from DistributedDataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_yaml(path):
    import yaml  # python3-yaml; only needed when a config.yaml is given

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def count_layers(names, group):
    idx = {int(m.group(1)) for n in names for m in [re.match(rf"encoder\.{group}\.(\d+)\.", n)] if m}
    if idx and idx != set(range(len(idx))):
        fail(f"encoder.{group} layer indices are not 0..{len(idx) - 1}: {sorted(idx)}")
    return len(idx)


def infer_sizes(sd):
    """Sizes the tensors determine (FunASR names: encoder.encoders0.0.self_attn.linear_q_k_v.weight, ...)."""
    l0 = "encoder.encoders0.0."
    need = [l0 + "norm1.weight", l0 + "self_attn.linear_out.weight", l0 + "feed_forward.w_1.weight",
            l0 + "self_attn.fsmn_block.weight", "encoder.tp_norm.weight", "encoder.after_norm.weight"]
    missing = [n for n in need if n not in sd]
    if missing:
        fail("not a SenseVoice SAN-M encoder checkpoint; missing " + ", ".join(missing))
    names = list(sd)
    return {
        "input_size": sd[l0 + "norm1.weight"].shape[0],
        "output_size": sd[l0 + "self_attn.linear_out.weight"].shape[0],
        "linear_units": sd[l0 + "feed_forward.w_1.weight"].shape[0],
        "kernel_size": sd[l0 + "self_attn.fsmn_block.weight"].shape[2],
        "num_blocks": 1 + count_layers(names, "encoders"),
        "tp_blocks": count_layers(names, "tp_encoders"),
    }


def write_safetensors(path, tensors, dtype_name):
    """safetensors layout: u64 LE header size, JSON header (padded with spaces to 8 bytes), raw LE data."""
    st_name, torch_dtype = ST_DTYPES[dtype_name]
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch_dtype).contiguous()
        raw = (t.view(torch.int16) if torch_dtype == torch.bfloat16 else t).numpy()
        data = raw.astype(raw.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": st_name, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="FunASR model directory or model.pt")
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--config", help="config.yaml (default: SRC_DIR/config.yaml when present)")
    p.add_argument("--cmvn", help="am.mvn to copy (default: SRC_DIR/am.mvn when present)")
    p.add_argument("--dtype", choices=sorted(ST_DTYPES), default="f32", help="on-disk dtype (default f32)")
    p.add_argument("--heads", type=int, help="attention heads when no config.yaml gives them")
    args = p.parse_args()

    src_dir = args.src if os.path.isdir(args.src) else os.path.dirname(os.path.abspath(args.src))
    pt = os.path.join(args.src, "model.pt") if os.path.isdir(args.src) else args.src
    cfg_path = args.config or os.path.join(src_dir, "config.yaml")
    cmvn = args.cmvn or os.path.join(src_dir, "am.mvn")
    if args.config and not os.path.isfile(args.config):
        fail(f"{args.config}: no such file")
    if args.cmvn and not os.path.isfile(args.cmvn):
        fail(f"{args.cmvn}: no such file")

    sd = load_state_dict(pt)
    enc = {k: v for k, v in sd.items() if k.startswith("encoder.")}
    sizes = infer_sizes(enc)

    yml = load_yaml(cfg_path) if os.path.isfile(cfg_path) else {}
    encoder_class = yml.get("encoder", "SenseVoiceEncoderSmall")
    if encoder_class != "SenseVoiceEncoderSmall":
        fail(f"{cfg_path}: encoder {encoder_class!r}; only SenseVoiceEncoderSmall is supported")
    conf = dict(ENCODER_DEFAULTS, **(yml.get("encoder_conf") or {}))
    if not conf["normalize_before"] or conf["concat_after"]:
        fail(f"{cfg_path}: normalize_before false / concat_after true are not supported (SenseVoice uses neither)")
    if os.path.isfile(cfg_path):
        for key in ("output_size", "linear_units", "num_blocks", "tp_blocks", "kernel_size"):
            if key in (yml.get("encoder_conf") or {}) and int(conf[key]) != sizes[key]:
                fail(f"{cfg_path}: encoder_conf.{key} = {conf[key]} but the checkpoint has {sizes[key]}")
        if "input_size" in yml and int(yml["input_size"]) != sizes["input_size"]:
            fail(f"{cfg_path}: input_size = {yml['input_size']} but the checkpoint has {sizes['input_size']}")
    heads = args.heads or int(conf["attention_heads"])
    if sizes["output_size"] % heads:
        fail(f"attention_heads {heads} does not divide output_size {sizes['output_size']}")

    frontend = {k: v for k, v in (yml.get("frontend_conf") or {}).items() if k in FRONTEND_KEYS}
    if "n_mels" in frontend and "lfr_m" in frontend and frontend["n_mels"] * frontend["lfr_m"] != sizes["input_size"]:
        fail(f"{cfg_path}: n_mels {frontend['n_mels']} x lfr_m {frontend['lfr_m']} != input_size {sizes['input_size']}")

    os.makedirs(args.out, exist_ok=True)
    have_cmvn = os.path.isfile(cmvn)
    if have_cmvn:
        shutil.copyfile(cmvn, os.path.join(args.out, "am.mvn"))
    config = {
        "model_type": "sensevoice",
        "architectures": ["SenseVoiceEncoderSmall"],
        **sizes,
        "attention_heads": heads,
        "sanm_shfit": int(conf["sanm_shfit"]),
        "dropout_rate": float(conf["dropout_rate"]),
        "attention_dropout_rate": float(conf["attention_dropout_rate"]),
        "layer_norm_eps": 1e-5,  # SenseVoice's LayerNorm subclasses torch.nn.LayerNorm with its default eps
        "frontend": frontend,
        "cmvn_file": "am.mvn" if have_cmvn else None,
        "torch_dtype": {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[args.dtype],
        "converted_from": os.path.basename(os.path.abspath(pt)),
    }
    with open(os.path.join(args.out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(args.out, "model.safetensors"), enc, args.dtype)
    n = sum(t.numel() for t in enc.values())
    print(f"convert_funasr: {len(enc)} encoder tensors ({n / 1e6:.2f} M parameters, {len(sd) - len(enc)} others "
          f"dropped) -> {args.out} (input {sizes['input_size']}, d {sizes['output_size']}, heads {heads}, "
          f"blocks {sizes['num_blocks']}+{sizes['tp_blocks']}, kernel {sizes['kernel_size']}"
          f"{', am.mvn copied' if have_cmvn else ', no am.mvn'})")


if __name__ == "__main__":
    main()
