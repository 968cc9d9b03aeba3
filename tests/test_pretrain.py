"""`hemabench pretrain`: every method learns, an interrupted run resumes to the same weights,
MPCS pairs follow their strategy, and the output folder is an encoder `run` evaluates."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from hemabench import __version__
from hemabench.encoders import load_encoder
from hemabench.encoders.local import local_encoder_name
from hemabench.errors import HemabenchError
from hemabench.pretrain import METHODS, PretrainConfig
from hemabench.pretrain.data import MagnificationPairs, pair_plan
from hemabench.pretrain.train import prepare, train_step
from hemabench.protocols.threads import cpu_threads

DATASET = {"simclr": "synth-bm", "swav": "synth-bm", "dino": "synth-bm", "supcon": "synth-bm", "mpcs": "synth-breakhis"}
TINY = ["--epochs", "3", "--batch-size", "8", "--image-size", "32", "--max-images", "16", "--no-progress"]


@pytest.fixture(autouse=True)
def one_thread():
    """On 2 shared cores, one intra-op thread is many times faster than two fighting for them;
    results do not depend on it."""
    with cpu_threads(1, torch.device("cpu")):
        yield


def frozen_loss(method, views, labels, targets: dict) -> float:
    """The loss of one batch with the untrained state (DINO's teacher and centre) set to
    ``targets``, leaving the method as it was."""
    state = copy.deepcopy(method.state_dict())
    method.load_state_dict({**state, **targets})
    method.train()
    with torch.no_grad():
        value = method.loss(views, labels, 10**6, 10**6).item()
    method.load_state_dict(state)
    return value


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_few_steps_lower_each_methods_loss(name, tmp_path):
    """Four optimiser steps on one batch lower its loss, measured against the same targets
    (for DINO the loss is a moving target: the teacher and centre are held at their start)."""
    run = prepare(PretrainConfig(method=name, dataset=DATASET[name], out=tmp_path, epochs=4, batch_size=8,
                                 image_size=32, max_images=32, progress=False))
    trainable = {n for n, p in run.method.named_parameters() if p.requires_grad}
    targets = {k: v.clone() for k, v in run.method.state_dict().items() if k not in trainable}
    torch.manual_seed(0)
    views, labels = next(iter(run.loader(0)))
    before = frozen_loss(run.method, views, labels, targets)
    for step in range(4):
        train_step(run, views, labels, step, epoch=1)  # epoch 1: DINO's last layer is no longer frozen
    after = frozen_loss(run.method, views, labels, targets)
    assert after < 0.97 * before, f"{name}: loss {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("name", ["dino", "mpcs"])  # the most state (teacher, centre) and the most randomness
def test_interrupted_run_resumes_to_the_same_weights(name, tmp_path, cli):
    args = ["pretrain", "--method", name, "--dataset", DATASET[name], *TINY]
    code, _, err = cli(*args, "--out", tmp_path / "interrupted", "--stop-after-epochs", "1")
    assert code == 130 and "re-run resumes" in err
    code, out, _ = cli(*args, "--out", tmp_path / "interrupted")
    assert code == 0 and "resuming after epoch 1" in out
    code, _, _ = cli(*args, "--out", tmp_path / "straight")
    assert code == 0
    for file in ("model.safetensors", "checkpoint.safetensors"):  # the encoder, and model + optimiser + RNG
        resumed, straight = load_file(tmp_path / "interrupted" / file), load_file(tmp_path / "straight" / file)
        assert resumed.keys() == straight.keys()
        assert all(torch.equal(resumed[k], straight[k]) for k in straight), file
    history = json.loads((tmp_path / "interrupted" / "pretrain.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_resuming_with_other_options_is_refused(tmp_path, cli):
    args = ["pretrain", "--method", "simclr", "--dataset", "synth-bm", *TINY, "--out", tmp_path]
    assert cli(*args, "--stop-after-epochs", "1")[0] == 130
    code, _, err = cli(*args, "--lr", "0.01")
    assert code == 2 and "lr 0.001 -> 0.01" in err


def test_pretrained_folder_runs_through_cell_probe(tmp_path, cli):
    folder = tmp_path / "my run (v2)"
    code, out, _ = cli("pretrain", "--method", "simclr", "--dataset", "synth-bm", *TINY, "--epochs", "1",
                       "--out", folder)
    assert code == 0 and "local-my-run-v2" in out
    spec = yaml.safe_load((folder / "encoder.yaml").read_text())
    assert spec["arch"] == "resnet18" and spec["input_size"] == 32 and spec["weights"] == [{"local": "model.safetensors"}]
    for fact in ("simclr", "synth-bm", "1 of 1 epochs", "seed 0", "--image-size 32", f"hemabench {__version__}"):
        assert fact in spec["training_data"] + spec["description"], fact
    encoder = load_encoder(f"local:{folder}")
    assert encoder.spec.name == "local-my-run-v2" and encoder.spec.embed_dim == 512
    assert encoder.model(torch.zeros(2, 3, 32, 32)).shape == (2, 512)
    results = tmp_path / "results"
    code, out, err = cli("run", "--encoder", f"local:{folder}", "--suite", "demo", "--task", "cell-probe",
                         "--dataset", "synth-bm", "--out", results, "--no-progress")
    assert code == 0 and "computed" in out, err
    [path] = results.glob("**/cell-probe/synth-bm.json")  # the runner names the folder; see docs/pretraining.md
    result = json.loads(path.read_text())
    assert result["encoder"]["name"] == "local-my-run-v2"
    assert result["encoder"]["weights_sha256"] == encoder.weights_sha256


def test_cli_lists_every_method():
    from hemabench.cli.pretrain import METHOD_NAMES

    assert sorted(METHOD_NAMES) == sorted(METHODS)


def test_local_names_are_one_safe_path_segment(tmp_path):
    assert local_encoder_name("/data/My Run (v2)/") == "local-My-Run-v2"
    assert local_encoder_name(tmp_path / "simclr-synth-bm-resnet18-64px-s0") == "local-simclr-synth-bm-resnet18-64px-s0"
    with pytest.raises(HemabenchError, match="encoder.yaml does not exist"):
        load_encoder(f"local:{tmp_path / 'nothing'}")


def breakhis_records() -> pd.DataFrame:
    rows = [("p1", m, i) for m in (40, 100, 200, 400) for i in range(2)] + [("p2", 40, 0), ("p2", 200, 0)] \
        + [("p3", 100, 0)]
    return pd.DataFrame([{"path": f"{p}-{m}-{i}.png", "patient": p, "magnification": m, "label": "benign"}
                         for p, m, i in rows])


def test_mpcs_pair_strategies():
    records = breakhis_records()
    mags = records["magnification"].tolist()
    fixed = pair_plan(records, "fixed")
    assert {mags[i] for i, _ in fixed} == {200} and all(p == (400,) for _, p in fixed) and len(fixed) == 2
    ordered = dict(pair_plan(records, "ordered"))
    assert {mags[i]: p for i, p in ordered.items() if records["patient"][i] == "p1"} == \
        {40: (100,), 100: (200,), 200: (400,), 400: (200,)}
    assert not any(records["patient"][i] == "p2" for i in ordered)  # p2 has no 100X nor 400X
    random_plan = dict(pair_plan(records, "random"))
    assert random_plan[records.index[(records.patient == "p2") & (records.magnification == 40)][0]] == (200,)
    assert not any(records["patient"][i] == "p3" for i in random_plan)  # a single magnification: no pair
    with pytest.raises(HemabenchError, match="magnification"):
        pair_plan(records.assign(magnification=None), "random")


def test_mpcs_views_share_one_augmentation(tmp_path):
    from PIL import Image

    records = breakhis_records()
    for path in records["path"]:
        Image.new("RGB", (8, 8)).save(tmp_path / path)
    pairs = MagnificationPairs(tmp_path, records, lambda image: torch.rand(3), "random")
    (first, second), _ = pairs[0]
    assert torch.equal(first, second)
    partner = pairs.partner(0)
    assert records["patient"][partner] == records["patient"][pairs.plan[0][0]]
    assert records["magnification"][partner] != records["magnification"][pairs.plan[0][0]]
