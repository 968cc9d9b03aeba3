"""One small class per pretraining method: how it makes views, its heads and its loss.

Losses, heads and transforms are lightly's wherever lightly has them, so the methods are the
published ones and not re-implementations; only the supervised contrastive loss is ours
(lightly 1.6 has none). Parameters follow protocols.md section 7; each class states its own.
A method is an ``nn.Module`` holding the backbone and everything trained with it, so one
``state_dict`` (teacher and DINO centre included) is the whole model state of a checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from lightly.loss import DINOLoss, NTXentLoss, SwaVLoss
from lightly.models.modules.heads import (
    DINOProjectionHead,
    SimCLRProjectionHead,
    SwaVProjectionHead,
    SwaVPrototypes,
)
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.transforms import DINOTransform, SimCLRTransform, SimCLRViewTransform, SwaVTransform
from lightly.utils.scheduler import cosine_schedule
from torch import Tensor, nn

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
# Microscopy has no "up": vertical flips and 90-degree rotations are label-preserving.
ORIENTATION = {"hf_prob": 0.5, "vf_prob": 0.5, "rr_prob": 0.5}
# SimCLR-style crops keep at least 60% of the image: lightly's 8% is mostly background on a
# single-cell image, and cell size is itself a class cue (measured on synth-bm, docs/pretraining.md).
MIN_CROP_SCALE = 0.6


def augmentations(image_size: int) -> dict:
    """Options shared by every method's views: lightly's (grey, blur, colour jitter at strength
    0.5, its advice for small images) plus flips and 90-degree rotations, with the blur's
    largest sigma scaled from 2 px at 224 px to the image size."""
    return {**ORIENTATION, "cj_strength": 0.5, "sigmas": (0.1, max(0.2, 2.0 * image_size / 224)),
            "normalize": IMAGENET}


@dataclass(frozen=True)
class Settings:
    """What a method needs to know about the run to set its schedules and crop sizes."""

    image_size: int
    epochs: int
    steps_per_epoch: int

    @property
    def local_size(self) -> int:
        """Multi-crop local views: 96/224 of the global size, as in SwAV/DINO, at least 16 px."""
        return max(16, round(self.image_size * 96 / 224))


class Method(nn.Module):
    """Base class: a backbone plus heads; ``loss`` maps a batch of views to a scalar."""

    name: ClassVar[str]
    citation: ClassVar[str]
    weight_decay: ClassVar[float] = 1e-4
    needs_labels: ClassVar[bool] = False  # SupCon: pretraining uses the dataset's labels
    pairs: ClassVar[bool] = False  # MPCS: an item is two images (magnifications), not one

    def __init__(self, backbone: nn.Module, settings: Settings) -> None:
        super().__init__()
        self.backbone, self.settings = backbone, settings
        self.dim = backbone.num_features
        self.amp: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext

    def transform(self) -> Callable:
        """PIL image -> list of view tensors (pairs: the per-image view transform)."""
        raise NotImplementedError

    def loss(self, views: list[Tensor], labels: Tensor, step: int, epoch: int) -> Tensor:
        raise NotImplementedError

    def encode(self, views: list[Tensor], *modules: nn.Module) -> list[Tensor]:
        """Run views through ``modules`` in order, one pass per crop size (views of equal size
        are concatenated), under the trainer's autocast; float32 outputs, in view order."""
        outputs: list[Tensor | None] = [None] * len(views)
        by_size: dict[tuple, list[int]] = {}
        for i, view in enumerate(views):
            by_size.setdefault(tuple(view.shape[-2:]), []).append(i)
        for indices in by_size.values():
            x = torch.cat([views[i] for i in indices])
            with self.amp():
                for module in modules:
                    x = module(x)
            for i, chunk in zip(indices, x.float().chunk(len(indices))):
                outputs[i] = chunk
        return outputs  # type: ignore[return-value]

    def after_backward(self, epoch: int) -> None:
        """Called between backward and the optimiser step."""

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after the optimiser step (EMA updates)."""

    def exported(self) -> nn.Module:
        """The backbone whose weights become the encoder."""
        return self.backbone


class SimCLR(Method):
    """SimCLR (Chen et al. 2020): NT-Xent at temperature 0.1, projection dim-dim-64 (512-512-64 for ResNet18)."""

    name = "simclr"
    citation = "Chen T, Kornblith S, Norouzi M, Hinton G. A Simple Framework for Contrastive Learning of " \
               "Visual Representations. ICML 2020."
    temperature: ClassVar[float] = 0.1
    projection_dim: ClassVar[int] = 64

    def __init__(self, backbone: nn.Module, settings: Settings) -> None:
        super().__init__(backbone, settings)
        self.head = SimCLRProjectionHead(self.dim, self.dim, self.projection_dim)
        self.criterion = self.make_criterion()

    def make_criterion(self) -> nn.Module:
        return NTXentLoss(temperature=self.temperature)

    def transform(self) -> Callable:
        return SimCLRTransform(input_size=self.settings.image_size, min_scale=MIN_CROP_SCALE,
                               **augmentations(self.settings.image_size))

    def loss(self, views: list[Tensor], labels: Tensor, step: int, epoch: int) -> Tensor:
        z0, z1 = self.encode(views, self.backbone, self.head)
        return self.criterion(z0, z1)


class MPCS(SimCLR):
    """MPCS (Chhipa et al. 2023): SimCLR's NT-Xent and head, but the positive pair is the same
    sample at two magnifications, both transformed with the same random augmentation."""

    name = "mpcs"
    citation = "Chhipa PC, Upadhyay R, Pihlgren GG, Saini R, Uchida S, Liwicki M. Magnification Prior: " \
               "A Self-Supervised Method for Learning Representations on Breast Cancer Histopathological " \
               "Images. WACV 2023."
    pairs = True

    def transform(self) -> Callable:
        return SimCLRViewTransform(input_size=self.settings.image_size, min_scale=MIN_CROP_SCALE,
                                   **augmentations(self.settings.image_size))


class SupConLoss(nn.Module):
    """Supervised contrastive loss, the L_out form of Khosla et al. 2020, for two views per image.

    Every other view with the same label is a positive; lightly 1.6 has no such loss."""

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, z0: Tensor, z1: Tensor, labels: Tensor) -> Tensor:
        z = F.normalize(torch.cat([z0, z1]), dim=1)
        y = labels.repeat(2)
        itself = torch.eye(len(z), dtype=torch.bool, device=z.device)
        logits = (z @ z.T / self.temperature).masked_fill(itself, float("-inf"))
        log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
        positives = (y[:, None] == y[None, :]) & ~itself  # never empty: the other view is one
        mean_log_prob = log_prob.masked_fill(~positives, 0.0).sum(1) / positives.sum(1)
        return -mean_log_prob.mean()


class SupCon(SimCLR):
    """SupCon (Khosla et al. 2020): SimCLR's views, temperature 0.2, a dim-dim-128 projection."""

    name = "supcon"
    citation = "Khosla P, Teterwak P, Wang C, et al. Supervised Contrastive Learning. NeurIPS 2020."
    temperature = 0.2
    projection_dim = 128
    needs_labels = True

    def make_criterion(self) -> nn.Module:
        return SupConLoss(self.temperature)

    def loss(self, views: list[Tensor], labels: Tensor, step: int, epoch: int) -> Tensor:
        z0, z1 = self.encode(views, self.backbone, self.head)
        return self.criterion(z0, z1, labels)


