"""Raabin-WBC: five white-cell classes with the official Train / TestA (/ TestB) split."""

from __future__ import annotations

from pathlib import PurePosixPath

from hemabench.datasets.base import DatasetSpec, Skip, register_dataset

FOLDER_LABELS = {"Basophil": "BAS", "Eosinophil": "EOS", "Lymphocyte": "LYT", "Monocyte": "MON", "Neutrophil": "NGS"}
OFFICIAL_SPLITS = ("Train", "TestA", "TestB")


@register_dataset
class Raabin(DatasetSpec):
    name = "raabin"
    provides = frozenset({"cell-labels"})
    transfer_source = "matek-bm"
    title = "Raabin-WBC"
    folder = "Raabin-WBC"
    domain = "blood-raabin"
    layout = "Raabin-WBC/<Train|TestA|TestB>/<Basophil|Eosinophil|Lymphocyte|Monocyte|Neutrophil>/*.jpg"
    source = "https://raabindata.com/free-data/"
    license = "CC BY-SA 4.0"
    citation = "Kouzehkanan et al., Scientific Reports 2022, doi:10.1038/s41598-021-04426-x"
    classes = {"BAS": "basophil", "EOS": "eosinophil", "LYT": "lymphocyte", "MON": "monocyte", "NGS": "neutrophil"}
    # Published counts cover Train + TestA (Train 212/744/2427/561/6231, TestA 89/322/1034/234/2660).
    expected = {"BAS": 301, "EOS": 1066, "LYT": 3461, "MON": 795, "NGS": 8891}
    counted_splits = ("Train", "TestA")

    def parse(self, rel: PurePosixPath) -> dict:
        if len(rel.parts) < 3 or rel.parts[-3] not in OFFICIAL_SPLITS:
            raise Skip(f"expected <{'|'.join(OFFICIAL_SPLITS)}>/<Class>/<file>")
        label = self.class_from_folder(rel.parts[-2], FOLDER_LABELS)
        return {"label": label, "official_split": rel.parts[-3]}
