"""scikit-learn baselines on exactly the split and preprocessing of a template run.

A neural network earns its place only if it does at least about as well as a
linear model on the same rows. The baselines here (the task table's linear
model and histogram gradient boosting) see the same columns as the network,
numbers standardised with mean imputation and text one-hot encoded, are
fitted on the training and validation rows, and are scored with the task's
test metrics on the test rows.

Example:

>>> from templates.data import load_bundled
>>> features, target = load_bundled("breast_cancer")
>>> linear_score("binary", features, target) > 0.9
True
"""

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from templates import preprocessing
from templates.data import load_bundled
from templates.model import template_module
from templates.recipe import prepare
from templates.tasks import get_task
from templates.training import TrainingConfig

# Below this many fitted rows the baselines run on one thread (see `baseline_threads`).
ONE_THREAD_ROWS = 100_000


def preprocessor(kinds):
    """The scikit-learn twin of the template's in-model preprocessing.

    Args:
        kinds: dict `{column: dtype}` from `templates.preprocessing.column_kinds`.
    """
    numeric = [name for name, kind in kinds.items() if kind == preprocessing.NUMERIC]
    text = [name for name, kind in kinds.items() if kind == preprocessing.TEXT]
    return ColumnTransformer([
        ("numeric", make_pipeline(StandardScaler(), SimpleImputer(strategy="constant", fill_value=0.0)), numeric),
        ("text", make_pipeline(
            SimpleImputer(strategy="constant", fill_value=preprocessing.MISSING_TEXT),
            OneHotEncoder(handle_unknown="ignore"),
        ), text),
    ])


def _prediction(model, rows, spec):
    """The model's output in the form the task's test metrics expect."""
    if not hasattr(model, "predict_proba"):
        return model.predict(rows)
    probabilities = model.predict_proba(rows)
    return probabilities[:, 1] if spec.output_activation == "sigmoid" else probabilities


def baseline_scores(task, frame, targets, split):
    """Fits both baselines on train+validation and scores them on the test split.

    Args:
        task: str, `regression`, `binary` or `multiclass`.
        frame: DataFrame of all rows' raw feature columns.
        targets: array of encoded labels (one-hot labels become class indices).
        split: `templates.data.Split` indexing `frame`.

    Returns:
        `{"linear": metrics, "hist_gradient_boosting": metrics}`, each a dict
        of the task's test metrics.
    """
    spec = get_task(task)
    kinds = preprocessing.column_kinds(frame.iloc[split.train])
    columns = preprocessing.clean_columns(frame, kinds)
    targets = np.asarray(targets)
    truth = np.argmax(targets, axis=-1) if targets.ndim == 2 else targets
    fit_rows = np.concatenate([split.train, split.validation])
    scores = {}
    for name, make in (("linear", spec.linear_baseline), ("hist_gradient_boosting", spec.boosting_baseline)):
        model = make_pipeline(preprocessor(kinds), make())
        with threadpool_limits(baseline_threads(len(fit_rows))):
            model.fit(columns.iloc[fit_rows], truth[fit_rows])
            prediction = _prediction(model, columns.iloc[split.test], spec)
        scores[name] = {metric: float(fn(targets[split.test], prediction))
                        for metric, fn in spec.test_metrics.items()}
    return scores


def baseline_threads(rows):
    """The OpenMP and BLAS threads the baselines fit with: one on small tables, else the default.

    Histogram gradient boosting opens an OpenMP parallel region for every
    split it searches, over a thousand on a small table. On a busy machine
    (a search's other processes, two searches side by side) each region
    waits for its threads to be scheduled: breast_cancer's baselines took
    5 to 13 s of CPU instead of 0.15 s on a loaded 2-core machine, with the
    same scores. One thread loses nothing on a few thousand rows.

    Example:

    >>> baseline_threads(455), baseline_threads(1_000_000)
    (1, None)
    """
    return 1 if rows < ONE_THREAD_ROWS else None


def linear_score(task, features, target, *, config=TrainingConfig(),
                 test_features=None, test_target=None):
    """The linear baseline's score metric on the split a template run would use.

    Args:
        task: str, the template's task.
        features, target: the data, as given to the template.
        config: the template's `TrainingConfig` (its seed and fractions decide
            the split).
        test_features, test_target: optional separate test set.

    Returns:
        float, the task's score metric (`r2` or `accuracy`) on the test rows.
    """
    frame, labels, split, _ = prepare(
        task, features, target, test_features=test_features,
        test_target=test_target, config=config,
    )
    return baseline_scores(task, frame, labels.values, split)["linear"][get_task(task).score_metric]


def template_against_linear(task, seed):
    """Trains the task's template with its defaults on its bundled data set.

    Args:
        task: str, the task.
        seed: int, the seed of the split and the training.

    Returns:
        `(template_score, linear_score)` on the same test rows, in the task's
        score metric.
    """
    spec = get_task(task)
    features, target = load_bundled(spec.default_dataset)
    template = template_module(task)
    config = template.SETTINGS.replace(seed=seed)
    run = template.train(features, target, config=config, verbose=0)
    return run.metrics["test"][spec.score_metric], linear_score(task, features, target, config=config)