class SwAV(Method):
    """SwAV (Caron et al. 2020): online clustering on prototypes with Sinkhorn-Knopp codes
    (3 iterations, epsilon 0.05), temperature 0.1, multi-crop 2 global + 6 local views.
    Prototypes are normalised every step and frozen for the first epoch, as in the paper;
    512 prototypes (not 3000) and no queue, which suit small datasets and batches."""

    name = "swav"
    citation = "Caron M, Misra I, Mairal J, Goyal P, Bojanowski P, Joulin A. Unsupervised Learning of " \
               "Visual Features by Contrasting Cluster Assignments. NeurIPS 2020."
    projection_dim: ClassVar[int] = 128
    n_prototypes: ClassVar[int] = 512
    crop_counts: ClassVar[tuple[int, int]] = (2, 6)

    def __init__(self, backbone: nn.Module, settings: Settings) -> None:
        super().__init__(backbone, settings)
        self.head = SwaVProjectionHead(self.dim, self.dim, self.projection_dim)
        self.prototypes = SwaVPrototypes(self.projection_dim, self.n_prototypes,
                                         n_steps_frozen_prototypes=settings.steps_per_epoch)
        self.criterion = SwaVLoss(temperature=0.1, sinkhorn_iterations=3, sinkhorn_epsilon=0.05)

    def transform(self) -> Callable:
        s = self.settings
        return SwaVTransform(crop_sizes=(s.image_size, s.local_size), crop_counts=self.crop_counts,
                             **augmentations(s.image_size))

    def loss(self, views: list[Tensor], labels: Tensor, step: int, epoch: int) -> Tensor:
        with torch.no_grad():
            self.prototypes.normalize()
        features = [F.normalize(z, dim=1) for z in self.encode(views, self.backbone, self.head)]
        with self.amp():  # freezes the prototypes while step < n_steps_frozen_prototypes
            scores = [self.prototypes(z, step).float() for z in features]
        n_global = self.crop_counts[0]
        return self.criterion(scores[:n_global], scores[n_global:])


