"""Result files and the scoring that fills them."""

from hemabench.results.files import (
    SCHEMA_PATH,
    SCHEMA_VERSION,
    build_result,
    is_current,
    predictions_payload,
    read_result,
    result_path,
    write_result,
)
from hemabench.results.scoring import score_predictions

__all__ = ["SCHEMA_PATH", "SCHEMA_VERSION", "build_result", "is_current", "predictions_payload",
           "read_result", "result_path", "score_predictions", "write_result"]
