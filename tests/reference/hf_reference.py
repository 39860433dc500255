#!/usr/bin/env python3
"""Independent reference logits for ossgate's gpt-oss forward pass.

Loads a gpt-oss GGUF written by `ossgate-make-model` into Hugging Face
transformers' GptOssForCausalLM (float32, eager attention), runs a prompt
through it and records the logits at every position. The C++ test
tests/model/hf_reference_test.cc then requires the CPU backend to match them.

Everything between the file and transformers is written here from the GGUF
and MXFP4 specifications (docs/gpt-oss-spec.md §1-§2 of the project's shared
spec), independently of the C++ reader: a small GGUF parser and numpy
dequantizers for F32, F16, BF16, Q8_0 and MXFP4.

Runs on the GPU machine (torch + transformers installed there):
    python3 tests/reference/hf_reference.py --gguf tests/fixtures/hf_reference/tiny.gguf \
        --tokens 40 --seed 11 --out tests/fixtures/hf_reference/tiny
writes tiny.json (metadata), tiny.tokens (sha256, vocab, prompt ids as plain text)
and tiny.logits.bin (float32, [n, vocab]). With --every/--last only those
positions' logits are kept, listed in tiny.positions (count, then the
positions), so a 16,500-token prompt makes a fixture of a few hundred KB.
"""
import argparse
import hashlib
import json
import math
import struct
import sys

import numpy as np

GGUF_MAGIC = 0x46554747
# value type id -> struct format (scalars)
SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
F32, F16, Q8_0, BF16, MXFP4 = 0, 1, 8, 30, 39
BLOCK = {F32: (1, 4), F16: (1, 2), Q8_0: (32, 34), BF16: (1, 2), MXFP4: (32, 17)}
E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], np.float64)


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def scalar(self, fmt):
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.scalar("<Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8", errors="replace")
        self.pos += n
        return s

    def value(self, vtype):
        if vtype == 8:
            return self.string()
        if vtype == 9:
            etype = self.scalar("<I")
            count = self.scalar("<Q")
            return [self.value(etype) for _ in range(count)]
        return self.scalar(SCALAR_FORMATS[vtype])


def parse_gguf(data):
    r = Reader(data)
    assert r.scalar("<I") == GGUF_MAGIC, "not a GGUF file"
    version = r.scalar("<I")
    assert version in (2, 3), f"GGUF version {version}"
    n_tensors = r.scalar("<Q")
    n_kv = r.scalar("<Q")
    meta = {}
    for _ in range(n_kv):
        key = r.string()
        meta[key] = r.value(r.scalar("<I"))
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.scalar("<I")
        ne = [r.scalar("<q") for _ in range(n_dims)]
        ttype = r.scalar("<I")
        offset = r.scalar("<Q")
        infos.append((name, ne, ttype, offset))
    align = meta.get("general.alignment", 32)
    data_start = (r.pos + align - 1) // align * align
    tensors = {}
    for name, ne, ttype, offset in infos:
        elems = int(np.prod(ne))
        block_elems, block_bytes = BLOCK[ttype]
        nbytes = elems // block_elems * block_bytes
        raw = np.frombuffer(data, np.uint8, nbytes, data_start + offset)
        tensors[name] = dequantize(raw, ttype, elems).reshape(list(reversed(ne)))
    return meta, tensors


