"""The pretraining loop: seeded, checkpointed every epoch, resumable to the same weights.

After every epoch the output folder holds a usable encoder (``model.safetensors`` and its
spec ``encoder.yaml``, so ``--encoder local:DIR`` works even on an interrupted run), a log
(``pretrain.json``) and ``checkpoint.safetensors``: the whole model state (heads, DINO
teacher and centre), the optimiser state, the epoch and the torch/CUDA/NumPy/Python RNG
states, all written atomically. Re-running the same command continues after the last
finished epoch; on CPU the final weights are bitwise those of an uninterrupted run, because
nothing else carries state between epochs: the learning rate and EMA momentum are functions
of the step, and each epoch's shuffling and worker seeds come from a generator seeded with
(seed, epoch).
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from lightly.utils.scheduler import cosine_schedule
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from tqdm import tqdm

from hemabench import __version__
from hemabench.compute.device import autocast, default_workers, resolve_device
from hemabench.datasets import DATASETS, load_dataset
from hemabench.encoders.build import create_architecture, seeded
from hemabench.encoders.local import SPEC_FILE, WEIGHTS_FILE, local_encoder_name
from hemabench.encoders.spec import spec_from_dict
from hemabench.errors import HemabenchError
from hemabench.files.atomic import atomic_path, atomic_write_text
from hemabench.pretrain.data import ImageViews, MagnificationPairs, select_records
from hemabench.pretrain.methods import IMAGENET, METHODS, Method, Settings

CHECKPOINT, LOG = "checkpoint.safetensors", "pretrain.json"
# What must not change between an interrupted run and its resumption.
RESUME_KEYS = ("method", "dataset", "arch", "epochs", "batch_size", "image_size", "seed", "max_images", "pairs", "lr")


@dataclass
class PretrainConfig:
    method: str
    dataset: str
    out: Path | None = None  # default: pretrained/<method>-<dataset>-<arch>-<px>px-s<seed>
    root: str | None = None
    data_root: str | None = None
    arch: str = "resnet18"
    epochs: int = 20
    batch_size: int = 64
    image_size: int = 64
    seed: int = 0
    max_images: int | None = None
    pairs: str = "ordered"  # MPCS pair strategy: fixed, ordered or random
    lr: float = 1e-3
    device: str = "auto"
    workers: int | None = None  # default: 0 on CPU (bitwise resumable), by core count on CUDA
    progress: bool = True
    stop_after_epochs: int | None = None  # test hook: simulate Ctrl-C after this many epochs of this call

    def folder(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        method = f"mpcs-{self.pairs}" if self.method == "mpcs" else self.method
        return Path("pretrained") / f"{method}-{self.dataset}-{self.arch}-{self.image_size}px-s{self.seed}"

    def identity(self) -> dict:
        return {key: getattr(self, key) for key in RESUME_KEYS}

    def command(self) -> str:
        parts = [f"hemabench pretrain --method {self.method} --dataset {self.dataset} --arch {self.arch}",
                 f"--epochs {self.epochs} --batch-size {self.batch_size} --image-size {self.image_size}",
                 f"--seed {self.seed} --lr {self.lr:g}"]
        parts += [f"--pairs {self.pairs}"] if self.method == "mpcs" else []
        parts += [f"--max-images {self.max_images}"] if self.max_images else []
        return " ".join(parts)


@dataclass
class PretrainResult:
    out: Path
    encoder_name: str
    history: list[dict] = field(default_factory=list)  # per epoch: mean, first and last batch loss, seconds
    epochs_done: int = 0
    resumed_from: int = 0  # epochs already done when this call started
    n_items: int = 0
    steps_per_epoch: int = 0
    device: str = "cpu"


# -- the encoder spec ---------------------------------------------------------------------------
def encoder_spec(config: PretrainConfig, out: Path, n_images: int, epochs_done: int,
                 backbone: torch.nn.Module | None = None) -> dict:
    """The ``encoder.yaml`` of the run, in the registry's schema; before training
    (``backbone=None``) the width and size fields are placeholders used to build the network."""
    dataset = DATASETS.get(config.dataset)
    method = METHODS[config.method]
    pairs = f" with {config.pairs} magnification pairs" if config.method == "mpcs" else ""
    trained = f"pretrained with {config.method}{pairs} on {dataset.name}" if epochs_done else \
        f"not trained yet (the initialisation of a {config.method}{pairs} run on {dataset.name})"
    return {
        "name": local_encoder_name(out), "family": f"pretrained-{config.method}" if epochs_done else "random",
        "arch": config.arch,
        "arch_kwargs": {"num_classes": 0, "global_pool": "avg"}, "weights": [{"local": WEIGHTS_FILE}],
        "input_size": config.image_size, "mean": IMAGENET["mean"], "std": IMAGENET["std"],
        "interpolation": "bilinear", "embedding": "avgpool",
        "embed_dim": int(backbone.num_features) if backbone is not None else 0,
        "params_m": round(sum(p.numel() for p in backbone.parameters()) / 1e6, 2) if backbone is not None else 0,
        "license": f"weights derived from {dataset.name} ({dataset.license or 'see the dataset'})",
        "citation": method.citation,
        "training_data": f"{dataset.name} ({dataset.title}): {n_images} images, {epochs_done} of {config.epochs} "
                         f"epochs of {config.method}{pairs}",
        "description": f"{config.arch} from random initialisation (seed {config.seed}), {trained}, at "
                       f"{config.image_size}x{config.image_size} px; "
                       f"embedding = the backbone's average-pooled features. Made by `{config.command()}` "
                       f"(hemabench {__version__}).",
    }


def build_backbone(config: PretrainConfig, out: Path) -> torch.nn.Module:
    """The headless timm network, built exactly as ``load_encoder`` will rebuild it."""
    if ":" in config.arch:
        raise HemabenchError(f"--arch takes a timm architecture name, got {config.arch!r}")
    placeholder = spec_from_dict(encoder_spec(config, out, 0, 0), source="pretrain")
    return seeded(config.seed, lambda: create_architecture(placeholder))


# -- checkpoints --------------------------------------------------------------------------------
def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """Every global generator the loop draws from, as tensors plus JSON-able scalars."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    tensors["rng.python"] = torch.tensor(internal, dtype=torch.int64)
    return tensors, {"numpy": [kind, int(pos), int(has_gauss), float(gauss)], "python": [version, py_gauss]}


