"""`rewarm plan`: the memory per rank that train allocates, held to Kokkos' high-water mark of
real runs (rewarm bench) for every ZeRO stage and recompute mode on 1 and 2 ranks; its table,
its largest micro_batch, and its errors."""
import json

import numpy as np
import pytest

from helpers import rewarm
from test_mpi import config, d, mpirun  # noqa: F401 (d: the shards fixture)


def plan(d, cfg, *args):
    out = d / "plan.json"
    p = rewarm("plan", cfg, "--json", out, *args)
    return p.stdout, json.loads(out.read_text())


@pytest.mark.long_numbers
@pytest.mark.parametrize("ranks", [1, 2])
def test_plan_is_what_a_run_allocates(d, ranks):
    seen = {}
    # One rank: every combination. Two ranks: what the ranks change (the ZeRO parts), each stage
    # in both precisions, and one recompute mode per stage beside it (the activations are the
    # same on any rank count; each stage still meets a recompute mode, in each precision).
    extra = {0: ("selective", "fp32"), 1: ("full", "bf16"), 2: ("selective", "bf16"), 3: ("full", "fp32")}
    for zero in (0, 1, 2, 3):
        for recompute in ("none", "selective", "full"):
            for gemm in ("fp32", "bf16"):
                if ranks == 2 and recompute != "none" and extra[zero] != (recompute, gemm):
                    continue
                run = f"z{zero}{recompute}{gemm}"
                cfg = config(d, run, layers=3, data={"micro_batch": 2, "global_batch": 8},
                             parallel={"zero": zero}, memory={"recompute": recompute}, precision={"gemm": gemm})
                _, p = plan(d, cfg, "--ranks", ranks)
                bench = ["bench", cfg, "--steps", 1, "--gemm-size", 32, "--json", d / "bench.json"]
                rewarm(*bench) if ranks == 1 else mpirun(ranks, *bench)
                b = json.loads((d / "bench.json").read_text())
                # bench reports the ranks' mean
                assert int(np.mean(p["per_rank_total_bytes"])) == b["peak_memory_bytes"], (run, p["parts"])
                # the bytes handed to the collectives in a step of 2 micro-batches per rank (F flat
                # parameters): the double gradient sum (0: all-reduced once; 1: reduce-scattered once;
                # 2, 3: each micro-batch's), the updated fp32 weights all-gathered (1, 2), and zero 3's
                # gathers: each micro-batch every unit forward and all but the two kept backward
                F, sent = p["flat_parameters"], b["communication_bytes_per_step"]
                if ranks == 1:
                    assert sent == 0
                elif zero < 3:
                    assert sent == {0: 8, 1: 12, 2: 20}[zero] * F, (run, sent / F)
                else:
                    assert 16 * F + 4 * 2 * F < sent < 16 * F + 4 * 2 * 2 * F, (run, sent / F)
                assert p["total_bytes"] == p["per_rank_total_bytes"][0] == sum(p["parts"].values())
                seen[(zero, recompute, gemm)] = p["parts"]
    # the parts fall as they should: ZeRO shards the moments (1) and the gradient sum (2), the
    # recompute modes keep fewer activations
    for gemm in ("fp32", "bf16"):
        z0, z1, z2 = (seen[(z, "none", gemm)] for z in (0, 1, 2))
        if ranks == 2:
            assert z1["AdamW moments"] < 0.51 * z0["AdamW moments"]
            assert z2["gradient sum (double)"] < 0.51 * z0["gradient sum (double)"]
        assert z1["gradient sum (double)"] == z0["gradient sum (double)"]
        z3 = seen[(3, "none", gemm)]  # ZeRO-3: the weights and gradients too, and the gathered units
        if ranks == 2:
            assert z3["weights (fp32)"] < 0.51 * z0["weights (fp32)"]
            assert z3["gradients (fp32)"] < 0.51 * z0["gradients (fp32)"]
        assert "weights' bf16 copy" not in z3 and z3["gathered units"] > 0
        if ranks == 1:
            a = [seen[(0, r, gemm)]["activations"] for r in ("none", "selective", "full")]
            assert a[0] > a[1] > a[2]


