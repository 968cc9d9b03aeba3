"""AML Hehr (AML-Cytomorphology_MLL_Helmholtz): patient bags of single-cell crops."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

from hemabench.datasets.base import DatasetSpec, Skip, register_dataset
from hemabench.errors import HemabenchError

METADATA_NAMES = ("metadata.csv", "metadata.xlsx")
BLAST_COLUMNS = ("pb_myeloblast", "pb_promyelocyte", "pb_myelocyte")


class PatientBagDataset(DatasetSpec):
    """Layout ``<bag label>/<patient id>/<cell image>``; copies may nest it deeper."""

    provides = frozenset({"patients", "bag-labels"})

    def parse(self, rel: PurePosixPath) -> dict:
        if len(rel.parts) < 3:
            raise Skip("expected <bag label>/<patient id>/<image>")
        label = self.class_from_folder(rel.parts[-3])
        return {"label": label, "bag_label": label, "patient": rel.parts[-2]}

    def patient_metadata(self, root: Path) -> pd.DataFrame | None:
        """The sheet beside the bags (``patient_id, bag_label, pb_myeloblast, ...``), indexed by patient."""
        for folder in (root, root.parent):
            for name in METADATA_NAMES:
                path = folder / name
                if not path.is_file():
                    continue
                try:
                    table = pd.read_csv(path) if path.suffix == ".csv" else pd.read_excel(path)
                except Exception as exc:  # noqa: BLE001 - any reader failure is reported with the file
                    raise HemabenchError(f"{path}: cannot read the patient metadata sheet ({exc})") from None
                if "patient_id" not in table.columns:
                    raise HemabenchError(f"{path}: the patient metadata sheet has no 'patient_id' column")
                table["patient_id"] = table["patient_id"].astype(str)
                return table.set_index("patient_id")
        return None


@register_dataset
class AmlHehr(PatientBagDataset):
    name = "aml-hehr"
    title = "AML Hehr (AML-Cytomorphology_MLL_Helmholtz)"
    folder = "AML-Cytomorphology_MLL_Helmholtz"
    domain = "blood-aml"
    layout = "AML-Cytomorphology_MLL_Helmholtz/<control|PML_RARA|NPM1|CBFB_MYH11|RUNX1_RUNX1T1>/<patient id>/image_<n>.tif"
    source = "https://doi.org/10.7937/6ppe-4020"
    license = "CC BY 4.0"
    citation = "Hehr et al., PLOS Digital Health 2023, doi:10.1371/journal.pdig.0000187"
    classes = {
        "control": "healthy stem-cell donor", "PML_RARA": "APL with PML::RARA",
        "NPM1": "AML with mutated NPM1", "CBFB_MYH11": "AML with CBFB::MYH11",
        "RUNX1_RUNX1T1": "AML with RUNX1::RUNX1T1",
    }
    counts_are_exact = False  # 189 patients / 81,214 cells or 242 smears / ~101,949 cells by source
    ignored_files = frozenset(METADATA_NAMES)
