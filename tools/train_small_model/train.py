#!/usr/bin/env python3
"""Trains ossgate's bundled small gpt-oss model (docs/small_model.md).

The model is the gpt-oss architecture unchanged (spec §5): RMSNorm, attention
with biases, grouped KV heads, learned attention sinks, YaRN RoPE (OpenAI
variant: correction range not rounded), sliding-window attention (128
tokens) on even layers and full attention on odd layers, a router with bias
choosing the top 4 of E experts with a softmax over the chosen 4, clamped
SwiGLU experts (alpha 1.702, limit 7, "+1" on the linear half) with biases,
untied output matrix. Only the sizes are small.

Commands:
  train.py train --data DIR --out DIR [--seed 1] [--steps N] [--qat_steps N] ...
      DIR holds train.bin and valid.bin (and test.bin) from
      `ossgate-small-data encode`. Writes to --out: weights.bin.000, .001, ...
      (the weights file for ossgate-pack-model, cut in 15 MB parts), log.txt
      and summary.json. Runs on CUDA when available (bf16 autocast).
  train.py fixture --gguf models/ossgate-small.gguf --tokens test.bin --out DIR
      The reference logits for tests/quality: this file's forward pass in
      float32 on the CPU over the weights as the GGUF stores them (MXFP4 and
      Q8_0 decoded; ossgate-pack-model writes train.py's bytes unchanged), at
      fixed positions of held-out text.

Training: AdamW, warm-up then cosine decay, dropout on the residual
branches, a small load-balancing loss on the router, validation loss every
--eval_every steps, the best weights kept; then --qat_steps steps of
quantization-aware fine-tuning from the best weights: every matrix the GGUF
stores quantized (experts MXFP4, the other matrices Q8_0) is replaced in the
forward pass by its quantized-and-decoded value (straight-through gradient).
The quantizers here produce exactly the bytes of the project's
gguf::QuantizeRow (ossgate-pack-model re-checks that on master copies).
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as Fn

DEFAULT_CONFIG = dict(
    n_layers=8, d_model=256, n_heads=8, n_kv_heads=2, head_dim=64, n_experts=16, n_experts_used=4, d_ff=256,
    vocab_size=0, context_length=4096, sliding_window=128, rms_eps=1e-5, rope_theta=150000.0,
    rope_scaling_factor=32.0, rope_original_context=4096)
SWIGLU_ALPHA = 1.702
SWIGLU_LIMIT = 7.0

# ---------------------------------------------------------------------------
# Quantizers (bit-exact with inference_worker/gguf/ggml_types.cc QuantizeRow).

MXFP4_VALUES = torch.tensor([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], dtype=torch.float64)
# Midpoints of the doubled E2M1 magnitudes {0,1,2,3,4,6,8,12}; a value on a
# midpoint goes to the smaller magnitude, as in ggml.
MXFP4_THRESHOLDS = torch.tensor([0.5, 1.5, 2.5, 3.5, 5.0, 7.0, 10.0], dtype=torch.float64)


def mxfp4_encode(x):
    """x: float32 [..., 32] blocks -> (e uint8 [...], codes uint8 [..., 32])."""
    x = x.float()
    amax = x.abs().amax(-1)
    _, ex = torch.frexp(amax)  # amax = m * 2^ex, m in [0.5, 1): floor(log2 amax) = ex - 1
    e = torch.where(amax > 0, ex.long() - 1 - 2 + 127, torch.zeros_like(ex, dtype=torch.long)).clamp(0, 254)
    # v = x / 2^(e-128), exact in float64 (a power-of-two scaling).
    v = x.double() * torch.pow(2.0, (128 - e).double()).unsqueeze(-1)
    mag = v.abs()
    idx = (mag.unsqueeze(-1) > MXFP4_THRESHOLDS.to(x.device)).sum(-1)
    codes = torch.where((v < 0) & (idx > 0), idx + 8, idx)
    return e.to(torch.uint8), codes.to(torch.uint8)


def mxfp4_decode(e, codes):
    vals = MXFP4_VALUES.to(codes.device)[codes.long()]
    return (vals * torch.pow(2.0, e.double() - 128).unsqueeze(-1)).float()


def mxfp4_fake(w):
    """Quantize-decode w (last dim a multiple of 32) with a straight-through gradient."""
    with torch.no_grad():
        b = w.detach().float().reshape(-1, 32)
        q = mxfp4_decode(*mxfp4_encode(b)).reshape(w.shape).to(w.dtype)
    return w + (q - w).detach()


def mxfp4_bytes(w):
    """ggml block_mxfp4 bytes of w [rows, cols] (cols a multiple of 32)."""
    e, codes = mxfp4_encode(w.detach().cpu().float().reshape(-1, 32))
    c = codes.to(torch.int32)
    qs = (c[:, :16] | (c[:, 16:] << 4)).to(torch.uint8)
    return torch.cat([e.unsqueeze(-1), qs], dim=-1).numpy().tobytes()


def round_half_away(v):
    v = v.double()
    return torch.sign(v) * torch.floor(v.abs() + 0.5)


def q8_encode(x):
    """x: float32 [..., 32] -> (d as float16 [...], q int8 [..., 32]). Same arithmetic as
    QuantizeRow: d = amax / 127 and id = 1 / d in float32, q = lround(clamp(x * id))."""
    x = x.float()
    amax = x.abs().amax(-1)
    d = amax / 127.0
    inv = torch.where(d != 0, 1.0 / torch.where(d != 0, d, torch.ones_like(d)), torch.zeros_like(d))
    q = round_half_away((x * inv.unsqueeze(-1)).clamp(-127.0, 127.0)).to(torch.int8)
    return d.half(), q


def q8_decode(d, q):
    return d.float().unsqueeze(-1) * q.float()


def q8_fake(w):
    with torch.no_grad():
        b = w.detach().float().reshape(-1, 32)
        q = q8_decode(*q8_encode(b)).reshape(w.shape).to(w.dtype)
    return w + (q - w).detach()


def q8_bytes(w):
    d, q = q8_encode(w.detach().cpu().float().reshape(-1, 32))
    dh = d.numpy().view(np.uint16).reshape(-1, 1).view(np.uint8).reshape(-1, 2)
    return np.concatenate([dh, q.numpy().view(np.uint8)], axis=1).tobytes()


# ---------------------------------------------------------------------------
# The model.


def rope_tables(cfg, n_pos):
    """cos and sin (times the YaRN attention factor) as the engine computes them
    (inference_worker/model/model_config.cc ComputeRope, cpu_ops.cc ApplyRope)."""
    half = cfg["head_dim"] // 2
    base = float(np.float32(cfg["rope_theta"]))
    inv = np.array([1.0 / base ** (2.0 * i / cfg["head_dim"]) for i in range(half)])
    factor = 1.0
    s = float(np.float32(cfg["rope_scaling_factor"]))
    if s > 1:
        orig = cfg["rope_original_context"]
        low = half * math.log(orig / (32.0 * 2 * math.pi)) / math.log(base)
        high = half * math.log(orig / (1.0 * 2 * math.pi)) / math.log(base)
        ramp = np.clip((np.arange(half) - low) / (high - low), 0.0, 1.0)
        inv = ramp * (inv / s) + (1.0 - ramp) * inv
        factor = 0.1 * math.log(s) + 1.0
    ang = np.arange(n_pos, dtype=np.float64)[:, None] * inv[None, :]
    cos = (np.cos(ang) * factor).astype(np.float32)
    sin = (np.sin(ang) * factor).astype(np.float32)
    return torch.from_numpy(cos), torch.from_numpy(sin)


def apply_rope(x, cos, sin):
    """x [B, T, heads, hd]; NeoX half split."""
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


def rms_norm(x, w, eps):
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w


class Block(nn.Module):
    def __init__(self, cfg, layer):
        super().__init__()
        D, H, Hkv, hd = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"]
        E, F = cfg["n_experts"], cfg["d_ff"]
        self.cfg = cfg
        self.sliding = cfg["sliding_window"] > 0 and layer % 2 == 0
        self.attn_norm = nn.Parameter(torch.ones(D))
        self.wq = nn.Linear(D, H * hd)
        self.wk = nn.Linear(D, Hkv * hd)
        self.wv = nn.Linear(D, Hkv * hd)
        self.wo = nn.Linear(H * hd, D)
        self.sinks = nn.Parameter(torch.zeros(H))
        self.post_norm = nn.Parameter(torch.ones(D))
        self.router = nn.Linear(D, E)
        self.w_gate = nn.Parameter(torch.empty(E, F, D))  # GGUF ne [D, F, E]
        self.b_gate = nn.Parameter(torch.zeros(E, F))
        self.w_up = nn.Parameter(torch.empty(E, F, D))
        self.b_up = nn.Parameter(torch.zeros(E, F))
        self.w_down = nn.Parameter(torch.empty(E, D, F))  # GGUF ne [F, D, E]
        self.b_down = nn.Parameter(torch.zeros(E, D))

    def forward(self, x, cos, sin, mask, qat, dropout):
        cfg = self.cfg
        B, T, D = x.shape
        H, Hkv, hd, E, F = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"], cfg["n_experts"], cfg["d_ff"]
        dense = q8_fake if qat else (lambda w: w)
        expert = mxfp4_fake if qat else (lambda w: w)

        h = rms_norm(x, self.attn_norm, cfg["rms_eps"])
        q = Fn.linear(h, dense(self.wq.weight), self.wq.bias).view(B, T, H, hd)
        k = Fn.linear(h, dense(self.wk.weight), self.wk.bias).view(B, T, Hkv, hd)
        v = Fn.linear(h, dense(self.wv.weight), self.wv.bias).view(B, T, Hkv, hd)
        q = apply_rope(q, cos, sin).transpose(1, 2)  # [B, H, T, hd]
        k = apply_rope(k, cos, sin).transpose(1, 2)
        v = v.transpose(1, 2)
        group = H // Hkv
        k = k.repeat_interleave(group, dim=1)  # q head h uses kv head h // group
        v = v.repeat_interleave(group, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)).float() * (1.0 / math.sqrt(hd))
        scores = scores.masked_fill(~mask, float("-inf"))
        sink = self.sinks.float().view(1, H, 1, 1).expand(B, H, T, 1)
        probs = torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1)[..., :T]
        o = torch.matmul(probs.to(v.dtype), v).transpose(1, 2).reshape(B, T, H * hd)
        o = Fn.linear(o, dense(self.wo.weight), self.wo.bias)
        x = x + Fn.dropout(o.float(), dropout, self.training)

        h2 = rms_norm(x, self.post_norm, cfg["rms_eps"]).view(B * T, D)
        logits = Fn.linear(h2, self.router.weight, self.router.bias).float()  # [N, E]
        top_v, top_i = logits.topk(cfg["n_experts_used"], dim=-1)
        gates = torch.zeros_like(logits).scatter(1, top_i, torch.softmax(top_v, dim=-1))
        # Every expert on every token, weighted by the (mostly zero) gates:
        # three large matrix products instead of a dispatch.
        wg = expert(self.w_gate).reshape(E * F, D)
        wu = expert(self.w_up).reshape(E * F, D)
        g = (Fn.linear(h2, wg).float() + self.b_gate.reshape(-1)).view(-1, E, F)
        u = (Fn.linear(h2, wu).float() + self.b_up.reshape(-1)).view(-1, E, F)
        g = g.clamp(max=SWIGLU_LIMIT)
        u = u.clamp(-SWIGLU_LIMIT, SWIGLU_LIMIT)
        a = g * torch.sigmoid(SWIGLU_ALPHA * g) * (u + 1.0)
        a = (a * gates.unsqueeze(-1)).reshape(-1, E * F)
        wd = expert(self.w_down).permute(1, 0, 2).reshape(D, E * F)  # [D, (e, f)]
        y = Fn.linear(a, wd).float() + gates @ self.b_down.float()
        x = x + Fn.dropout(y.view(B, T, D), dropout, self.training)

        # Load balancing (Switch Transformer): E * sum_e f_e * p_e.
        frac = (gates > 0).float().mean(0) / cfg["n_experts_used"]
        prob = torch.softmax(logits, dim=-1).mean(0)
        aux = E * (frac * prob).sum()
        return x, aux


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        V, D = cfg["vocab_size"], cfg["d_model"]
        self.embed = nn.Parameter(torch.empty(V, D))
        self.blocks = nn.ModuleList([Block(cfg, l) for l in range(cfg["n_layers"])])
        self.out_norm = nn.Parameter(torch.ones(D))
        self.out = nn.Parameter(torch.empty(V, D))
        self.qat = False
        self.dropout = 0.0
        self._rope = {}

    def init_weights(self, std=0.02):
        L = self.cfg["n_layers"]
        for name, p in self.named_parameters():
            if name.endswith("norm") or name.endswith("post_norm") or name == "out_norm":
                nn.init.ones_(p)
            elif p.dim() == 1 or name.endswith("sinks") or ".b_" in name:
                nn.init.zeros_(p)
            elif name.endswith("wo.weight") or name.endswith("w_down"):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * L))
            else:
                nn.init.normal_(p, 0.0, std)

    def rope(self, T, device):
        key = (T, str(device))
        if key not in self._rope:
            cos, sin = rope_tables(self.cfg, T)
            self._rope[key] = (cos.to(device), sin.to(device))
        return self._rope[key]

    def forward(self, tokens):
        B, T = tokens.shape
        cos, sin = self.rope(T, tokens.device)
        i = torch.arange(T, device=tokens.device)
        causal = i[None, :] <= i[:, None]
        window = causal & (i[:, None] - i[None, :] < self.cfg["sliding_window"])
        emb = q8_fake(self.embed) if self.qat else self.embed
        x = emb[tokens].float()
        aux = 0.0
        for blk in self.blocks:
            x, a = blk(x, cos, sin, window if blk.sliding else causal, self.qat, self.dropout)
            aux = aux + a
        h = rms_norm(x, self.out_norm, self.cfg["rms_eps"])
        out = q8_fake(self.out) if self.qat else self.out
        return Fn.linear(h, out).float(), aux / len(self.blocks)


# ---------------------------------------------------------------------------
# Data.


def read_tokens(path):
    raw = open(path, "rb").read()
    magic, version, n, n_chat = np.frombuffer(raw[:16], dtype="<u4")
    if magic != 0x4B54534F or version != 1:
        sys.exit("%s: not an ossgate token file" % path)
    tokens = np.frombuffer(raw, dtype="<u2", count=n, offset=16).astype(np.int64)
    off = 16 + 2 * n + (2 if n % 2 else 0)
    chats = np.frombuffer(raw, dtype="<u4", count=n_chat, offset=off).astype(np.int64)
    return tokens, chats


# ---------------------------------------------------------------------------
# Export.


def export_tensors(model):
    """(name, type, ne, bytes) in GGUF terms, plus master copies to check."""
    cfg = model.cfg
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    f32 = lambda t: t.contiguous().numpy().astype("<f4").tobytes()
    out = []

    def add(name, typ, t):
        ne = list(reversed(t.shape))
        data = {"F32": f32, "Q8_0": q8_bytes, "MXFP4": mxfp4_bytes}[typ](t.reshape(-1, t.shape[-1]) if typ != "F32" else t)
        out.append((name, typ, ne, data))

    add("token_embd.weight", "Q8_0", sd["embed"])
    for l in range(cfg["n_layers"]):
        p, s = "blk.%d." % l, "blocks.%d." % l
        add(p + "attn_norm.weight", "F32", sd[s + "attn_norm"])
        for g, m in (("q", "wq"), ("k", "wk"), ("v", "wv")):
            add(p + "attn_%s.weight" % g, "Q8_0", sd[s + m + ".weight"])
            add(p + "attn_%s.bias" % g, "F32", sd[s + m + ".bias"])
        add(p + "attn_output.weight", "Q8_0", sd[s + "wo.weight"])
        add(p + "attn_output.bias", "F32", sd[s + "wo.bias"])
        add(p + "attn_sinks.weight", "F32", sd[s + "sinks"])
        add(p + "post_attention_norm.weight", "F32", sd[s + "post_norm"])
        add(p + "ffn_gate_inp.weight", "F32", sd[s + "router.weight"])
        add(p + "ffn_gate_inp.bias", "F32", sd[s + "router.bias"])
        add(p + "ffn_gate_exps.weight", "MXFP4", sd[s + "w_gate"])
        add(p + "ffn_gate_exps.bias", "F32", sd[s + "b_gate"])
        add(p + "ffn_up_exps.weight", "MXFP4", sd[s + "w_up"])
        add(p + "ffn_up_exps.bias", "F32", sd[s + "b_up"])
        add(p + "ffn_down_exps.weight", "MXFP4", sd[s + "w_down"])
        add(p + "ffn_down_exps.bias", "F32", sd[s + "b_down"])
    add("output_norm.weight", "F32", sd["out_norm"])
    add("output.weight", "Q8_0", sd["out"])
    # Float copies of a few quantized tensors: ossgate-pack-model re-quantizes
    # them with gguf::QuantizeRow and requires identical bytes.
    for name, key in (("blk.0.ffn_gate_exps.weight", "blocks.0.w_gate"), ("blk.0.ffn_down_exps.weight", "blocks.0.w_down"),
                      ("blk.0.attn_q.weight", "blocks.0.wq.weight"), ("output.weight", "out")):
        out.append(("master." + name, "F32", list(reversed(sd[key].shape)), f32(sd[key])))
    return out


def write_weights(path_prefix, cfg, tensors, part_bytes=15_000_000):
    header = ["ossgate-small-weights 1"]
    for k in ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "n_experts", "n_experts_used", "d_ff",
              "vocab_size", "context_length", "sliding_window", "rms_eps", "rope_theta", "rope_scaling_factor",
              "rope_original_context"):
        header.append("config %s %s" % (k, repr(cfg[k])))
    for name, typ, ne, data in tensors:
        header.append("tensor %s %s %s %d" % (name, typ, "x".join(str(x) for x in ne), len(data)))
    header.append("data")
    blob = ("\n".join(header) + "\n").encode() + b"".join(t[3] for t in tensors)
    paths = []
    for i in range(0, len(blob), part_bytes):
        p = "%s.%03d" % (path_prefix, i // part_bytes)
        with open(p, "wb") as f:
            f.write(blob[i:i + part_bytes])
        paths.append(p)
    return len(blob), paths


GGUF_SCALAR = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8",
               12: "<f8"}


def decode_tensor(typ, buf, ne):
    """float32 tensor (torch shape = reversed ne) from stored GGUF bytes."""
    if typ == 0:  # F32
        t = torch.from_numpy(np.frombuffer(buf, dtype="<f4").copy())
    elif typ == 8:  # Q8_0
        b = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 34)
        t = q8_decode(torch.from_numpy(b[:, :2].copy().view(np.float16).reshape(-1)),
                      torch.from_numpy(b[:, 2:].copy().view(np.int8)))
    elif typ == 39:  # MXFP4: low nibbles are elements 0..15, high nibbles 16..31
        b = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 17)
        qs = torch.from_numpy(b[:, 1:].copy()).long()
        t = mxfp4_decode(torch.from_numpy(b[:, 0].copy()), torch.cat([qs & 15, qs >> 4], dim=1))
    else:
        raise ValueError("tensor type %d" % typ)
    return t.reshape(list(reversed(ne))).float()


def read_gguf(path):
    """The model config and float32 tensors (keyed by GGUF name) of an ossgate
    small-model GGUF: a minimal reader for the types this model uses."""
    raw = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = np.frombuffer(raw, dtype=fmt, count=1, offset=pos)[0]
        pos += np.dtype(fmt).itemsize
        return v

    def string():
        nonlocal pos
        n = int(take("<u8"))
        s = raw[pos:pos + n].decode("utf-8")
        pos += n
        return s

    def value(vt):
        if vt == 8:
            return string()
        if vt == 9:
            et, n = int(take("<u4")), int(take("<u8"))
            return [value(et) for _ in range(n)]
        return take(GGUF_SCALAR[vt]).item()

    assert raw[:4] == b"GGUF"
    pos = 4
    version, n_tensors, n_kv = int(take("<u4")), int(take("<u8")), int(take("<u8"))
    assert version == 3
    kv = {}
    for _ in range(n_kv):
        key = string()
        kv[key] = value(int(take("<u4")))
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = int(take("<u4"))
        ne = [int(take("<u8")) for _ in range(nd)]
        infos.append((name, ne, int(take("<u4")), int(take("<u8"))))
    align = kv.get("general.alignment", 32)
    data = (pos + align - 1) // align * align
    block = {0: (1, 4), 8: (32, 34), 39: (32, 17)}
    tensors = {}
    for name, ne, typ, off in infos:
        elems, nbytes = block[typ]
        size = int(np.prod(ne)) // elems * nbytes
        tensors[name] = decode_tensor(typ, raw[data + off:data + off + size], ne)
    a = "gpt-oss."
    cfg = dict(DEFAULT_CONFIG)
    cfg.update(n_layers=kv[a + "block_count"], d_model=kv[a + "embedding_length"],
               n_heads=kv[a + "attention.head_count"], n_kv_heads=kv[a + "attention.head_count_kv"],
               head_dim=kv[a + "attention.key_length"], n_experts=kv[a + "expert_count"],
               n_experts_used=kv[a + "expert_used_count"], d_ff=kv[a + "expert_feed_forward_length"],
               vocab_size=len(kv["tokenizer.ggml.tokens"]), context_length=kv[a + "context_length"],
               sliding_window=kv[a + "attention.sliding_window"], rms_eps=kv[a + "attention.layer_norm_rms_epsilon"],
               rope_theta=kv[a + "rope.freq_base"], rope_scaling_factor=kv[a + "rope.scaling.factor"],
               rope_original_context=kv[a + "rope.scaling.original_context_length"])
    return cfg, tensors


def load_into_model(cfg, tensors):
    model = Model(cfg)
    sd = {"embed": tensors["token_embd.weight"], "out_norm": tensors["output_norm.weight"],
          "out": tensors["output.weight"]}
    for l in range(cfg["n_layers"]):
        p, s = "blk.%d." % l, "blocks.%d." % l
        sd[s + "attn_norm"] = tensors[p + "attn_norm.weight"]
        for g, m in (("q", "wq"), ("k", "wk"), ("v", "wv"), ("output", "wo")):
            sd[s + m + ".weight"] = tensors[p + "attn_%s.weight" % g]
            sd[s + m + ".bias"] = tensors[p + "attn_%s.bias" % g]
        sd[s + "sinks"] = tensors[p + "attn_sinks.weight"]
        sd[s + "post_norm"] = tensors[p + "post_attention_norm.weight"]
        sd[s + "router.weight"] = tensors[p + "ffn_gate_inp.weight"]
        sd[s + "router.bias"] = tensors[p + "ffn_gate_inp.bias"]
        for m, g in (("gate", "gate"), ("up", "up"), ("down", "down")):
            sd[s + "w_" + m] = tensors[p + "ffn_%s_exps.weight" % g]
            sd[s + "b_" + m] = tensors[p + "ffn_%s_exps.bias" % g]
    model.load_state_dict(sd)
    return model


# ---------------------------------------------------------------------------
# Training.


def evaluate(model, windows, batch, qat):
    model.eval()
    model.qat = qat
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            w = windows[i:i + batch]
            with autocast(w.device):
                logits, _ = model(w[:, :-1])
            loss = Fn.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum")
            total += loss.item()
            count += w[:, 1:].numel()
    model.train()
    return total / count


def autocast(device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def fixed_windows(tokens, T, device):
    n = (len(tokens) - 1) // T
    idx = np.arange(n)[:, None] * T + np.arange(T + 1)[None, :]
    return torch.from_numpy(tokens[idx]).to(device)


def train(args):
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    train_tok, chat_starts = read_tokens(os.path.join(args.data, "train.bin"))
    valid_tok, _ = read_tokens(os.path.join(args.data, "valid.bin"))
    test_tok, _ = read_tokens(os.path.join(args.data, "test.bin"))
    cfg = dict(DEFAULT_CONFIG)
    for k in ("n_layers", "d_model", "n_experts", "d_ff", "n_heads", "n_kv_heads"):
        cfg[k] = getattr(args, k)
    cfg["vocab_size"] = args.vocab_size
    T, B = args.seq_len, args.batch
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "log.txt"), "w")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    model = Model(cfg)
    model.init_weights()
    model.to(device)
    model.dropout = args.dropout
    n_params = sum(p.numel() for p in model.parameters())
    say("device %s; config %s; %d parameters; train %d tokens (%d chat records), valid %d, test %d"
        % (device, json.dumps(cfg), n_params, len(train_tok), len(chat_starts), len(valid_tok), len(test_tok)))
    say("command: " + " ".join(sys.argv))

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "router" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "router" not in n)]
    opt_kw = dict(lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    if device.type == "cuda":
        opt_kw["fused"] = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], **opt_kw)

    tokens_dev = torch.from_numpy(train_tok).to(device)
    chats_dev = torch.from_numpy(np.minimum(chat_starts, len(train_tok) - T - 1)).to(device)
    valid_w = fixed_windows(valid_tok, T, device)
    test_w = fixed_windows(test_tok, T, device)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(args.seed)
    offs = torch.arange(T + 1, device=device)
    n_chat_rows = int(round(B * args.chat_rows))

    def batch():
        starts = torch.randint(0, len(train_tok) - T - 1, (B,), generator=gen).to(device)
        if n_chat_rows:
            pick = torch.randint(0, len(chat_starts), (n_chat_rows,), generator=gen).to(device)
            starts[:n_chat_rows] = chats_dev[pick]
        return tokens_dev[starts[:, None] + offs[None, :]]

    def step(lr, qat):
        model.qat = qat
        for g in opt.param_groups:
            g["lr"] = lr
        w = batch()
        with autocast(device):
            logits, aux = model(w[:, :-1])
        loss = Fn.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
        total = loss + args.aux_coef * aux
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item(), float(aux.detach())

    t0 = time.time()
    best = (float("inf"), -1, None)
    history = []
    for s in range(1, args.steps + 1):
        if s <= args.warmup:
            lr = args.lr * s / args.warmup
        else:
            p = (s - args.warmup) / max(1, args.steps - args.warmup)
            lr = args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))
        loss, aux = step(lr, False)
        if s % args.eval_every == 0 or s == args.steps:
            vl = evaluate(model, valid_w, 16, False)
            history.append((s, loss, vl))
            if vl < best[0]:
                best = (vl, s, {k: v.detach().clone() for k, v in model.state_dict().items()})
            say("step %5d  %6.1fs  lr %.2e  train %.4f  aux %.3f  valid %.4f (ppl %.2f)%s"
                % (s, time.time() - t0, lr, loss, aux, vl, math.exp(vl), "  *" if best[1] == s else ""))
    say("phase 1: best valid %.4f at step %d" % (best[0], best[1]))
    model.load_state_dict(best[2])
    vq = evaluate(model, valid_w, 16, True)
    say("best weights, quantized before QAT: valid %.4f (ppl %.2f)" % (vq, math.exp(vq)))

    # Quantization-aware fine-tuning from the best weights.
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], **opt_kw)
    for s in range(1, args.qat_steps + 1):
        lr = args.qat_lr * (1 - (s - 1) / args.qat_steps)
        loss, aux = step(lr, True)
        if s % args.eval_every == 0 or s == args.qat_steps:
            vl = evaluate(model, valid_w, 16, True)
            say("qat  %5d  %6.1fs  lr %.2e  train %.4f  aux %.3f  valid %.4f (ppl %.2f)"
                % (s, time.time() - t0, lr, loss, aux, vl, math.exp(vl)))
    vf = evaluate(model, valid_w, 16, True)
    tf = evaluate(model, test_w, 16, True)
    elapsed = time.time() - t0
    say("final (quantized): valid %.4f (ppl %.2f), test %.4f (ppl %.2f); training time %.1f s%s"
        % (vf, math.exp(vf), tf, math.exp(tf), elapsed,
           "; peak GPU memory %.1f GiB" % (torch.cuda.max_memory_allocated() / 2**30) if device.type == "cuda" else ""))

    model.cpu()
    tensors = export_tensors(model)
    size, paths = write_weights(os.path.join(args.out, "weights.bin"), cfg, tensors)
    say("wrote %d bytes in %d parts" % (size, len(paths)))
    json.dump(dict(config=cfg, params=n_params, steps=args.steps, qat_steps=args.qat_steps, best_step=best[1],
                   best_valid=best[0], valid_quantized_before_qat=vq, final_valid=vf, final_test=tf,
                   train_seconds=elapsed, device=torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                   torch=torch.__version__, history=history, command=" ".join(sys.argv)),
              open(os.path.join(args.out, "summary.json"), "w"), indent=1)


# ---------------------------------------------------------------------------
# Reference logits for tests/quality.

FIXTURE_LEN = 200
FIXTURE_POSITIONS = [0, 1, 2, 3, 7, 15, 31, 63, 100, 126, 127, 128, 129, 150, 175, 199]


def fixture(args):
    torch.manual_seed(0)
    cfg, tensors = read_gguf(args.gguf)
    model = load_into_model(cfg, tensors).float().eval()
    tokens, _ = read_tokens(args.tokens)
    seq = torch.from_numpy(tokens[args.offset:args.offset + FIXTURE_LEN]).unsqueeze(0)
    with torch.no_grad():
        logits, _ = model(seq)
    logits = logits[0, FIXTURE_POSITIONS].numpy().astype("<f4")
    sha = hashlib.sha256(open(args.gguf, "rb").read()).hexdigest()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "reference.tokens"), "w") as f:
        f.write("%s %d %d %d\n" % (sha, cfg["vocab_size"], FIXTURE_LEN, len(FIXTURE_POSITIONS)))
        f.write(" ".join(str(int(t)) for t in seq[0]) + "\n")
        f.write(" ".join(str(p) for p in FIXTURE_POSITIONS) + "\n")
    logits.tofile(os.path.join(args.out, "reference.logits.bin"))
    print("fixture: %d tokens from offset %d, logits at %d positions, torch %s, model sha256 %s"
          % (FIXTURE_LEN, args.offset, len(FIXTURE_POSITIONS), torch.__version__, sha))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--vocab_size", type=int, required=True)
    t.add_argument("--n_layers", type=int, default=8)
    t.add_argument("--d_model", type=int, default=256)
    t.add_argument("--n_heads", type=int, default=8)
    t.add_argument("--n_kv_heads", type=int, default=2)
    t.add_argument("--n_experts", type=int, default=16)
    t.add_argument("--d_ff", type=int, default=256)
    t.add_argument("--seq_len", type=int, default=512)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--qat_steps", type=int, default=400)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--qat_lr", type=float, default=3e-4)
    t.add_argument("--min_lr_frac", type=float, default=0.05)
    t.add_argument("--warmup", type=int, default=150)
    t.add_argument("--weight_decay", type=float, default=0.1)
    t.add_argument("--dropout", type=float, default=0.1)
    t.add_argument("--aux_coef", type=float, default=0.01)
    t.add_argument("--chat_rows", type=float, default=0.25, help="fraction of each batch starting at a chat record")
    t.add_argument("--eval_every", type=int, default=100)
    t.add_argument("--cpu", action="store_true")
    f = sub.add_parser("fixture")
    f.add_argument("--gguf", required=True)
    f.add_argument("--tokens", required=True)
    f.add_argument("--offset", type=int, default=0)
    f.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.cmd == "train":
        train(args)
    else:
        fixture(args)


if __name__ == "__main__":
    main()