@pytest.mark.long_numbers
def test_zero3_on_4_ranks_holds_a_quarter_of_the_state_plus_the_units(d):
    """Kokkos' high-water mark of real runs: zero 3 on 4 ranks against zero 0 on one rank, the same
    micro-batch (the same activations and workspaces). What zero 3 adds to a quarter of the
    weights, gradients, gradient sum and AdamW moments: two units' parameters and one unit's
    gradients (the largest unit: a layer), and one range of it in double on its way to the
    reduce-scatter, with this rank's part of it."""
    h, I, L = 64, 256, 4
    shape = dict(layers=L, model={"hidden_size": h, "intermediate_size": I, "num_attention_heads": 4},
                 data={"micro_batch": 2, "global_batch": 8})
    peaks, parts = {}, {}
    for run, zero, ranks in (("z0", 0, 1), ("z3", 3, 4)):
        cfg = config(d, run, parallel={"zero": zero}, **shape)
        bench = ["bench", cfg, "--steps", 1, "--gemm-size", 32, "--json", d / "bench.json"]
        rewarm(*bench) if ranks == 1 else mpirun(ranks, *bench)
        peaks[run] = json.loads((d / "bench.json").read_text())["peak_memory_bytes"]
        parts[run] = plan(d, cfg, "--ranks", ranks)[1]["parts"]
    state = ("weights (fp32)", "gradients (fp32)", "gradient sum (double)", "AdamW moments")
    state0 = sum(parts["z0"][k] for k in state)
    unit = 4 * h * h + 2 * h * I + 9 * h + I  # a layer's parameters: its matrices, then its vectors
    matrices = 4 * h * h + 2 * h * I  # its longest range
    units = 3 * 4 * unit + 8 * matrices + 8 * min(matrices, parts["z3"]["weights (fp32)"] // 4)
    assert parts["z3"]["activations"] == parts["z0"]["activations"]
    assert parts["z3"]["gathered units"] == 3 * 4 * unit
    # each rank's slices are a quarter rounded to 16 elements (16 · 24 bytes), each allocation to 8
    assert peaks["z3"] <= peaks["z0"] - state0 + state0 / 4 + units + 16 * 24 + 64, (peaks, parts)
    assert peaks["z0"] - peaks["z3"] > 0.4 * state0  # measured: 0.46 of it at this size


def test_plan_table_and_largest_micro_batch(d):
    cfg = config(d, "run", data={"micro_batch": 2, "global_batch": 8})
    out, p = plan(d, cfg, "--ranks", 2, "--device-memory", 1)
    assert "parameters; micro_batch 2 × seq_len 16 on 2 ranks" in out
    assert p["fits"] and p["largest_micro_batch"] == 4  # 4 samples per rank, all fit in 1 GiB
    assert "zero 3" in out and "projected" not in out
    assert p["bf16_bytes"] == 4  # this CPU build's emulation stores bf16 values in floats
    assert len(p["table"]) == 12 and all(row["fits"] for row in p["table"])
    # a budget too small for anything: it says so, and every row is unstarred
    out, p = plan(d, cfg, "--device-memory", 1e-6)
    assert "no micro_batch fits" in out and not any(row["fits"] for row in p["table"])
    assert "does not fit" in out


def test_plan_errors_name_the_option(d):
    cfg = config(d, "run", data={"micro_batch": 2, "global_batch": 8})
    p = rewarm("plan", cfg, "--ranks", 3, check=False)
    assert p.returncode != 0 and "data.global_batch = 8 is not a multiple of data.micro_batch × ranks = 2 × 3" in p.stderr
    p = rewarm("plan", cfg, "--ranks", 0, check=False)
    assert p.returncode != 0 and "--ranks 0: must be at least 1" in p.stderr


PYTHIA = {  # the real config.json values: vocab (padded), hidden, layers, heads, intermediate
    "pythia-1b": (50304, 2048, 16, 8, 8192),
    "pythia-12b": (50688, 5120, 36, 40, 20480),
}


@pytest.mark.parametrize("preset", sorted(PYTHIA))
def test_plan_of_the_pythia_presets_is_the_hand_computed_one(d, preset):
    """The per-parameter bytes of mixed data parallelism and the activations of a GPT-NeoX layer,
    written out from the architecture (fp32, T 2048, micro_batch 1, 8 ranks), against plan."""
    V, h, L, H, I = PYTHIA[preset]
    N, ranks = 2048, 8
    P = 2 * V * h + L * (4 * h * h + 2 * h * I + 9 * h + I) + 2 * h  # embed_in, embed_out; layers; final LN
    layer = 4 * (2 * N * h + 2 * N * I + 3 * N * h + N * h + 4 * N + N * H)  # ln1 ln2, fc1 act, qkv, attn, LN stats, lse
    cheap = 4 * (2 * N * h + N * I)  # what selective recomputes: the LayerNorm outputs and the GELU
    rotary = 2 * 4 * N * (h // H // 4 // 2)  # cos and sin tables, rotary_pct 0.25
    rest = 4 * N * h * (L + 1) + 4 * N * h + 4 * 2 * N + 4 * N * V + rotary + 8 * N + 4 * 2 * N + 4 * (N + 1) + 4
    plans = {}
    for zero in (1, 2):
        for recompute in ("none", "selective", "full"):
            cfg = config(d, f"{preset}{zero}{recompute}", data={"seq_len": N, "micro_batch": 1, "global_batch": 8},
                         parallel={"zero": zero}, memory={"recompute": recompute}, precision={"gemm": "fp32"})
            text = cfg.read_text().split("[model]")
            tail = text[1].split("\n[", 1)
            cfg.write_text(text[0] + f'[model]\npreset = "{preset}"\n' + ("\n[" + tail[1] if len(tail) > 1 else ""))
            plans[zero, recompute] = plan(d, cfg, "--ranks", ranks)[1]
    p = plans[1, "none"]
    assert p["parameters"] == P
    parts = p["parts"]
    assert parts["weights (fp32)"] == parts["gradients (fp32)"] == 4 * P
    assert parts["gradient sum (double)"] == 8 * P  # ZeRO-1: the whole sum on every rank
    assert parts["AdamW moments"] == 2 * 4 * P // ranks and parts["communication buffers"] == 8 * P // ranks
    z2 = plans[2, "none"]["parts"]
    assert z2["gradient sum (double)"] == 8 * P // ranks  # ZeRO-2: this rank's slice of it
    # one range on its way in double (the largest bucket: a layer, or the output layer with the
    # final LayerNorm) and this rank's part of it after the reduce-scatter
    big = max(V * h + 2 * h, 4 * h * h + 2 * h * I + 9 * h + I)
    assert 8 * big < z2["communication buffers"] <= 16 * big
    acts = {r: plans[1, r]["parts"]["activations"] for r in ("none", "selective", "full")}
    assert acts["full"] == rest + layer  # the layer inputs, one layer's activations, the head
    assert acts["none"] - acts["full"] == (L - 1) * layer
    assert acts["none"] - acts["selective"] == (L - 1) * cheap
