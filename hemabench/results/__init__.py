"""Result files and the scoring that fills them."""

from hemabench.results.files import build_result, predictions_payload, result_path
from hemabench.results.result import SCHEMA_PATH, SCHEMA_VERSION, Result, ResultError, Score
from hemabench.results.scoring import score_predictions

__all__ = ["SCHEMA_PATH", "SCHEMA_VERSION", "Result", "ResultError", "Score", "build_result", "predictions_payload",
           "result_path", "score_predictions"]
