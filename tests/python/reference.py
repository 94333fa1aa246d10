"""GPT-NeoX exactly as docs/numerics.md says (HF GPTNeoXForCausalLM semantics), in plain PyTorch, with
HF parameter names, plus its learning-rate schedules. The oracle for rewarm."""
import math

import torch
import torch.nn.functional as F


class Layer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, i = c["hidden_size"], c["intermediate_size"]
        eps = c["layer_norm_eps"]
        self.input_layernorm = torch.nn.LayerNorm(d, eps=eps)
        self.post_attention_layernorm = torch.nn.LayerNorm(d, eps=eps)
        self.attention = torch.nn.Module()
        self.attention.query_key_value = torch.nn.Linear(d, 3 * d)
        self.attention.dense = torch.nn.Linear(d, d)
        self.mlp = torch.nn.Module()
        self.mlp.dense_h_to_4h = torch.nn.Linear(d, i)
        self.mlp.dense_4h_to_h = torch.nn.Linear(i, d)
        self.c = c

    def attn(self, x, cos, sin):
        c = self.c
        B, T, d = x.shape
        H = c["num_attention_heads"]
        hd = d // H
        rd = int(hd * c["rotary_pct"])
        qkv = self.attention.query_key_value(x).view(B, T, H, 3 * hd).permute(0, 2, 1, 3)
        q, k, v = qkv[..., :hd], qkv[..., hd : 2 * hd], qkv[..., 2 * hd :]

        def rope(t):
            r, p = t[..., :rd], t[..., rd:]
            rot = torch.cat((-r[..., rd // 2 :], r[..., : rd // 2]), dim=-1)
            return torch.cat((r * cos + rot * sin, p), dim=-1)

        q, k = rope(q), rope(k)
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
        o = torch.softmax(s, dim=-1) @ v
        return self.attention.dense(o.permute(0, 2, 1, 3).reshape(B, T, d))

    def mlp_fwd(self, x):
        h = self.mlp.dense_h_to_4h(x)
        if self.c["hidden_act"] == "gelu":
            h = F.gelu(h)
        else:  # HF gelu_fast
            h = 0.5 * h * (1.0 + torch.tanh(h * 0.7978845608 * (1.0 + 0.044715 * h * h)))
        return self.mlp.dense_4h_to_h(h)

    def forward(self, h, cos, sin):
        if self.c["use_parallel_residual"]:
            return h + self.attn(self.input_layernorm(h), cos, sin) + self.mlp_fwd(self.post_attention_layernorm(h))
        a = h + self.attn(self.input_layernorm(h), cos, sin)
        return a + self.mlp_fwd(self.post_attention_layernorm(a))


class GPTNeoX(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.gpt_neox = torch.nn.Module()
        self.gpt_neox.embed_in = torch.nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.gpt_neox.layers = torch.nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        self.gpt_neox.final_layer_norm = torch.nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.embed_out = torch.nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)

    def rotary(self, T):
        hd = self.c["hidden_size"] // self.c["num_attention_heads"]
        rd = int(hd * self.c["rotary_pct"])
        inv_freq = 1.0 / (self.c["rotary_emb_base"] ** (torch.arange(0, rd, 2).float() / rd))
        freqs = torch.outer(torch.arange(T).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    def logits(self, ids):
        cos, sin = self.rotary(ids.shape[1])
        h = self.gpt_neox.embed_in(ids)
        for layer in self.gpt_neox.layers:
            h = layer(h, cos, sin)
        return self.embed_out(self.gpt_neox.final_layer_norm(h))

    def forward(self, ids, targets):
        logits = self.logits(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def hf_config(c):
    return dict(c, architectures=["GPTNeoXForCausalLM"], model_type="gpt_neox", tie_word_embeddings=False)


def decay_groups(model):
    """GPT-NeoX weight-decay groups: biases and LayerNorm parameters are not decayed."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".bias") or "layernorm" in name or "layer_norm" in name else decay).append(p)
    return decay, no_decay


def schedule(kind, t, lr, min_lr, W, E, const_lr=0.0, cooldown=0.6, constant=0.85, timescale=10.0, decay=0.2,
             decay_steps=None):
    """docs/numerics.md, written independently of the C++ code."""
    if W > 0 and t <= W:
        return lr * t / W
    if kind == "constant":
        r = lr
    elif kind == "cosine":
        r = min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * min(1.0, (t - W) / (E - W))))
    elif kind == "linear":
        r = lr - (lr - min_lr) * min(1.0, (t - W) / (E - W))
    elif kind == "inverse_sqrt":
        r = lr * math.sqrt(max(W, 1) / t)
    elif kind == "wsd":
        s = (1 - decay) * E if decay_steps is None else E - decay_steps
        r = lr if t < s else lr - (lr - min_lr) * min(1.0, (t - s) / (E - s))
    else:
        n, Tcd, Tc, c = t - W, cooldown * E, constant * E, const_lr
        if n <= Tcd:
            x = n / Tcd
            if kind == "infinite_cosine":
                r = c + (lr - c) * 0.5 * (1 + math.cos(math.pi * x))
            elif kind == "infinite_inv_sqrt":
                g = lambda y: 1 / math.sqrt(1 + timescale * y) - 1
                r = lr + (c - lr) * g(x) / g(1)
            else:
                r = lr + (c - lr) * x
        elif n <= Tc:
            r = c
        else:
            r = c * (min_lr / c) ** min(1.0, (n - Tc) / (E - W - Tc))
    return max(r, min_lr)
