"""Generates tests/golden/hf_gpt_neox.h5: logits, loss and gradients of small random GPT-NeoX
models computed by Hugging Face's own, unmodified GPTNeoXForCausalLM (transformers v4.36.2),
in float64, one case per architecture option. tests/unit/test_hf_golden.cpp compares rewarm's
model with it.

transformers is not a Debian package, so the three HF files it needs are loaded from a source
checkout, with this script's own minimal stand-ins for the parts of the transformers package
they import (PreTrainedModel, PretrainedConfig, output classes, logging). Nothing of HF's is
committed. To regenerate:

    git clone https://github.com/huggingface/transformers && git -C transformers checkout v4.36.2
    /usr/bin/python3 tests/golden/make_hf_golden.py transformers/src/transformers tests/golden/hf_gpt_neox.h5
"""
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
import types

import h5py
import numpy as np
import torch

HF_FILES = ["activations.py", "models/gpt_neox/configuration_gpt_neox.py", "models/gpt_neox/modeling_gpt_neox.py"]

# One case per architecture option: residual kind, each GELU, rotary fraction (none, partial,
# full, head_dim odd), rotary base, LayerNorm eps large enough to matter, T below max positions.
CASES = [
    dict(use_parallel_residual=True, hidden_act="gelu", rotary_pct=0.25, rotary_emb_base=10000, layer_norm_eps=1e-5,
         hidden_size=16, num_attention_heads=2, intermediate_size=24),
    dict(use_parallel_residual=False, hidden_act="gelu_fast", rotary_pct=0.5, rotary_emb_base=500, layer_norm_eps=1e-3,
         hidden_size=16, num_attention_heads=2, intermediate_size=24),
    dict(use_parallel_residual=True, hidden_act="gelu_new", rotary_pct=1.0, rotary_emb_base=10000, layer_norm_eps=0.1,
         hidden_size=16, num_attention_heads=4, intermediate_size=20),
    dict(use_parallel_residual=False, hidden_act="gelu_pytorch_tanh", rotary_pct=0.0, rotary_emb_base=10000,
         layer_norm_eps=1e-5, hidden_size=12, num_attention_heads=3, intermediate_size=28),
    dict(use_parallel_residual=True, hidden_act="gelu", rotary_pct=0.4, rotary_emb_base=77.5, layer_norm_eps=0.02,
         hidden_size=15, num_attention_heads=3, intermediate_size=17),  # head_dim 5, 2 rotary dims
]
BATCH, SEQ, VOCAB, LAYERS, MAX_POS = 2, 7, 29, 2, 16


def stub_package(root, hf_src):
    """A package `transformers` holding HF's files and this script's stand-ins for what they import."""
    pkg = os.path.join(root, "transformers")
    os.makedirs(os.path.join(pkg, "models", "gpt_neox"))
    for f in HF_FILES:
        shutil.copy(os.path.join(hf_src, f), os.path.join(pkg, f))
    for d in (pkg, os.path.join(pkg, "models"), os.path.join(pkg, "models", "gpt_neox")):
        open(os.path.join(d, "__init__.py"), "a").close()

    def module(name, **attrs):
        m = types.ModuleType("transformers." + name)
        m.__dict__.update(attrs)
        sys.modules["transformers." + name] = m

    identity = lambda *a, **k: (lambda f: f)
    module("utils", logging=types.SimpleNamespace(get_logger=logging.getLogger),
           is_flash_attn_2_available=lambda: False, is_flash_attn_greater_or_equal_2_10=lambda: False)
    module("file_utils", add_code_sample_docstrings=identity, add_start_docstrings=identity,
           add_start_docstrings_to_model_forward=identity, replace_return_docstrings=identity)

    class Output:  # ModelOutput: fields by name, and the ones set by position
        def __init__(self, **fields):
            self.__dict__.update(fields)
            self._values = [v for v in fields.values() if v is not None]

        def __getitem__(self, i):
            return self._values[i]

    module("modeling_outputs", BaseModelOutputWithPast=Output, CausalLMOutputWithPast=Output,
           QuestionAnsweringModelOutput=Output, SequenceClassifierOutputWithPast=Output, TokenClassifierOutput=Output)

    class PretrainedConfig:
        def __init__(self, **kwargs):
            self.output_attentions = self.output_hidden_states = False
            self.use_return_dict = True
            self._attn_implementation = "eager"
            self.__dict__.update(kwargs)

    class PreTrainedModel(torch.nn.Module):
        def __init__(self, config, *args, **kwargs):
            super().__init__()
            self.config = config

        def post_init(self):
            pass

        def warn_if_padding_and_no_attention_mask(self, *args):
            pass

        def get_head_mask(self, head_mask, n):
            return [None] * n

        @property
        def dtype(self):
            return next(self.parameters()).dtype

    module("configuration_utils", PretrainedConfig=PretrainedConfig)
    module("modeling_utils", PreTrainedModel=PreTrainedModel)


def main(hf_src, out):
    torch.set_default_dtype(torch.float64)
    with tempfile.TemporaryDirectory() as tmp:
        stub_package(tmp, hf_src)
        sys.path.insert(0, tmp)
        cfg_mod = importlib.import_module("transformers.models.gpt_neox.configuration_gpt_neox")
        hf = importlib.import_module("transformers.models.gpt_neox.modeling_gpt_neox")
        with h5py.File(out + ".tmp", "w") as f:
            f.attrs["cases"] = len(CASES)
            f.attrs["source"] = "HF transformers v4.36.2 GPTNeoXForCausalLM, float64 (tests/golden/make_hf_golden.py)"
            rng = np.random.default_rng(2024)
            for i, case in enumerate(CASES):
                c = dict(case, vocab_size=VOCAB, num_hidden_layers=LAYERS, max_position_embeddings=MAX_POS,
                         use_cache=False)
                model = hf.GPTNeoXForCausalLM(cfg_mod.GPTNeoXConfig(**c)).double().eval()
                g = f.create_group(f"case{i}")
                f.attrs[f"config_case{i}"] = json.dumps(dict(c, model_type="gpt_neox"))  # HF config.json
                with torch.no_grad():  # float32-representable weights: rewarm's float and double models read the same
                    for name, p in model.named_parameters():
                        w = rng.normal(size=p.shape) * 0.3 + (1.0 if "layernorm.weight" in name or "layer_norm.weight" in name else 0.0)
                        p.copy_(torch.from_numpy(w.astype(np.float32).astype(np.float64)))
                        g.create_dataset("params/" + name, data=p.numpy().astype(np.float32))
                ids = rng.integers(0, VOCAB, size=(BATCH, SEQ + 1))
                logits = model(input_ids=torch.from_numpy(ids[:, :-1])).logits
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), torch.from_numpy(ids[:, 1:]).reshape(-1))
                loss.backward()
                g.create_dataset("ids", data=ids[:, :-1].astype(np.int32))
                g.create_dataset("targets", data=ids[:, 1:].astype(np.int32))
                g.create_dataset("logits", data=logits.detach().numpy())
                g.create_dataset("loss", data=np.array([loss.item()]))
                for name, p in model.named_parameters():
                    g.create_dataset("grads/" + name, data=p.grad.numpy())
                print(f"case{i}: {case} loss {loss.item():.6f}")
        os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
