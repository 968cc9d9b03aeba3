"""Self-supervised (and supervised-contrastive) pretraining baselines: ``hemabench pretrain``.

SimCLR, SwAV, DINO, SupCon and MPCS on any registered dataset, built on lightly's losses,
heads and transforms (protocols.md section 7). The output folder is an encoder that
``hemabench run --encoder local:DIR`` evaluates like any registered one, so a pretraining
recipe is judged by the same tasks as the published models. See docs/pretraining.md.
"""

from hemabench.pretrain.data import PAIR_STRATEGIES
from hemabench.pretrain.methods import METHODS
from hemabench.pretrain.train import PretrainConfig, PretrainResult, pretrain

__all__ = ["METHODS", "PAIR_STRATEGIES", "PretrainConfig", "PretrainResult", "pretrain"]
