"""Fixture trees that copy the real datasets' names and nesting, with the defects seen in the wild."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

DS_STORE = b"\x00\x00\x00\x01Bud1\x00\x00\x10\x00\x00\x00\x08\x00" + b"\x00" * 64


def image_bytes(fmt: str, seed: int = 0, size: int = 12) -> bytes:
    """A small, valid image of the given PIL format with seeded pixel content."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def write_image(path: Path, fmt: str | None = None, seed: int = 0) -> Path:
    fmt = fmt or {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(fmt, seed))
    return path


def write_truncated(path: Path, fmt: str = "JPEG") -> Path:
    data = image_bytes(fmt, seed=99, size=64)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def matek_bm(root: Path) -> Path:
    """BM_cytomorphology_data: chunked large classes, flat small ones, a truncated JPEG, an empty class."""
    base = root / "BM_cytomorphology_data"
    for i in range(1, 5):
        write_image(base / "ART" / "0001-1000" / f"ART_{i:05d}.jpg", seed=i)
    write_image(base / "ART" / "1001-2000" / "ART_01001.jpg", seed=5)
    for i in range(1, 4):
        write_image(base / "ABE" / f"ABE_{i:05d}.jpg", seed=10 + i)
    for i in range(1, 6):
        write_image(base / "NGS" / "0001-1000" / f"NGS_{i:05d}.jpg", seed=20 + i)
    write_truncated(base / "NGS" / "0001-1000" / "NGS_00006.jpg")
    write_image(base / "BLA" / f"BLA_{1:05d}.JPG", seed=30)  # upper-case extension
    (base / "FGC").mkdir(parents=True)  # empty class folder
    return base


def matek_blood(root: Path) -> Path:
    """AML-Cytomorphology_LMU: <ABBR>/<ABBR>_<4 digits>.tiff, one .TIF, one non-image."""
    base = root / "AML-Cytomorphology_LMU"
    for label, n in {"NGS": 6, "LYT": 4, "MYO": 3, "BAS": 2}.items():
        for i in range(1, n + 1):
            write_image(base / label / f"{label}_{i:04d}.tiff", seed=i)
    write_image(base / "MON" / "MON_0001.TIF", fmt="TIFF")
    write_truncated(base / "MON" / "MON_0002.tiff", fmt="TIFF")
    (base / "LYT" / "Thumbs.db").write_bytes(b"\x00" * 10)
    return base


ACEVEDO_FILES = {
    "basophil": ["BA_100102.jpg", "BA_47.jpg"], "eosinophil": ["EO_10.jpg", "EO_11.jpg"],
    "erythroblast": ["ERB_1.jpg"], "ig": ["PMY_1.jpg", "MY_2.jpg", "MMY_3.jpg", "IG_4.jpg"],
    "lymphocyte": ["LY_1.jpg", "LY_2.jpg"], "monocyte": ["MO_1.jpg"],
    "neutrophil": ["SNE_1.jpg", "BNE_2.jpg", "NEUTROPHIL_3.jpg"], "platelet": ["PLATELET_1.jpg", "PLATELET_2.jpg"],
}


def acevedo(root: Path) -> Path:
    """PBC_dataset_normal_DIB with a macOS .DS_Store renamed to .jpg and a misfiled prefix."""
    base = root / "PBC_dataset_normal_DIB"
    for folder, names in ACEVEDO_FILES.items():
        for i, name in enumerate(names):
            write_image(base / folder / name, seed=i)
    (base / "neutrophil" / "._SNE_9.jpg").write_bytes(DS_STORE)  # not an image, named like one
    write_image(base / "ig" / "SNE_77.jpg")  # file name disagrees with its folder
    return base


RAABIN_COUNTS = {"Train": {"Basophil": 2, "Eosinophil": 2, "Lymphocyte": 3, "Monocyte": 2, "Neutrophil": 4},
                 "TestA": {"Basophil": 1, "Eosinophil": 1, "Lymphocyte": 2, "Monocyte": 1, "Neutrophil": 2}}


def raabin(root: Path, name: str = "Raabin-WBC") -> Path:
    base = root / name
    for split, classes in RAABIN_COUNTS.items():
        for folder, n in classes.items():
            for i in range(n):
                write_image(base / split / folder / f"{split}_{folder}_{i}.jpg", seed=i)
    return base


def aml_hehr(root: Path) -> Path:
    """<label>/<patient>/image_<n>.tif, one patient with old-style NNN.TIF names."""
    base = root / "AML-Cytomorphology_MLL_Helmholtz"
    labels = ["control", "PML_RARA", "NPM1", "CBFB_MYH11", "RUNX1_RUNX1T1"]
    for li, label in enumerate(labels):
        for p in range(5):
            patient = f"{label[:3].upper()}{li}{p:02d}"
            for n in range(3):
                write_image(base / label / patient / f"image_{n}.tif", seed=n)
    for n in range(2):
        write_image(base / "NPM1" / "OLD01" / f"{n:03d}.TIF", fmt="TIFF")
    (base / "metadata.csv").write_text("patient_id,bag_label\n")
    return base


BREAKHIS_PATIENTS = [  # (tumour, subtype code, folder, year, id)
    ("B", "A", "adenosis", "14", "22549AB"), ("B", "F", "fibroadenoma", "14", "9133"),
    ("B", "PT", "phyllodes_tumor", "14", "21998AB"), ("B", "TA", "tubular_adenoma", "14", "3411F"),
    ("M", "DC", "ductal_carcinoma", "14", "2523"), ("M", "DC", "ductal_carcinoma", "14", "10926"),
    ("M", "LC", "lobular_carcinoma", "14", "15570C"), ("M", "MC", "mucinous_carcinoma", "14", "13418DE"),
    ("M", "PC", "papillary_carcinoma", "14", "9146"),
]


def breakhis(root: Path, per_mag: int = 2) -> Path:
    base = root / "BreaKHis_v1" / "histology_slides" / "breast"
    for tumour, code, folder, year, pid in BREAKHIS_PATIENTS:
        klass = "benign" if tumour == "B" else "malignant"
        patient_dir = base / klass / "SOB" / folder / f"SOB_{tumour}_{code}_{year}-{pid}"
        for mag in (40, 100, 200, 400):
            for seq in range(1, per_mag + 1):
                write_image(patient_dir / f"{mag}X" / f"SOB_{tumour}_{code}-{year}-{pid}-{mag}-{seq:03d}.png", seed=seq)
    # a file whose name says 100X but sits in the 40X folder
    wrong = base / "benign" / "SOB" / "adenosis" / "SOB_B_A_14-22549AB" / "40X" / "SOB_B_A-14-22549AB-100-009.png"
    write_image(wrong)
    return root / "BreaKHis_v1"


def skewed_blobs(n_per_class: int, classes: int, dim: int, seed: int = 0, shift: float = 1.0):
    """Gaussian class blobs, exponentiated so that the few-shot pipeline's power transform matters."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, shift, (classes, dim))
    X = np.exp(np.concatenate([c + rng.normal(0, 1, (n_per_class, dim)) for c in centres]) / 3)
    return X, np.repeat([f"c{i}" for i in range(classes)], n_per_class)
