"""A stand-in for Hugging Face transformers' GPT-NeoX in the dry run of bench/gpu/run.sh, where
transformers is not installed (Debian has no package of it): reference.py's GPT-NeoX behind HF's
names, with HF's causal-LM loss (labels shifted inside). Only what bench/gpu/torch_baseline.py
uses; on the GPU machine the real transformers runs."""
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import reference  # noqa: E402

__version__ = "stub (tests/python/reference.py)"


class GPTNeoXConfig:
    def __init__(self, attn_implementation=None, **kw):
        self.__dict__.update(kw)
        self._attn_implementation = attn_implementation


class GPTNeoXForCausalLM(reference.GPTNeoX):
    def __init__(self, config):
        super().__init__(dict(config.__dict__))
        self.config = config

    def forward(self, input_ids, labels):
        return types.SimpleNamespace(loss=super().forward(input_ids[:, :-1], labels[:, 1:]))
