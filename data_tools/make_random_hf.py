#!/usr/bin/env python3
"""Writes randomly initialised Hugging Face directories at the shapes of a vox model config, with transformers:
the `llm` part as Qwen2ForCausalLM and a whisper `audio_encoder` as WhisperForConditionalGeneration (a one-layer
decoder, which vox skips). For smoke tests and speed measurements of the real-shape recipes where pretrained
weights are not at hand: the files have exactly the names, shapes and dtype (bf16) of the published checkpoints.

usage: make_random_hf.py MODEL.yaml OUT_DIR [--seed N] [--dtype bf16|f32]
writes OUT_DIR/llm and, for a whisper encoder, OUT_DIR/audio_encoder; prints each directory.
Needs torch, transformers and PyYAML (present where PyTorch is; not needed by vox itself).
"""
import argparse
import os
import sys

import torch
import yaml


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_yaml")
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    a = ap.parse_args()
    import transformers  # late: the usage above works without it

    with open(a.model_yaml, encoding="utf-8") as f:
        model = (yaml.safe_load(f) or {}).get("model")
    if not isinstance(model, dict) or not isinstance(model.get("llm"), dict):
        sys.exit(f"{a.model_yaml}: expected a `model:` map with an `llm` part")
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    torch.manual_seed(a.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # initialising billions of values: the GPU if present

    llm = model["llm"]
    qcfg = transformers.Qwen2Config(
        vocab_size=llm["vocab_size"], hidden_size=llm["hidden_size"], num_hidden_layers=llm["num_hidden_layers"],
        num_attention_heads=llm["num_attention_heads"], num_key_value_heads=llm["num_key_value_heads"],
        intermediate_size=llm["intermediate_size"], max_position_embeddings=llm.get("max_position_embeddings", 32768),
        rope_theta=float(llm.get("rope_theta", 1e6)), rms_norm_eps=float(llm.get("rms_norm_eps", 1e-6)),
        tie_word_embeddings=bool(llm.get("tie_word_embeddings", False)), hidden_act="silu")
    with torch.device(device):
        m = transformers.Qwen2ForCausalLM(qcfg).to(dtype)
    d = os.path.join(a.out_dir, "llm")
    m.save_pretrained(d, safe_serialization=True)
    print(d)
    del m

    enc = model.get("audio_encoder")
    if isinstance(enc, dict) and enc.get("kind") == "whisper":
        wcfg = transformers.WhisperConfig(
            num_mel_bins=enc["num_mel_bins"], d_model=enc["d_model"], encoder_layers=enc["encoder_layers"],
            encoder_attention_heads=enc["encoder_attention_heads"], encoder_ffn_dim=enc["encoder_ffn_dim"],
            max_source_positions=enc.get("max_source_positions", 1500), decoder_layers=1,
            decoder_attention_heads=enc["encoder_attention_heads"], decoder_ffn_dim=enc["encoder_ffn_dim"])
        with torch.device(device):
            w = transformers.WhisperForConditionalGeneration(wcfg).to(dtype)
        d = os.path.join(a.out_dir, "audio_encoder")
        w.save_pretrained(d, safe_serialization=True)
        print(d)


if __name__ == "__main__":
    main()
