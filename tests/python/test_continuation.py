"""Continuing from checkpoints the way peers got wrong: a new schedule after importing weights
takes effect at once (Megatron-LM issues 963 and 1138 kept the old maximum LR); replay weights
changed on a continuation (Megatron-LM issue 457 repeated and skipped samples) are refused on a
resume and applied, each set continuing its own order, by init.load = "full"; a cooldown branched
off a WSD run's stable-phase checkpoint equals the run's own decay bit for bit."""
import h5py
import numpy as np
import pytest

from helpers import rewarm, tiny_config, write_config, write_shard
from reference import schedule


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(4)
    for name in ("up", "down"):
        write_shard(tmp_path / f"{name}.h5", rng.integers(0, 13, size=16 * 60 + 1), 13)
    return [tmp_path / "up.h5", tmp_path / "down.h5"]


def metrics(run_dir, *keys):
    with h5py.File(run_dir / "metrics.h5", "r") as m:
        return [m[k][:] for k in keys]


def weights(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda k, v: out.__setitem__(k, v[:]) if isinstance(v, h5py.Dataset) and k.split("/")[0] in ("model", "optimizer") else None)
        return out


def test_new_schedule_after_importing_weights(tmp_path, shards):
    first = tiny_config(tmp_path / "a", shards[0], optimizer={"lr": 1e-2, "min_lr": 1e-3},
                        schedule={"warmup_steps": 2, "total_steps": 6}, train={"checkpoint_interval": 6})
    rewarm("train", write_config(tmp_path / "a.toml", first))
    for load in ("weights", "full"):  # a new run from the weights, or the run continued with a new LR
        run = tmp_path / f"b_{load}"
        cfg = tiny_config(run, shards[1], optimizer={"lr": 3e-3, "min_lr": 3e-4},
                          init={"from": str(tmp_path / "a" / "checkpoints" / "step_00000006.h5"), "load": load},
                          schedule={"warmup_steps": 3, "total_steps": 12})
        if load == "full":
            cfg["data"]["train"] = [{"path": str(shards[0])}]  # the same stream, continued
        rewarm("train", write_config(tmp_path / f"b_{load}.toml", cfg))
        step, lr = metrics(run, "train/step", "train/lr")
        start = 0 if load == "weights" else 6
        assert step[0] == start + 1
        expect = [schedule("cosine", t, 3e-3, 3e-4, 3, 12) for t in step]
        np.testing.assert_allclose(lr, expect, rtol=1e-12)  # from the first step: the new peak, warmup and length
        if load == "weights":
            assert lr[0] == pytest.approx(1e-3) and lr[2] == pytest.approx(3e-3)  # steps 1 and 3 = end of warmup
        assert lr.max() <= 3e-3 * (1 + 1e-12)


def test_changed_replay_weights(tmp_path, shards):
    sets = lambda w: [{"name": "up", "path": str(shards[0]), "weight": w}, {"name": "down", "path": str(shards[1]), "weight": 1 - w}]
    cfg = tiny_config(tmp_path / "a", sets(0.25), schedule={"total_steps": 8}, train={"checkpoint_interval": 4})
    rewarm("train", write_config(tmp_path / "a.toml", cfg), "--stop-at", "4")
    # a resume (the same run_dir) with other weights: refused, one line naming the key and both values
    cfg["data"]["train"] = sets(0.5)
    p = rewarm("train", write_config(tmp_path / "a2.toml", cfg), check=False)
    assert p.returncode != 0
    lines = [l for l in p.stderr.splitlines() if l.startswith("rewarm: error")]
    assert len(lines) == 1 and "data.train[0].weight: 0.25 -> 0.5" in lines[0] and "data.train[1].weight: 0.75 -> 0.5" in lines[0]
    # init.load = "full" into a new run_dir: applied, each set continuing from its own count
    ck = tmp_path / "a" / "checkpoints" / "step_00000004.h5"
    with h5py.File(ck, "r") as f:
        carried = f["state/set_samples"][:]
    cont = tiny_config(tmp_path / "b", sets(0.5), init={"from": str(ck), "load": "full"}, schedule={"total_steps": 8})
    rewarm("train", write_config(tmp_path / "b.toml", cont))
    up, down = metrics(tmp_path / "b", "train/samples_up", "train/samples_down")
    drawn = np.stack([up, down], axis=1) - carried  # samples drawn by the continuation, per set
    assert carried.tolist() == [4, 12] and drawn[-1].tolist() == [8, 8]  # 16 samples, half and half from here on


def test_cooldown_branch_off_a_wsd_run(tmp_path, shards):
    wsd = dict(kind="wsd", warmup_steps=2, total_steps=16, decay=0.25)  # stable to step 12, decay 13..16
    cfg = tiny_config(tmp_path / "wsd", shards[0], optimizer={"lr": 1e-2, "min_lr": 1e-3}, schedule=wsd,
                      train={"checkpoint_interval": 4, "keep_checkpoints": 10})
    rewarm("train", write_config(tmp_path / "wsd.toml", cfg))
    ck = lambda s: tmp_path / "wsd" / "checkpoints" / f"step_{s:08d}.h5"

    def branch(name, at, length):
        """The recipe (docs/studies.md): the stable-phase checkpoint with its optimizer state, a
        decay to min_lr over the branch's own `length` steps."""
        b = tiny_config(tmp_path / name, shards[0], optimizer={"lr": 1e-2, "min_lr": 1e-3},
                        init={"from": str(ck(at)), "load": "full"},
                        schedule=dict(kind="wsd", warmup_steps=2, total_steps=at + length, decay_steps=length),
                        train={"checkpoint_interval": 100})
        rewarm("train", write_config(tmp_path / f"{name}.toml", b))
        return metrics(tmp_path / name, "train/step", "train/lr", "train/loss")

    # from step 12, 4 steps: the schedules agree, so the branch is the WSD run's own decay, bit for bit
    step, lr, loss = branch("same", 12, 4)
    w_step, w_lr, w_loss = metrics(tmp_path / "wsd", "train/step", "train/lr", "train/loss")
    np.testing.assert_array_equal(step, w_step[12:])
    np.testing.assert_array_equal(lr, w_lr[12:])
    np.testing.assert_array_equal(loss, w_loss[12:])
    a, b = weights(ck(16)), weights(tmp_path / "same" / "checkpoints" / "step_00000016.h5")
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # from step 8, a shorter cooldown of 3 steps: the decay starts at once and ends at min_lr
    step, lr, _ = branch("short", 8, 3)
    assert step.tolist() == [9, 10, 11]
    np.testing.assert_allclose(lr, [schedule("wsd", t, 1e-2, 1e-3, 2, 11, decay_steps=3) for t in step], rtol=1e-12)
    assert lr[-1] == pytest.approx(1e-3) and lr[0] < 1e-2
