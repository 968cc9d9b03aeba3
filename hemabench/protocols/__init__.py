"""Evaluation protocols on precomputed embeddings (they never touch images).

* :mod:`~hemabench.protocols.probe` - the DinoBloom linear probe (multinomial logistic
  regression, C = M*K/100), solved in torch with scikit-learn's objective and L-BFGS.
* :mod:`~hemabench.protocols.knn` - k-nearest-neighbour voting, batched on torch.
"""

from hemabench.protocols.knn import knn_predict
from hemabench.protocols.probe import TorchLogisticRegression, fit_probe, probe_C

__all__ = ["TorchLogisticRegression", "fit_probe", "knn_predict", "probe_C"]