def dequantize(raw, ttype, elems):
    if ttype == F32:
        return raw.view("<f4").astype(np.float64)
    if ttype == F16:
        return raw.view("<f2").astype(np.float64)
    if ttype == BF16:
        return (raw.view("<u2").astype(np.uint32) << 16).view("<f4").astype(np.float64)
    if ttype == Q8_0:
        b = raw.reshape(-1, 34)
        d = b[:, :2].copy().view("<f2").astype(np.float64)
        q = b[:, 2:].view(np.int8).astype(np.float64)
        return (d * q).reshape(-1)
    if ttype == MXFP4:
        b = raw.reshape(-1, 17)
        scale = np.ldexp(1.0, b[:, 0].astype(np.int32) - 127)[:, None]
        lo = E2M1[b[:, 1:] & 0x0F]  # elements 0..15
        hi = E2M1[b[:, 1:] >> 4]    # elements 16..31
        return (np.concatenate([lo, hi], axis=1) * scale).reshape(-1)
    raise ValueError(f"unsupported ggml type {ttype}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--tokens", type=int, required=True, help="prompt length")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random prompt")
    ap.add_argument("--out", required=True, help="output path prefix")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--every", type=int, default=1,
                    help="keep the logits of every N-th position (with --last: long prompts, small fixtures)")
    ap.add_argument("--last", type=int, default=0, help="also keep the last M positions")
    ap.add_argument("--no_cpu_check", action="store_true", help="skip the CPU cross-check of the GPU run")
    ap.add_argument("--rope_fp64", action="store_true",
                    help="RoPE angles position * inv_freq in float64 (transformers multiplies in float32: at "
                         "position 12,000 that is ~1e-3 rad off and the logits ~3e-4; the project computes them "
                         "in float64)")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import GptOssConfig, GptOssForCausalLM

    data = open(args.gguf, "rb").read()
    meta, t = parse_gguf(data)
    assert meta["general.architecture"] == "gpt-oss"
    a = "gpt-oss."
    n_layers = meta[a + "block_count"]
    D = meta[a + "embedding_length"]
    H = meta[a + "attention.head_count"]
    Hkv = meta[a + "attention.head_count_kv"]
    hd = meta[a + "attention.key_length"]
    E = meta[a + "expert_count"]
    F = meta[a + "expert_feed_forward_length"]
    V = t["token_embd.weight"].shape[0]
    window = meta[a + "attention.sliding_window"]
    theta = meta[a + "rope.freq_base"]
    factor = meta[a + "rope.scaling.factor"]
    orig = meta[a + "rope.scaling.original_context_length"]

    config = GptOssConfig(
        num_hidden_layers=n_layers, hidden_size=D, intermediate_size=F, head_dim=hd,
        num_attention_heads=H, num_key_value_heads=Hkv, num_local_experts=E,
        num_experts_per_tok=meta[a + "expert_used_count"], vocab_size=V, sliding_window=window,
        max_position_embeddings=meta[a + "context_length"],
        rms_norm_eps=meta[a + "attention.layer_norm_rms_epsilon"],
        rope_parameters={"rope_type": "yarn", "rope_theta": theta, "factor": factor, "beta_fast": 32.0,
                         "beta_slow": 1.0, "truncate": False, "original_max_position_embeddings": orig},
        tie_word_embeddings=False, attention_bias=True)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = GptOssForCausalLM(config).to(torch.float32).eval()

    # The inverse frequencies must be the unrounded YaRN of the spec, with
    # the correction range clamped to [0, hd - 1] (matters below orig ~201).
    half = hd // 2
    inv = theta ** (-np.arange(0, hd, 2) / hd)
    low = max(0.0, half * math.log(orig / (32 * 2 * math.pi)) / math.log(theta))
    high = min(hd - 1.0, half * math.log(orig / (1 * 2 * math.pi)) / math.log(theta))
    ramp = np.clip((np.arange(half) - low) / (high - low), 0, 1)
    want = inv / factor * ramp + inv * (1 - ramp)
    got = model.model.rotary_emb.inv_freq.double().numpy()
    assert np.allclose(got, want, rtol=1e-6), f"HF inv_freq differs from the spec: {got} vs {want}"
    assert abs(model.model.rotary_emb.attention_scaling - (0.1 * math.log(factor) + 1)) < 1e-6
    if args.rope_fp64:
        rotary = model.model.rotary_emb
        original = rotary.forward
        inv64 = torch.tensor(want, dtype=torch.float64)
        scaling = 0.1 * math.log(factor) + 1 if factor > 1 else 1.0

        def forward_fp64(x, position_ids):
            cos32, _ = original(x, position_ids)  # only for the layout transformers expects
            freqs = position_ids.to(torch.float64)[:, :, None] * inv64.to(x.device)[None, None, :]
            if cos32.shape[-1] == 2 * freqs.shape[-1]:
                freqs = torch.cat((freqs, freqs), dim=-1)
            assert freqs.shape == cos32.shape, f"rotary layout {tuple(cos32.shape)} vs {tuple(freqs.shape)}"
            return (freqs.cos() * scaling).to(x.dtype), (freqs.sin() * scaling).to(x.dtype)

        rotary.forward = forward_fp64

    sd = {}
    T = lambda x: torch.tensor(np.ascontiguousarray(x), dtype=torch.float32)
    sd["model.embed_tokens.weight"] = T(t["token_embd.weight"])
    sd["model.norm.weight"] = T(t["output_norm.weight"])
    sd["lm_head.weight"] = T(t["output.weight"])
    for l in range(n_layers):
        g, p = f"blk.{l}.", f"model.layers.{l}."
        sd[p + "input_layernorm.weight"] = T(t[g + "attn_norm.weight"])
        sd[p + "post_attention_layernorm.weight"] = T(t[g + "post_attention_norm.weight"])
        for ours, theirs in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"), ("attn_output", "o_proj")):
            sd[p + f"self_attn.{theirs}.weight"] = T(t[g + ours + ".weight"])
            sd[p + f"self_attn.{theirs}.bias"] = T(t[g + ours + ".bias"])
        sd[p + "self_attn.sinks"] = T(t[g + "attn_sinks.weight"])
        sd[p + "mlp.router.weight"] = T(t[g + "ffn_gate_inp.weight"])
        sd[p + "mlp.router.bias"] = T(t[g + "ffn_gate_inp.bias"])
        gate, up = t[g + "ffn_gate_exps.weight"], t[g + "ffn_up_exps.weight"]  # [E, F, D]
        gate_up = np.empty((E, D, 2 * F))
        gate_up[:, :, 0::2] = gate.transpose(0, 2, 1)  # even columns: gate
        gate_up[:, :, 1::2] = up.transpose(0, 2, 1)    # odd columns: up
        gate_up_b = np.empty((E, 2 * F))
        gate_up_b[:, 0::2] = t[g + "ffn_gate_exps.bias"]
        gate_up_b[:, 1::2] = t[g + "ffn_up_exps.bias"]
        sd[p + "mlp.experts.gate_up_proj"] = T(gate_up)
        sd[p + "mlp.experts.gate_up_proj_bias"] = T(gate_up_b)
        sd[p + "mlp.experts.down_proj"] = T(t[g + "ffn_down_exps.weight"].transpose(0, 2, 1))  # [E, F, D]
        sd[p + "mlp.experts.down_proj_bias"] = T(t[g + "ffn_down_exps.bias"])
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if "rotary" not in m]
    assert not missing and not unexpected, f"state dict mismatch: missing {missing}, unexpected {unexpected}"

    rng = np.random.default_rng(args.seed)
    tokens = rng.integers(0, V, size=args.tokens).tolist()
    ids = torch.tensor([tokens])
    results = {}
    devices = [args.device, "cpu"] if args.device != "cpu" else ["cpu"]
    if args.no_cpu_check and len(devices) == 2 and torch.cuda.is_available():
        devices = [args.device]
    for device in devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            continue
        m = model.to(device)
        with torch.no_grad():
            results[device] = m(ids.to(device)).logits[0].double().cpu().numpy()
    ref = results[args.device] if args.device in results else results["cpu"]
    cross = None
    if len(results) == 2:
        a_, b_ = results[args.device], results["cpu"]
        cross = float(max(np.linalg.norm(a_[i] - b_[i]) / np.linalg.norm(b_[i]) for i in range(len(tokens))))

    n = len(tokens)
    keep = sorted(set(range(0, n, args.every)) | set(range(max(0, n - args.last), n)))
    ref[keep].astype("<f4").tofile(args.out + ".logits.bin")
    info = {
        "gguf": args.gguf.split("/")[-1],
        "gguf_sha256": hashlib.sha256(data).hexdigest(),
        "tokens": tokens,
        "vocab": V,
        "positions": len(tokens),
        "kept_positions": len(keep),
        "device": args.device if args.device in results else "cpu",
        "gpu_vs_cpu_max_rel_err": cross,
        "rope_angles": "float64" if args.rope_fp64 else "float32 (transformers)",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "command": " ".join(sys.argv),
    }
    with open(args.out + ".json", "w") as f:
        json.dump(info, f, indent=1)
    # Plain-text copy for the C++ test: sha256, vocab, then the prompt ids.
    with open(args.out + ".tokens", "w") as f:
        f.write(f"{info['gguf_sha256']} {V} {len(tokens)}\n" + " ".join(map(str, tokens)) + "\n")
    # The positions whose logits were kept, when not all of them.
    if len(keep) != n:
        with open(args.out + ".positions", "w") as f:
            f.write(f"{len(keep)}\n" + " ".join(map(str, keep)) + "\n")
    print(f"{args.out}: {len(keep)} of {n} positions x {V} logits, gpu-vs-cpu max rel err {cross}")


if __name__ == "__main__":
    main()
