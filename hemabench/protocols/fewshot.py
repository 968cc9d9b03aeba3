"""Few-shot sweeps (Wenderoth): power transform + PCA + SVM / LR / kNN on per-class support sets.

Support sets are pre-sampled: for each repetition one seeded permutation of every class's
training items, and the support set for n is the first n of each (nested across n, so a
curve is one sample growing). Their hash is recorded, so anyone can rebuild the subsets.
Speed without changing the numbers: the transform and PCA are fitted once per support set
and shared by the three classifiers; identical support sets (n at or above every class's
size) are fitted once; distinct ones run in parallel with joblib. ``engine="fast"`` (the
default) computes the SVM's RBF kernels and kNN's distances by BLAS (:mod:`.kernels`), exact
up to the kernel's last bits; ``engine="reference"`` is the plain scikit-learn classifiers.
Per n, repetitions run in blocks until the rule of :mod:`.stopping` says the mean is precise.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
from joblib import Parallel, delayed
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from hemabench.compute.backends import job_count
from hemabench.protocols.kernels import fast_proba, is_exact
from hemabench.protocols.power import ExactPowerTransformer
from hemabench.protocols.progress import progress_bar
from hemabench.protocols.stopping import StoppingRule, confusion_balanced_accuracy

N_GRID = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000)  # Wenderoth's grid plus the cheap 1 and 10
CLASSIFIERS = ("svm", "lr", "knn")
ENGINES = ("fast", "reference")


REFERENCE_SETTINGS = {  # Wenderoth's reference code; tasks record (and may override) these
    "svm": {"kernel": "rbf", "C": 1.0, "gamma": "scale", "class_weight": "balanced", "probability": True},
    "lr": {"C": 2.5, "class_weight": "balanced", "max_iter": 10000},
    "knn": {"n_neighbors": 3, "weights": "distance"},
}
_ESTIMATORS = {"svm": SVC, "lr": LogisticRegression, "knn": KNeighborsClassifier}


def make_classifier(name: str, seed: int, settings: dict | None = None, n_train: int | None = None):
    """The classifier with ``settings`` (default: the reference's); SVC's internal Platt-scaling
    CV is seeded with the task seed. kNN's k is capped at the number of training cells (n = 1 on
    a two-class dataset of one's own; never the case on the registered datasets)."""
    if name not in _ESTIMATORS:
        raise ValueError(f"unknown classifier {name!r}; one of {CLASSIFIERS}")
    kwargs = classifier_settings(name, {name: settings}, n_train)
    if name == "svm":
        kwargs["random_state"] = seed
    return _ESTIMATORS[name](**kwargs)


def settings_problem(name: str, settings) -> str | None:
    """Why ``settings`` cannot configure classifier ``name`` (unknown keyword, no probabilities), or None;
    the words follow the classifier's name (``svm has no setting 'gama'; ...``)."""
    if not isinstance(settings, dict):
        return f"must be a mapping of {_ESTIMATORS[name].__name__} keywords, got {settings!r}"
    known = set(_ESTIMATORS[name]().get_params()) - {"random_state"}
    unknown = sorted(set(settings) - known)
    if unknown:
        return f"has no setting {unknown[0]!r}; {_ESTIMATORS[name].__name__} takes: {', '.join(sorted(known))}"
    if name == "svm" and settings.get("probability") is not True:
        return "needs probability: true (predictions are the argmax of predicted probabilities)"
    return None


def support_permutations(train_idx: np.ndarray, labels: np.ndarray, repetitions: int, seed: int) -> list[dict]:
    """Per repetition: class -> that class's training rows in a seeded random order."""
    classes = sorted(set(labels[train_idx]))
    by_class = {c: np.sort(train_idx[labels[train_idx] == c]) for c in classes}
    perms = []
    for rep in range(repetitions):
        rng = np.random.default_rng([seed, rep])
        perms.append({c: rng.permutation(rows) for c, rows in by_class.items()})
    return perms


def support_hash(perms: list[dict], ids: np.ndarray) -> str:
    """sha256 over (repetition, class, ordered ids): fixes every support set of the sweep."""
    digest = hashlib.sha256()
    for rep, perm in enumerate(perms):
        for c in sorted(perm):
            digest.update(f"{rep}\t{c}\t".encode() + "\t".join(map(str, ids[perm[c]])).encode() + b"\n")
    return digest.hexdigest()


def support_set(perm: dict, n: int) -> np.ndarray:
    """The first n rows of every class (all of a class with fewer), sorted so equal sets fit equally."""
    return np.sort(np.concatenate([rows[:n] for rows in perm.values()]))


def effective_n(perm: dict, n: int) -> dict[str, int]:
    return {str(c): int(min(n, len(rows))) for c, rows in perm.items()}


def classifier_settings(name: str, settings: dict | None, n_train: int | None = None) -> dict:
    """The keywords classifier ``name`` is built with (``settings``: classifier -> keywords)."""
    kwargs = dict(REFERENCE_SETTINGS[name] if (settings or {}).get(name) is None else settings[name])
    if name == "knn" and n_train:
        kwargs["n_neighbors"] = min(kwargs.get("n_neighbors", 5), n_train)
    return kwargs


def fit_proba(train_x, train_y, test_x, classifiers=CLASSIFIERS, seed: int = 0,
              settings: dict | None = None, engine: str = "fast") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One fit of the reference pipeline per classifier, sharing the transform and PCA:
    classifier -> (its classes, predicted probabilities on ``test_x``). ``settings``:
    classifier -> keywords (default: the reference's); ``engine``: one of ENGINES."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; one of {ENGINES}")
    scaler, pca = ExactPowerTransformer(), PCA()  # what make_pipeline(PowerTransformer(), PCA(), clf) computes
    z_train = pca.fit_transform(scaler.fit_transform(np.asarray(train_x, dtype=np.float64)))  # in float64, as
    z_test = pca.transform(scaler.transform(np.asarray(test_x, dtype=np.float64)))  # float32 would overflow
    kwargs = {name: classifier_settings(name, settings, len(train_x)) for name in classifiers}
    fast = {name: kw for name, kw in kwargs.items() if engine == "fast" and is_exact(name, kw)}
    out = fast_proba(z_train, np.asarray(train_y), z_test, fast, seed) if fast else {}
    for name in classifiers:
        if name in out:
            continue
        with warnings.catch_warnings():  # SVC(probability=True) is the reference; deprecated in scikit-learn 1.9
            warnings.filterwarnings("ignore", message="The `probability` parameter was deprecated", category=FutureWarning)
            model = make_classifier(name, seed, (settings or {}).get(name), len(train_x)).fit(z_train, train_y)
        out[name] = (model.classes_, model.predict_proba(z_test))
    return {name: out[name] for name in classifiers}


def fit_predict(train_x, train_y, test_x, classifiers=CLASSIFIERS, seed: int = 0,
                settings: dict | None = None, engine: str = "fast") -> dict[str, np.ndarray]:
    """Prediction = argmax of predicted probabilities, as in the reference."""
    return {name: classes[np.argmax(proba, axis=1)] for name, (classes, proba)
            in fit_proba(train_x, train_y, test_x, classifiers, seed, settings, engine).items()}


def _job(train_x, train_y, rows, test_x, test_y, label_order, classifiers, seed, map_pred, settings=None,
         engine="fast"):
    preds = fit_predict(train_x[rows], train_y[rows], test_x, classifiers, seed, settings, engine)
    return {name: confusion_matrix(test_y, map_pred(p) if map_pred else p, labels=label_order)
            for name, p in preds.items()}


def sweep(train_x: np.ndarray, train_y: np.ndarray, perms: list[dict], test_x: np.ndarray, test_y: np.ndarray,
          label_order: list[str], n_grid=N_GRID, classifiers=CLASSIFIERS, seed: int = 0, n_jobs: int | None = None,
          map_pred=None, settings: dict | None = None, progress: bool = False, desc: str = "sweep",
          rule: StoppingRule | None = None, engine: str = "fast") -> dict:
    """Confusion matrices per (classifier, n) and repetition on the test set.

    ``perms`` index rows of ``train_x``; ``map_pred`` maps predicted labels onto the scored
    ones (class mappings across domains); ``settings`` configures the classifiers; ``rule``
    says how many repetitions each n gets (default: all of ``perms``). Each distinct support
    set is one independent job (its fits depend on nothing else, every one seeded with
    ``seed``), so the jobs of a block may run anywhere joblib's active backend sends them
    (``hemabench run --backend dask``) and give the same numbers; ``progress`` shows fits done.
    Returns {"confusions": {(clf, n): [K x K per rep]}, "repetitions": {n: count},
    "effective_n": {n: {class: n_eff}}, "fits": number of pipeline fits actually run}."""
    rule = rule or StoppingRule(len(perms), len(perms))
    if rule.maximum > len(perms):
        raise ValueError(f"the rule asks for up to {rule.maximum} repetitions but {len(perms)} support sets were drawn")
    n_jobs = job_count(n_jobs)
    by_key: dict[bytes, dict] = {}
    plan: dict[tuple[int, int], bytes] = {}
    counts, open_ns = dict.fromkeys(n_grid, 0), list(n_grid)
    with progress_bar(None, desc, progress) as bar:
        while open_ns:  # one block of repetitions for every n still short of the rule's precision
            wanted = {n: rule.next_count(counts[n]) for n in open_ns}
            new: dict[bytes, np.ndarray] = {}
            for n in open_ns:
                for rep in range(counts[n], wanted[n]):
                    rows = support_set(perms[rep], n)
                    plan[(rep, n)] = key = hashlib.sha1(rows.tobytes()).digest()
                    if key not in by_key:
                        new.setdefault(key, rows)
            keys = list(new)
            bar.total = (bar.total or 0) + len(keys) * len(classifiers)
            jobs = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_job)(train_x, train_y, new[k], test_x, test_y, label_order, classifiers, seed, map_pred,
                              settings, engine) for k in keys) if keys else []
            for key, result in zip(keys, jobs):  # in submission order, whatever order they finish in
                by_key[key] = result
                bar.update(len(classifiers))
            counts.update(wanted)
            open_ns = [n for n in open_ns if rule.stop_at(
                [[confusion_balanced_accuracy(by_key[plan[(r, n)]][c]) for r in range(counts[n])]
                 for c in classifiers]) is None]
    confusions = {(c, n): [by_key[plan[(rep, n)]][c] for rep in range(counts[n])] for c in classifiers for n in n_grid}
    return {"confusions": confusions, "repetitions": counts,
            "effective_n": {n: effective_n(perms[0], n) for n in n_grid}, "fits": len(by_key) * len(classifiers)}


def saturation_n(perms: list[dict], n_grid=N_GRID) -> int:
    """The smallest grid n at which every class uses all its training items (the curve is flat after)."""
    largest = max(len(rows) for rows in perms[0].values())
    return next((n for n in n_grid if n >= largest), n_grid[-1])


def normalised_auc(n_values, scores) -> float:
    """Area under score(n) over log2(n), divided by the log2 range: 1.0 = perfect at every n."""
    x = np.log2(np.asarray(n_values, dtype=float))
    if len(x) < 2:
        return float(scores[0])
    return float(np.trapezoid(scores, x) / (x[-1] - x[0]))
