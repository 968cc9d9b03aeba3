"""Matek blood (AML-Cytomorphology_LMU): 18,365 single cells from 200 smears, TCIA."""

from __future__ import annotations

from hemabench.datasets.base import register_dataset
from hemabench.datasets.matek_bm import ClassFolderDataset


@register_dataset
class MatekBlood(ClassFolderDataset):
    name = "matek-blood"
    transfer_source = "matek-bm"
    title = "Matek peripheral blood (AML-Cytomorphology_LMU)"
    folder = "AML-Cytomorphology_LMU"
    domain = "blood-matek"
    layout = "AML-Cytomorphology_LMU/<ABBR>/<ABBR>_<4 digits>.tiff, 15 class folders (BAS ... PMO)"
    source = "https://doi.org/10.7937/tcia.2019.36f5o9ld"
    license = "CC BY 3.0"
    citation = "Matek et al., Nature Machine Intelligence 2019, doi:10.1038/s42256-019-0101-9"
    classes = {
        "BAS": "basophil", "EBO": "erythroblast", "EOS": "eosinophil", "KSC": "smudge cell",
        "LYA": "atypical lymphocyte", "LYT": "lymphocyte", "MMZ": "metamyelocyte",
        "MOB": "monoblast", "MON": "monocyte", "MYB": "myelocyte", "MYO": "myeloblast",
        "NGB": "band neutrophil", "NGS": "segmented neutrophil", "PMB": "bilobed promyelocyte",
        "PMO": "promyelocyte",
    }
    expected = {
        "BAS": 79, "EBO": 78, "EOS": 424, "KSC": 15, "LYA": 11, "LYT": 3937, "MMZ": 15, "MOB": 26,
        "MON": 1789, "MYB": 42, "MYO": 3268, "NGB": 109, "NGS": 8484, "PMB": 18, "PMO": 70,
    }
