#!/usr/bin/env python3
"""Independent reference logits for ossgate's forward passes.

Loads a GGUF written by `ossgate-make-model` into the Hugging Face
transformers model of its family (general.architecture): GptOssForCausalLM
(gpt-oss), Qwen2ForCausalLM (qwen2) or Phi3ForCausalLM (phi3), float32,
eager attention, the config built from the GGUF keys and every weight
dequantized to float32; runs a prompt through it and records the logits at
every position, then a greedy continuation. The C++ test
tests/model/hf_reference_test.cc then requires the CPU backend to match
both.

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
With --greedy N (default 64; 0 for none) the greedy continuation of the
prompt (argmax of the last position's logits, appended, N times, each step
a full forward pass without a cache) goes to tiny.greedy (prompt length and
N, then the N ids). --check_only parses the file and builds the state dict
and config arguments without torch (numpy only), to test the mapping.
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


def rope_arguments(config_class, theta):
    """The plain-RoPE argument of a transformers config class: rope_parameters
    in transformers 5, rope_theta before."""
    import inspect
    if "rope_parameters" in inspect.signature(config_class.__init__).parameters:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": float(theta)}}
    return {"rope_theta": float(theta)}


def gpt_oss_model(meta, t):
    """GptOssConfig from the gpt-oss keys and the state dict of the GGUF tensors."""
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
    kwargs = dict(
        num_hidden_layers=n_layers, hidden_size=D, intermediate_size=F, head_dim=hd,
        num_attention_heads=H, num_key_value_heads=Hkv, num_local_experts=E,
        num_experts_per_tok=meta[a + "expert_used_count"], vocab_size=V, sliding_window=window,
        max_position_embeddings=meta[a + "context_length"],
        rms_norm_eps=meta[a + "attention.layer_norm_rms_epsilon"],
        rope_parameters={"rope_type": "yarn", "rope_theta": theta, "factor": factor, "beta_fast": 32.0,
                         "beta_slow": 1.0, "truncate": False, "original_max_position_embeddings": orig},
        tie_word_embeddings=False, attention_bias=True)

    # The inverse frequencies must be the unrounded YaRN of the spec, with
    # the correction range clamped to [0, hd - 1] (matters below orig ~201).
    half = hd // 2
    inv = theta ** (-np.arange(0, hd, 2) / hd)
    low = max(0.0, half * math.log(orig / (32 * 2 * math.pi)) / math.log(theta))
    high = min(hd - 1.0, half * math.log(orig / (1 * 2 * math.pi)) / math.log(theta))
    ramp = np.clip((np.arange(half) - low) / (high - low), 0, 1)
    want_inv_freq = inv / factor * ramp + inv * (1 - ramp)

    sd = {}
    sd["model.embed_tokens.weight"] = t["token_embd.weight"]
    sd["model.norm.weight"] = t["output_norm.weight"]
    sd["lm_head.weight"] = t["output.weight"]
    for l in range(n_layers):
        g, p = f"blk.{l}.", f"model.layers.{l}."
        sd[p + "input_layernorm.weight"] = t[g + "attn_norm.weight"]
        sd[p + "post_attention_layernorm.weight"] = t[g + "post_attention_norm.weight"]
        for ours, theirs in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"), ("attn_output", "o_proj")):
            sd[p + f"self_attn.{theirs}.weight"] = t[g + ours + ".weight"]
            sd[p + f"self_attn.{theirs}.bias"] = t[g + ours + ".bias"]
        sd[p + "self_attn.sinks"] = t[g + "attn_sinks.weight"]
        sd[p + "mlp.router.weight"] = t[g + "ffn_gate_inp.weight"]
        sd[p + "mlp.router.bias"] = t[g + "ffn_gate_inp.bias"]
        gate, up = t[g + "ffn_gate_exps.weight"], t[g + "ffn_up_exps.weight"]  # [E, F, D]
        gate_up = np.empty((E, D, 2 * F))
        gate_up[:, :, 0::2] = gate.transpose(0, 2, 1)  # even columns: gate
        gate_up[:, :, 1::2] = up.transpose(0, 2, 1)    # odd columns: up
        gate_up_b = np.empty((E, 2 * F))
        gate_up_b[:, 0::2] = t[g + "ffn_gate_exps.bias"]
        gate_up_b[:, 1::2] = t[g + "ffn_up_exps.bias"]
        sd[p + "mlp.experts.gate_up_proj"] = gate_up
        sd[p + "mlp.experts.gate_up_proj_bias"] = gate_up_b
        sd[p + "mlp.experts.down_proj"] = t[g + "ffn_down_exps.weight"].transpose(0, 2, 1)  # [E, F, D]
        sd[p + "mlp.experts.down_proj_bias"] = t[g + "ffn_down_exps.bias"]
    return "GptOss", kwargs, sd, want_inv_freq, 0.1 * math.log(factor) + 1


def dense_model(meta, t, arch):
    """Qwen2Config / Phi3Config from the keys llama.cpp's converter writes, and
    the state dict: qwen2's separate q/k/v (with biases) and gate/up/down,
    phi3's fused qkv_proj and gate_up_proj, which are the GGUF's attn_qkv and
    ffn_up as they are (rows q, k, v; gate then up)."""
    a = arch + "."
    n_layers = meta[a + "block_count"]
    D = meta[a + "embedding_length"]
    H = meta[a + "attention.head_count"]
    Hkv = meta.get(a + "attention.head_count_kv", H)
    hd = meta.get(a + "attention.key_length", D // H)
    F = meta[a + "feed_forward_length"]
    V = t["token_embd.weight"].shape[0]
    theta = meta[a + "rope.freq_base"]
    assert a + "rope.scaling.type" not in meta, "RoPE scaling is not supported for the dense families"
    tied = "output.weight" not in t
    kwargs = dict(
        vocab_size=V, hidden_size=D, intermediate_size=F, num_hidden_layers=n_layers,
        num_attention_heads=H, num_key_value_heads=Hkv, max_position_embeddings=meta[a + "context_length"],
        rms_norm_eps=meta[a + "attention.layer_norm_rms_epsilon"], tie_word_embeddings=tied, hidden_act="silu",
        attention_dropout=0.0)
    if arch == "qwen2":
        kwargs.update(use_sliding_window=False)  # Qwen2.5; the converter writes no window
    else:
        assert "rope_factors_long.weight" not in t, "LongRoPE (128k Phi-3) is not supported"
        # Phi3Config's pad_token_id (32000) would be past a small vocabulary.
        kwargs.update(sliding_window=meta.get(a + "attention.sliding_window", 0) or None,
                      pad_token_id=None, resid_pdrop=0.0, embd_pdrop=0.0)
    want_inv_freq = 1.0 / theta ** (np.arange(0, hd, 2) / hd)

    sd = {"model.embed_tokens.weight": t["token_embd.weight"], "model.norm.weight": t["output_norm.weight"]}
    if not tied:
        sd["lm_head.weight"] = t["output.weight"]
    for l in range(n_layers):
        g, p = f"blk.{l}.", f"model.layers.{l}."
        sd[p + "input_layernorm.weight"] = t[g + "attn_norm.weight"]
        sd[p + "post_attention_layernorm.weight"] = t[g + "ffn_norm.weight"]
        sd[p + "self_attn.o_proj.weight"] = t[g + "attn_output.weight"]
        sd[p + "mlp.down_proj.weight"] = t[g + "ffn_down.weight"]
        if arch == "qwen2":
            for ours, theirs in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj")):
                sd[p + f"self_attn.{theirs}.weight"] = t[g + ours + ".weight"]
                sd[p + f"self_attn.{theirs}.bias"] = t[g + ours + ".bias"]
            sd[p + "mlp.gate_proj.weight"] = t[g + "ffn_gate.weight"]
            sd[p + "mlp.up_proj.weight"] = t[g + "ffn_up.weight"]
        else:
            assert t[g + "attn_qkv.weight"].shape == (H * hd + 2 * Hkv * hd, D)
            assert t[g + "ffn_up.weight"].shape == (2 * F, D)
            sd[p + "self_attn.qkv_proj.weight"] = t[g + "attn_qkv.weight"]
            sd[p + "mlp.gate_up_proj.weight"] = t[g + "ffn_up.weight"]
    kind = "Qwen2" if arch == "qwen2" else "Phi3"
    return kind, dict(kwargs, head_dim=hd), sd, want_inv_freq, 1.0


def build_model(meta, t):
    arch = meta["general.architecture"]
    if arch == "gpt-oss":
        return gpt_oss_model(meta, t)
    if arch in ("qwen2", "phi3"):
        return dense_model(meta, t, arch)
    raise SystemExit(f"unsupported general.architecture {arch!r} (gpt-oss, qwen2, phi3)")


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
    ap.add_argument("--greedy", type=int, default=64, help="greedy continuation length (0: none)")
    ap.add_argument("--rope_fp64", action="store_true",
                    help="RoPE angles position * inv_freq in float64 (transformers multiplies in float32: at "
                         "position 12,000 that is ~1e-3 rad off and the logits ~3e-4; the project computes them "
                         "in float64)")
    ap.add_argument("--check_only", action="store_true",
                    help="parse and map the file without torch, print the config arguments and exit")
    args = ap.parse_args()

    data = open(args.gguf, "rb").read()
    meta, t = parse_gguf(data)
    kind, kwargs, sd_np, want_inv_freq, want_attention_scaling = build_model(meta, t)
    V = t["token_embd.weight"].shape[0]
    if args.check_only:
        print(f"{kind}: {len(sd_np)} tensors mapped; config {sorted(kwargs.items())}")
        return

    import torch
    import transformers
    config_class = getattr(transformers, kind + "Config")
    model_class = getattr(transformers, kind + "ForCausalLM")
    if kind != "GptOss":
        theta = meta[meta["general.architecture"] + ".rope.freq_base"]
        head_dim = kwargs.pop("head_dim")
        kwargs.update(rope_arguments(config_class, theta))
    config = config_class(**kwargs)
    if kind != "GptOss":
        config.head_dim = head_dim  # read by the attention and RoPE as getattr(config, "head_dim", D // H)
        if kind == "Phi3":
            assert config.sliding_window == kwargs["sliding_window"]
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = model_class(config).to(torch.float32).eval()

    got = model.model.rotary_emb.inv_freq.double().numpy()
    assert np.allclose(got, want_inv_freq, rtol=1e-6), f"HF inv_freq differs from ours: {got} vs {want_inv_freq}"
    assert abs(model.model.rotary_emb.attention_scaling - want_attention_scaling) < 1e-6
    if args.rope_fp64:
        rotary = model.model.rotary_emb
        original = rotary.forward
        inv64 = torch.tensor(want_inv_freq, dtype=torch.float64)

        def forward_fp64(x, position_ids):
            cos32, _ = original(x, position_ids)  # only for the layout transformers expects
            freqs = position_ids.to(torch.float64)[:, :, None] * inv64.to(x.device)[None, None, :]
            if cos32.shape[-1] == 2 * freqs.shape[-1]:
                freqs = torch.cat((freqs, freqs), dim=-1)
            assert freqs.shape == cos32.shape, f"rotary layout {tuple(cos32.shape)} vs {tuple(freqs.shape)}"
            return ((freqs.cos() * want_attention_scaling).to(x.dtype),
                    (freqs.sin() * want_attention_scaling).to(x.dtype))

        rotary.forward = forward_fp64

    sd = {k: torch.tensor(np.ascontiguousarray(v), dtype=torch.float32) for k, v in sd_np.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    tied = bool(kwargs.get("tie_word_embeddings"))
    missing = [m for m in missing if "rotary" not in m and not (tied and m == "lm_head.weight")]
    assert not missing and not unexpected, f"state dict mismatch: missing {missing}, unexpected {unexpected}"
    if tied:
        assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight), "lm_head is not tied"

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
    device = args.device if args.device in results else "cpu"
    ref = results[device]
    cross = None
    if len(results) == 2:
        a_, b_ = results[args.device], results["cpu"]
        cross = float(max(np.linalg.norm(a_[i] - b_[i]) / np.linalg.norm(b_[i]) for i in range(len(tokens))))

    # Greedy continuation: full forward passes without a cache, so nothing of
    # HF's cache or generate() logic stands between the logits and the ids.
    greedy, margins = [], []
    m = model.to(device)
    seq = list(tokens)
    with torch.no_grad():
        for _ in range(args.greedy):
            last = m(torch.tensor([seq], device=device)).logits[0, -1].double().cpu().numpy()
            top2 = np.sort(last)[-2:]
            nxt = int(np.argmax(last))
            greedy.append(nxt)
            margins.append(float(top2[1] - top2[0]))
            seq.append(nxt)

    n = len(tokens)
    keep = sorted(set(range(0, n, args.every)) | set(range(max(0, n - args.last), n)))
    ref[keep].astype("<f4").tofile(args.out + ".logits.bin")
    info = {
        "gguf": args.gguf.split("/")[-1],
        "gguf_sha256": hashlib.sha256(data).hexdigest(),
        "architecture": meta["general.architecture"],
        "tokens": tokens,
        "vocab": V,
        "positions": len(tokens),
        "kept_positions": len(keep),
        "device": device,
        "gpu_vs_cpu_max_rel_err": cross,
        "rope_angles": "float64" if args.rope_fp64 else "float32 (transformers)",
        "greedy": greedy,
        "greedy_min_top2_margin": min(margins) if margins else None,
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
    if greedy:
        with open(args.out + ".greedy", "w") as f:
            f.write(f"{n} {len(greedy)}\n" + " ".join(map(str, greedy)) + "\n")
    print(f"{args.out}: {meta['general.architecture']}, {len(keep)} of {n} positions x {V} logits, "
          f"gpu-vs-cpu max rel err {cross}, {len(greedy)} greedy tokens (smallest top-2 margin "
          f"{info['greedy_min_top2_margin']})")


if __name__ == "__main__":
    main()
