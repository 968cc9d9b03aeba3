"""Dataset adapters; importing this package registers every dataset."""

from hemabench.datasets import acevedo, aml_hehr, breakhis, matek_blood, matek_bm, raabin, twins  # noqa: F401
from hemabench.datasets.base import DATASETS, DatasetSpec, Discovery, Skip, Skipped
from hemabench.datasets.resolve import dataset_name, get_dataset
from hemabench.datasets.roots import find_root, load_dataset

__all__ = ["DATASETS", "DatasetSpec", "Discovery", "Skip", "Skipped", "dataset_name", "find_root", "get_dataset", "load_dataset"]