class DINO(Method):
    """DINO (Caron et al. 2021): a student and an EMA teacher (momentum 0.996 -> 1, cosine),
    teacher outputs centred (momentum 0.9) and sharpened (temperature 0.04 -> 0.07 over the
    first 30% of the epochs, at most 30), student temperature 0.1, 2 global + 6 local crops,
    head dim-512-64-2048 with its last layer frozen for the first epoch. The teacher's
    backbone is exported, as in the paper's evaluations."""

    name = "dino"
    citation = "Caron M, Touvron H, Misra I, Jegou H, Mairal J, Bojanowski P, Joulin A. Emerging Properties " \
               "in Self-Supervised Vision Transformers. ICCV 2021."
    weight_decay = 0.04
    output_dim: ClassVar[int] = 2048
    n_local: ClassVar[int] = 6

    def __init__(self, backbone: nn.Module, settings: Settings) -> None:
        super().__init__(backbone, settings)
        self.head = self.make_head()
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = self.make_head()
        self.teacher_head.load_state_dict(self.head.state_dict())
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)
        warmup = min(30, max(1, round(0.3 * settings.epochs)))
        self.criterion = DINOLoss(output_dim=self.output_dim, warmup_teacher_temp=0.04, teacher_temp=0.07,
                                  warmup_teacher_temp_epochs=warmup, student_temp=0.1, center_momentum=0.9)

    def make_head(self) -> DINOProjectionHead:
        with warnings.catch_warnings():  # lightly's head uses torch's deprecated weight_norm: not the user's to fix
            warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
            return DINOProjectionHead(self.dim, 512, 64, self.output_dim, freeze_last_layer=1)

    def transform(self) -> Callable:
        s = self.settings
        return DINOTransform(global_crop_size=s.image_size, local_crop_size=s.local_size, n_local_views=self.n_local,
                             **augmentations(s.image_size))

    def loss(self, views: list[Tensor], labels: Tensor, step: int, epoch: int) -> Tensor:
        with torch.no_grad():
            teacher = self.encode(views[:2], self.teacher_backbone, self.teacher_head)
        student = self.encode(views, self.backbone, self.head)
        return self.criterion(teacher, student, epoch=epoch)

    def after_backward(self, epoch: int) -> None:
        self.head.cancel_last_layer_gradients(epoch)

    def after_step(self, step: int, total_steps: int) -> None:
        momentum = cosine_schedule(step, max(1, total_steps), 0.996, 1.0)
        update_momentum(self.backbone, self.teacher_backbone, m=momentum)
        update_momentum(self.head, self.teacher_head, m=momentum)

    def exported(self) -> nn.Module:
        return self.teacher_backbone


METHODS: dict[str, type[Method]] = {m.name: m for m in (SimCLR, SwAV, DINO, SupCon, MPCS)}
