"""BreakHis v1: breast histopathology at 40X/100X/200X/400X, 82 patients."""

from __future__ import annotations

from pathlib import PurePosixPath

from hemabench.datasets.base import DatasetSpec, Skip, register_dataset

SUBTYPES = {  # code -> (tumour class folder, subtype folder)
    "A": ("benign", "adenosis"), "F": ("benign", "fibroadenoma"),
    "PT": ("benign", "phyllodes_tumor"), "TA": ("benign", "tubular_adenoma"),
    "DC": ("malignant", "ductal_carcinoma"), "LC": ("malignant", "lobular_carcinoma"),
    "MC": ("malignant", "mucinous_carcinoma"), "PC": ("malignant", "papillary_carcinoma"),
}
TUMOUR = {"B": "benign", "M": "malignant"}
MAGNIFICATIONS = (40, 100, 200, 400)


def parse_breakhis_name(name: str) -> dict:
    """Split 'SOB_B_A-14-22549AB-40-001.png' into its fields, or raise Skip."""
    stem = name.rsplit(".", 1)[0]
    parts = stem.split("-")
    if len(parts) != 5:
        raise Skip(f"file name {name!r} does not split on '-' into SOB_<B|M>_<subtype>-<year>-<id>-<mag>-<seq>")
    head, year, patient_id, magnification, sequence = parts
    fields = head.split("_")
    if len(fields) != 3 or fields[0] != "SOB" or fields[1] not in TUMOUR or fields[2] not in SUBTYPES:
        raise Skip(f"file name {name!r} has an unknown procedure/tumour/subtype part {head!r}")
    if not magnification.isdigit() or int(magnification) not in MAGNIFICATIONS:
        raise Skip(f"file name {name!r} has an unknown magnification {magnification!r}")
    return {
        "tumour": TUMOUR[fields[1]], "tumour_code": fields[1], "subtype": fields[2], "year": year,
        "patient_id": patient_id, "magnification": int(magnification), "sequence": sequence,
    }


class BreakHisLayout(DatasetSpec):
    """Parses everything from the file name and cross-checks it against the folders."""

    anchor = "histology_slides/breast"
    provides = frozenset({"tissue-labels", "tumour-subtypes", "patients", "magnifications"})

    def parse(self, rel: PurePosixPath) -> dict:
        if len(rel.parts) < 6:
            raise Skip("expected <benign|malignant>/SOB/<subtype>/<patient dir>/<mag>X/<file>")
        tumour_dir, _sob, subtype_dir, patient_dir, mag_dir, name = rel.parts[-6:]
        info = parse_breakhis_name(name)
        folder_tumour, folder_subtype = SUBTYPES[info["subtype"]]
        expected_patient_dir = f"SOB_{info['tumour_code']}_{info['subtype']}_{info['year']}-{info['patient_id']}"
        checks = [
            ("tumour class", folder_tumour, tumour_dir),
            ("subtype", folder_subtype, subtype_dir),
            ("patient", expected_patient_dir, patient_dir),
            ("magnification", f"{info['magnification']}X", mag_dir),
        ]
        for what, from_name, from_folder in checks:
            if from_name != from_folder:
                raise Skip(f"file name says {what} {from_name!r} but its folder says {from_folder!r}")
        return {
            "label": info["tumour"],
            "fine_label": info["subtype"],
            "patient": f"{info['year']}-{info['patient_id']}",
            "magnification": info["magnification"],
        }


@register_dataset
class BreakHis(BreakHisLayout):
    name = "breakhis"
    title = "BreakHis v1 breast histopathology"
    folder = "BreaKHis_v1"
    domain = "breast-he"
    layout = (
        "BreaKHis_v1/histology_slides/breast/<benign|malignant>/SOB/<subtype>/<patient dir>/"
        "<40X|100X|200X|400X>/SOB_<B|M>_<subtype>-<year>-<id>-<mag>-<seq>.png"
    )
    source = "https://web.inf.ufpr.br/vri/databases/breast-cancer-histopathological-database-breakhis/"
    license = "research use (see source)"
    citation = "Spanhol et al., IEEE TBME 2016, doi:10.1109/TBME.2015.2496264"
    classes = {"benign": "benign tumour", "malignant": "malignant tumour"}
    expected = {"benign": 2480, "malignant": 5429}
    expected_fine = {"A": 444, "F": 1014, "PT": 453, "TA": 569, "DC": 3451, "LC": 626, "MC": 792, "PC": 560}