def set_rng_state(tensors: dict[str, torch.Tensor], scalars: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k[9:]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, gauss = scalars["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, py_gauss = scalars["python"]
    random.setstate((version, tuple(int(v) for v in tensors["rng.python"].tolist()), py_gauss))


def save_checkpoint(path: Path, method: Method, optimizer: torch.optim.Optimizer, meta: dict) -> None:
    """Model, optimiser state, RNG states and ``meta`` (epoch, history, config) in one safetensors file."""
    tensors = {f"model.{k}": v for k, v in method.state_dict().items()}
    scalars = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    rng_tensors, rng_scalars = rng_state()
    tensors.update(rng_tensors)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    metadata = {"hemabench": json.dumps({**meta, "optim_scalars": scalars, "rng": rng_scalars})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_checkpoint(path: Path, method: Method, optimizer: torch.optim.Optimizer) -> dict:
    """Restore what ``save_checkpoint`` wrote; returns its ``meta``."""
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        meta = json.loads(handle.metadata()["hemabench"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    device = next(method.parameters()).device
    method.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
    for key, value in meta.pop("optim_scalars").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    set_rng_state(tensors, meta.pop("rng"))
    return meta


def read_meta(path: Path) -> dict:
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        return json.loads(handle.metadata()["hemabench"])


def check_resumable(meta: dict, config: PretrainConfig, path: Path) -> None:
    saved = meta["config"]
    changed = [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in config.identity().items() if saved.get(k) != v]
    if changed:
        raise HemabenchError(f"{path} is a checkpoint of a different run ({'; '.join(changed)}); resume with the "
                             f"same options, or give another --out (or delete the folder) to start afresh")


def write_outputs(out: Path, config: PretrainConfig, method: Method, n_images: int, history: list[dict]) -> None:
    """The encoder (weights + spec) and the log, as of the last finished epoch."""
    backbone = method.exported()
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in backbone.state_dict().items()}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(weights, str(tmp), metadata={"format": "pt"})
    spec = encoder_spec(config, out, n_images, len(history), backbone)
    spec_from_dict(spec, source=str(out / SPEC_FILE))  # never write a spec that would not load
    atomic_write_text(out / SPEC_FILE, "# Written by `hemabench pretrain`; evaluate with --encoder local:DIR.\n"
                      + yaml.safe_dump(spec, sort_keys=False, width=100))
    log = {"hemabench": __version__, "config": {**asdict(config), "out": str(out)}, "n_images": n_images,
           "epochs_done": len(history), "history": history}
    atomic_write_text(out / LOG, json.dumps(log, indent=2, default=str) + "\n")


# -- the loop -----------------------------------------------------------------------------------
def lr_factor(step: int, total_steps: int) -> float:
    """Linear warm-up over the first 10% of steps, then cosine decay to zero."""
    warmup, step = max(1, total_steps // 10), min(step, max(0, total_steps - 1))
    if step < warmup:
        return (step + 1) / warmup
    return cosine_schedule(step - warmup, total_steps - warmup + 1, 1.0, 0.0)  # the last step is not lr 0


@dataclass
class Run:
    """Everything a pretraining run is made of, before any step (see ``prepare``)."""

    config: PretrainConfig
    out: Path
    device: torch.device
    records: pd.DataFrame
    dataset: ImageViews | MagnificationPairs
    method: Method
    optimizer: torch.optim.Optimizer
    batch: int
    steps: int

    def loader(self, epoch: int, workers: int = 0) -> DataLoader:
        """Epoch ``epoch``'s batches: shuffled by a generator seeded with (seed, epoch)."""
        return DataLoader(self.dataset, batch_size=self.batch, shuffle=True, drop_last=True, num_workers=workers,
                          generator=torch.Generator().manual_seed(self.config.seed * 100_003 + epoch),
                          pin_memory=self.device.type == "cuda")


def prepare(config: PretrainConfig) -> Run:
    """Data, seeded network and heads, optimiser: the state before the first step."""
    if config.method not in METHODS:
        raise HemabenchError(f"unknown pretraining method {config.method!r}; one of {', '.join(METHODS)}")
    if config.epochs < 0 or config.batch_size < 2 or config.image_size < 16:
        raise HemabenchError("--epochs must be >= 0, --batch-size >= 2 and --image-size >= 16")
    method_cls, out = METHODS[config.method], config.folder()
    device = resolve_device(config.device)
    discovery = load_dataset(config.dataset, config.root, config.data_root)
    records = select_records(discovery.records, config.max_images, config.seed)
    if method_cls.pairs:
        dataset = MagnificationPairs(discovery.root, records, None, config.pairs)
    else:
        dataset = ImageViews(discovery.root, records, None)
    batch = min(config.batch_size, len(dataset))
    if batch < 2:
        raise HemabenchError(f"{config.dataset} gives {len(dataset)} training item(s) for {config.method}; "
                             f"need at least 2")
    steps = len(dataset) // batch
    settings = Settings(image_size=config.image_size, epochs=config.epochs, steps_per_epoch=steps)
    backbone = build_backbone(config, out)
    method = seeded(config.seed + 1, lambda: method_cls(backbone, settings)).to(device)
    if device.type == "cuda":
        method.amp = lambda: autocast(device)
    dataset.transform = method.transform()
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=method_cls.weight_decay)
    return Run(config, out, device, records, dataset, method, optimizer, batch, steps)


def pretrain(config: PretrainConfig, log: Callable[[str], None] | None = None) -> PretrainResult:
    """Train (or resume) ``config.method`` on ``config.dataset``; see the module docstring.
    ``log`` receives one line at the start and one per epoch (the CLI prints them)."""
    log = log or (lambda line: None)
    run = prepare(config)
    method, optimizer, out = run.method, run.optimizer, run.out
    result = PretrainResult(out, local_encoder_name(out), n_items=len(run.dataset), steps_per_epoch=run.steps,
                            device=str(run.device))
    checkpoint = out / CHECKPOINT
    if checkpoint.is_file():
        check_resumable(read_meta(checkpoint), config, checkpoint)
        result.history = load_checkpoint(checkpoint, method, optimizer)["history"]
    else:
        torch.manual_seed(config.seed)  # CUDA generators too
        np.random.seed(config.seed)
        random.seed(config.seed)
    result.resumed_from = len(result.history)
    log(f"{config.method} on {config.dataset}: {len(run.dataset)} training items, {run.steps} steps of {run.batch} "
        f"per epoch, on {run.device}" + (f"; resuming after epoch {result.resumed_from}" if result.resumed_from else ""))
    workers = config.workers if config.workers is not None else default_workers(run.device, resumable=True)
    method.train()
    for epoch in range(len(result.history), config.epochs):
        if config.stop_after_epochs is not None and epoch - result.resumed_from >= config.stop_after_epochs:
            raise KeyboardInterrupt(f"stopped after {config.stop_after_epochs} epoch(s) (test hook)")
        result.history.append(run_epoch(run, run.loader(epoch, workers), epoch))
        log(f"epoch {epoch + 1}/{config.epochs}: mean loss {result.history[-1]['loss']:.4f} "
            f"({result.history[-1]['seconds']:.0f} s)")
        write_outputs(out, config, method, len(run.records), result.history)
        save_checkpoint(checkpoint, method, optimizer, {"epoch": epoch + 1, "history": result.history,
                                                         "config": config.identity(), "hemabench": __version__})
    if len(result.history) == result.resumed_from:  # --epochs 0 (the initialisation), or already finished
        write_outputs(out, config, method, len(run.records), result.history)
    result.epochs_done = len(result.history)
    return result


def train_step(run: Run, views: list[torch.Tensor], labels: torch.Tensor, step: int, epoch: int) -> float:
    """One optimiser step on one batch; returns its loss."""
    method, optimizer = run.method, run.optimizer
    total = run.config.epochs * run.steps
    for group in optimizer.param_groups:
        group["lr"] = run.config.lr * lr_factor(step, total)
    views = [v.to(run.device, non_blocking=True) for v in views]
    loss = method.loss(views, labels.to(run.device), step, epoch)
    if not torch.isfinite(loss):
        raise HemabenchError(f"{run.config.method}: the loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                             f"try a lower --lr")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    method.after_backward(epoch)
    optimizer.step()
    method.after_step(step, total)
    return loss.item()


def run_epoch(run: Run, loader: DataLoader, epoch: int) -> dict:
    losses, start = [], time.perf_counter()
    bar = tqdm(loader, total=run.steps, desc=f"{run.config.method} epoch {epoch + 1}/{run.config.epochs}",
               disable=not run.config.progress, dynamic_ncols=True)
    with contextlib.closing(bar):
        for i, (views, labels) in enumerate(bar):
            losses.append(train_step(run, views, labels, epoch * run.steps + i, epoch))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return {"epoch": epoch + 1, "loss": float(np.mean(losses)), "first_batch": losses[0], "last_batch": losses[-1],
            "seconds": round(time.perf_counter() - start, 2)}
