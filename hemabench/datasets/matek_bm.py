"""Matek bone marrow (BMC): 171,374 MGG-stained cells in 21 classes, TCIA."""

from __future__ import annotations

from pathlib import PurePosixPath

from hemabench.datasets.base import DatasetSpec, Skip, register_dataset


class ClassFolderDataset(DatasetSpec):
    """Layout ``<CLASS>/[chunk/]<CLASS>_<n>.<ext>``: the first folder is the label.

    Large classes are chunked into sub-folders, so any depth below the class folder is
    accepted; a file-name prefix that names another known class is a data error.
    """

    provides = frozenset({"cell-labels"})

    def parse(self, rel: PurePosixPath) -> dict:
        if len(rel.parts) < 2:
            raise Skip("file directly under the root; expected <CLASS>/<file>")
        label = self.class_from_folder(rel.parts[0])
        prefix = rel.name.split("_", 1)[0]
        if prefix in self.classes and prefix != label:
            raise Skip(f"file name says class {prefix!r} but its folder says {label!r}")
        return {"label": label}


@register_dataset
class MatekBoneMarrow(ClassFolderDataset):
    name = "matek-bm"
    title = "Matek bone marrow cytomorphology (BMC)"
    folder = "BM_cytomorphology_data"
    domain = "bone-marrow"
    layout = "BM_cytomorphology_data/<CLASS>/[0001-1000/]<CLASS>_<5 digits>.jpg, 21 class folders (ABE ... PMO)"
    source = "https://doi.org/10.7937/TCIA.AXH3-T579"
    license = "CC BY 4.0"
    citation = "Matek et al., Blood 2021, doi:10.1182/blood.2020010568"
    classes = {
        "ABE": "abnormal eosinophil", "ART": "artefact", "BAS": "basophil", "BLA": "blast",
        "EBO": "erythroblast", "EOS": "eosinophil", "FGC": "faggot cell", "HAC": "hairy cell",
        "KSC": "smudge cell", "LYI": "immature lymphocyte", "LYT": "lymphocyte",
        "MMZ": "metamyelocyte", "MON": "monocyte", "MYB": "myelocyte", "NGB": "band neutrophil",
        "NGS": "segmented neutrophil", "NIF": "not identifiable", "OTH": "other cell",
        "PEB": "proerythroblast", "PLM": "plasma cell", "PMO": "promyelocyte",
    }
    expected = {
        "ABE": 8, "ART": 19630, "BAS": 441, "BLA": 11973, "EBO": 27395, "EOS": 5883, "FGC": 47,
        "HAC": 409, "KSC": 42, "LYI": 65, "LYT": 26242, "MMZ": 3055, "MON": 4040, "MYB": 6557,
        "NGB": 9968, "NGS": 29424, "NIF": 3538, "OTH": 294, "PEB": 2740, "PLM": 7629, "PMO": 11994,
    }
