"""Classic learners on hand-made features: extractor -> standard scaler -> SVM or KNN (scikit-learn pipelines).

- **SVM** (``SVC``): an RBF-kernel support-vector machine, C = 10, gamma = 1 / (D Var(x)) ("scale"); one-vs-one for
  many classes. Maximises the margin between classes in the kernel's feature space.
- **KNN** (``KNeighborsClassifier``): the majority label of the k = 5 nearest training vectors (Euclidean).

Features are standardised first (zero mean, unit variance per dimension): both learners measure distances. With
``grid_search`` the scaler + classifier is tuned by stratified 5-fold cross-validation on the training set only; the
features are computed once, outside the search.

Saving uses joblib (a pickle): a pickle can run code when loaded, so load only pipelines you saved yourself. The file
is written with its SHA-256 beside it, and :func:`load_pipeline` refuses a file whose digest does not match. It is
then read by an unpickler that builds only classes of scikit-learn, NumPy, SciPy, joblib's array wrapper and
visionlab, plus the few reconstructor functions they name (``PIPELINE_FUNCTIONS``); a file naming anything else
(``os.system``, ``builtins.eval``, ...) is refused before it runs. (skops would be the other way; it is not a
dependency of visionlab, and this reader keeps the run folders written so far readable.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib
from joblib.numpy_pickle import NumpyUnpickler
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from visionlab.util.errors import ConfigError, DataError
from visionlab.util.io import atomic_write, write_json

CLASSIFIERS = ("svm", "knn")

# What a saved pipeline may build: classes from these packages, and these functions (array and Cython reconstructors).
PIPELINE_PACKAGES = ("sklearn", "numpy", "scipy", "joblib", "visionlab")
PIPELINE_FUNCTIONS = {("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
                      ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
                      ("numpy.ma.core", "_mareconstruct"), ("copyreg", "_reconstructor")}

# Defaults that are good on the built-in data (HOG + SVM on digits: 99.6% on the 75/25 split, seed 0).
PARAM_GRIDS = {
    "svm": {"classify__C": [1, 10, 100], "classify__gamma": ["scale", 0.1, 0.01, 0.001]},
    "knn": {"classify__n_neighbors": [1, 3, 5, 9], "classify__weights": ["uniform", "distance"]},
}


def build_classifier(name: str, *, grid_search: bool = False, seed: int = 0):
    """Scaler + SVM / KNN, optionally wrapped in a cross-validated grid search."""
    if name == "svm":
        learner = SVC(C=10, gamma="scale", random_state=seed)
    elif name == "knn":
        learner = KNeighborsClassifier(n_neighbors=5)
    else:
        raise ConfigError(f"unknown classifier {name!r}; choose one of {', '.join(CLASSIFIERS)}")
    model = Pipeline([("scale", StandardScaler()), ("classify", learner)])
    if grid_search:
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        model = GridSearchCV(model, PARAM_GRIDS[name], cv=folds, n_jobs=1)
    return model


def build_pipeline(extractor, classifier: str, *, grid_search: bool = False, seed: int = 0) -> Pipeline:
    """features -> (scaler -> classifier): a whole image classifier with ``fit(images, labels)`` and ``predict``."""
    return Pipeline([("features", extractor), ("model", build_classifier(classifier, grid_search=grid_search,
                                                                         seed=seed))])


def save_pipeline(path: str | Path, pipeline: Pipeline, *, metadata: dict | None = None) -> Path:
    """Write a fitted pipeline (joblib) atomically, with ``<path>.json`` holding its SHA-256 and ``metadata``."""
    path = Path(path)
    atomic_write(path, lambda tmp: joblib.dump(pipeline, tmp))
    write_json(path.with_suffix(path.suffix + ".json"), {"sha256": _sha256(path), **(metadata or {})})
    return path


def load_pipeline(path: str | Path) -> Pipeline:
    """Read a pipeline written by :func:`save_pipeline`; only files whose digest matches their record are loaded."""
    path = Path(path)
    record = path.with_suffix(path.suffix + ".json")
    if not path.is_file() or not record.is_file():
        raise DataError(f"no saved pipeline at {path} (with its record {record.name})")
    if saved_metadata(path).get("sha256") != _sha256(path):
        raise DataError(f"{path} does not match the digest saved with it; refusing to unpickle it")
    try:
        with open(path, "rb") as file:
            return _PipelineUnpickler(str(path), file, True).load()
    except DataError:
        raise
    except Exception as error:  # a damaged pickle raises UnpicklingError, EOFError, ValueError, ...
        raise DataError(f"cannot read {path}: {type(error).__name__}: {error}") from None


class _PipelineUnpickler(NumpyUnpickler):
    """joblib's reader, building only the classes and functions a fitted pipeline needs."""

    def find_class(self, module: str, name: str):
        if (module, name) in PIPELINE_FUNCTIONS:
            return super().find_class(module, name)
        if module.split(".")[0] in PIPELINE_PACKAGES:  # nothing outside these packages is even imported
            found = super().find_class(module, name)
            if isinstance(found, type) or (module.startswith("sklearn.") and name == "newObj"):  # Cython trees
                return found
        raise DataError(f"{self.filename}: refused to unpickle {module}.{name}: a saved pipeline holds only "
                        f"classes of {', '.join(PIPELINE_PACKAGES)}, and a pickle naming anything else could run "
                        f"code")


def saved_metadata(path: str | Path) -> dict:
    """The record :func:`save_pipeline` wrote beside ``path``: its digest and metadata."""
    record = Path(path).with_suffix(Path(path).suffix + ".json")
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {record}: {error}") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
