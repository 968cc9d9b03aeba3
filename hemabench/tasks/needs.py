"""What a task needs from a dataset, so that datasets, not task modules, decide who runs where.

A dataset declares what its records carry (``DatasetSpec.provides``: cell-labels, patients,
bag-labels, magnifications, tissue-labels, tumour-subtypes) and, for blood datasets, the
bone-marrow dataset it pairs with (``transfer_source``). A task declares a ``Needs``; the
registered datasets it serves, its split per dataset and its source dataset all follow.
Adding a dataset therefore never needs a task edit, and a user's own data (``folder:``,
``hf:``) is served by exactly the tasks whose needs it meets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Needs:
    provides: frozenset[str] = frozenset({"cell-labels"})  # every one must be provided
    split: str | None = None  # preferred split rule, used where the dataset defines one of that name
    validation: bool = False  # the split must rotate a validation fold (train / val / test)
    source_split: str | None = None  # set: needs a source dataset (``transfer_source``) split by this rule

    def missing(self, spec) -> list[str]:
        """What ``spec`` lacks for this task (empty: the task can run on it)."""
        lacks = sorted(self.provides - set(spec.provides))
        if self.source_split and not spec.transfer_source:
            lacks.append("a source dataset and class mapping")
        return lacks

    def serves(self, spec) -> bool:
        return not self.missing(spec)

    def split_for(self, dataset: str) -> str | None:
        """The split rule this task uses on ``dataset`` (None: the dataset's default rule).

        A split chosen for a custom dataset (``--split``) wins unless the task needs a
        validation fold the chosen rule does not have."""
        from hemabench.datasets.resolve import get_dataset
        from hemabench.splits import split_names

        chosen = getattr(get_dataset(dataset), "chosen_split", None)
        if chosen and not self.validation:
            return chosen
        return self.split if self.split in split_names(dataset) else None

    def source_for(self, dataset: str) -> tuple[str, str] | None:
        """(source dataset, its split rule) for tasks that train on one dataset and test on another."""
        from hemabench.datasets.resolve import get_dataset

        source = get_dataset(dataset).transfer_source
        return (source, self.source_split) if self.source_split and source else None

    def describe(self) -> str:
        parts = sorted(self.provides) + (["a source dataset and mapping"] if self.source_split else [])
        return ", ".join(parts)
