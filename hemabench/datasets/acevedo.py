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
    # The registered split of the bundled sample (benchmarks/splits.yaml): the fingerprint of the
    # materialised split, and per fold the sha256 over its sorted test paths ("<path>\n" each) and
    # its test cells per class. Fixed data, so any change to the files or the rule shows here.
    registered_splits = {"cv5@v1": {
        "fingerprint": "19f57959bc49dafbf4cdb2c258b502a7c1891ca3b9c0b884b28a1864ef5357e2",
        "test_sha256": {
            "fold0": "eb979b29aefd333f40dc959ef0c624ba63008b98d38703f9b8130215649bf3d2",
            "fold1": "c0295528f400d722532880a2588f9ab29509b46552a9b10b28ade6be70d1c074",
            "fold2": "9ceb5c37ab16ccc165764109560b56bb6d88672a477223991095b18ac8b3d5eb",
            "fold3": "13e9b464e00c1a7e120e51ea46db3d2ffdf2aed31918f103de71451b70e45bf8",
            "fold4": "c1589d10957f369b147409d5d5f0c43ab312a998dd273c6e78d10ada484d99e6",
        },
        "test_counts_per_class": {label: 5 for label in FOLDER_LABELS.values()},  # in every fold
    }}
