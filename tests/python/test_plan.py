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


@pytest.mark.parametrize("ranks", [1, 2])
def test_plan_is_what_a_run_allocates(d, ranks):
    seen = {}
    for zero in (0, 1, 2):
        for recompute in ("none", "selective", "full"):
            for gemm in ("fp32", "bf16"):
                run = f"z{zero}{recompute}{gemm}"
                cfg = config(d, run, layers=3, data={"micro_batch": 2, "global_batch": 8},
                             parallel={"zero": zero}, memory={"recompute": recompute}, precision={"gemm": gemm})
                _, p = plan(d, cfg, "--ranks", ranks)
                bench = ["bench", cfg, "--steps", 1, "--gemm-size", 32, "--json", d / "bench.json"]
                rewarm(*bench) if ranks == 1 else mpirun(ranks, *bench)
                peak = json.loads((d / "bench.json").read_text())["peak_memory_bytes"]
                # bench reports the ranks' mean
                assert int(np.mean(p["per_rank_total_bytes"])) == peak, (run, p["parts"])
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
        a = [seen[(0, r, gemm)]["activations"] for r in ("none", "selective", "full")]
        assert a[0] > a[1] > a[2]


def test_plan_table_and_largest_micro_batch(d):
    cfg = config(d, "run", data={"micro_batch": 2, "global_batch": 8})
    out, p = plan(d, cfg, "--ranks", 2, "--device-memory", 1)
    assert "parameters; micro_batch 2 × seq_len 16 on 2 ranks" in out
    assert p["fits"] and p["largest_micro_batch"] == 4  # 4 samples per rank, all fit in 1 GiB
    assert "(projected: zero = 3 is not available yet)" in out
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
