"""Acevedo peripheral blood (PBC_dataset_normal_DIB): 17,092 CellaVision cells, healthy donors."""

from __future__ import annotations

from pathlib import PurePosixPath

from hemabench.datasets.base import DatasetSpec, Skip, register_dataset

FOLDER_LABELS = {
    "basophil": "BAS", "eosinophil": "EOS", "erythroblast": "EBO", "ig": "MYC",
    "lymphocyte": "LYT", "monocyte": "MON", "neutrophil": "NGS", "platelet": "PLA",
}
# File-name prefix -> the folder it must sit in; the prefix is the record's fine label.
PREFIX_FOLDER = {
    "BA": "basophil", "EO": "eosinophil", "ERB": "erythroblast", "LY": "lymphocyte",
    "MO": "monocyte", "PLATELET": "platelet", "PMY": "ig", "MY": "ig", "MMY": "ig", "IG": "ig",
    "SNE": "neutrophil", "BNE": "neutrophil", "NEUTROPHIL": "neutrophil",
}


@register_dataset
class Acevedo(DatasetSpec):
    name = "acevedo"
    provides = frozenset({"cell-labels"})
    transfer_source = "matek-bm"
    title = "Acevedo normal peripheral blood cells (PBC_dataset_normal_DIB)"
    folder = "PBC_dataset_normal_DIB"
    domain = "blood-acevedo"
    layout = "PBC_dataset_normal_DIB/<basophil|eosinophil|erythroblast|ig|lymphocyte|monocyte|neutrophil|platelet>/<PREFIX>_<n>.jpg"
    source = "https://doi.org/10.17632/snkd93bnjr.1"
    license = "CC BY 4.0"
    citation = "Acevedo et al., Data in Brief 2020, doi:10.1016/j.dib.2020.105474"
    classes = {
        "BAS": "basophil", "EOS": "eosinophil", "EBO": "erythroblast",
        "MYC": "immature granulocyte (ig: promyelocyte, myelocyte, metamyelocyte)",
        "LYT": "lymphocyte", "MON": "monocyte", "NGS": "neutrophil (segmented and band)", "PLA": "platelet",
    }
    expected = {"BAS": 1218, "EOS": 3117, "EBO": 1551, "MYC": 2895, "LYT": 1214, "MON": 1420, "NGS": 3329, "PLA": 2348}
    # Every prefix is a fine label: those of one-prefix classes count as their class does.
    expected_fine = {"BA": 1218, "EO": 3117, "ERB": 1551, "LY": 1214, "MO": 1420, "PLATELET": 2348,
                     "PMY": 592, "MY": 1137, "MMY": 1015, "IG": 151, "SNE": 1646, "BNE": 1633, "NEUTROPHIL": 50}

    def parse(self, rel: PurePosixPath) -> dict:
        if len(rel.parts) != 2:
            raise Skip("expected <class folder>/<file> directly under the root")
        folder = rel.parts[0]
        label = self.class_from_folder(folder, FOLDER_LABELS)
        prefix = rel.name.split("_", 1)[0].upper()
        if prefix not in PREFIX_FOLDER:
            raise Skip(f"file-name prefix {prefix!r} is not a known Acevedo prefix")
        if PREFIX_FOLDER[prefix] != folder:
            raise Skip(f"file name says {PREFIX_FOLDER[prefix]!r} but its folder says {folder!r}")
        return {"label": label, "fine_label": prefix}


@register_dataset
class AcevedoMini(Acevedo):
    """25 cells per class of Acevedo, shipped inside the package so the demo shows real cells.

    The same adapter (labels, fine labels, checks) on the bundled copy (hemabench/data/acevedo_mini);
    its published counts are the sample's own composition, 25 per class."""

    name = "acevedo-mini"
    title = "200-cell sample of Acevedo et al. 2020 (CC BY 4.0)"
    bundled = "acevedo_mini"
    expected = {label: 25 for label in FOLDER_LABELS.values()}
    expected_fine = {"BA": 25, "EO": 25, "ERB": 25, "LY": 25, "MO": 25, "PLATELET": 25,
                     "PMY": 3, "MY": 9, "MMY": 12, "IG": 1, "SNE": 13, "BNE": 11, "NEUTROPHIL": 1}
