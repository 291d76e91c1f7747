"""Each template's defaults come within 0.03 of a linear baseline on its bundled data; baselines stay quick."""

import contextlib

import pytest

from templates import baselines
from templates.baselines import template_against_linear
from templates.data import load_bundled
from templates.recipe import prepare_data
from templates.tasks import TASKS

TOLERANCE = 0.03


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("task", list(TASKS))
def test_default_template_is_within_tolerance_of_the_linear_baseline(task, seed):
    template, linear = template_against_linear(task, seed)
    metric = TASKS[task].score_metric
    print(f"{task} {TASKS[task].default_dataset} seed={seed}: template {metric}={template:.4f}, "
          f"linear {metric}={linear:.4f}")
    assert template >= linear - TOLERANCE, (
        f"template {metric}={template:.4f} vs linear {metric}={linear:.4f}")


def test_baselines_fit_on_one_thread_on_a_small_table(monkeypatch):
    # Many short OpenMP regions stall on a busy machine; one thread does not.
    limits, limit_threads = [], baselines.threadpool_limits

    @contextlib.contextmanager
    def recording(limit):
        limits.append(limit)
        with limit_threads(limit):
            yield

    monkeypatch.setattr(baselines, "threadpool_limits", recording)
    features, target = load_bundled("breast_cancer")
    data = prepare_data("binary", features, target)
    scores = baselines.baseline_scores("binary", data.frame, data.labels.values, data.split)
    assert limits == [1, 1]  # the linear model, then gradient boosting
    assert scores["linear"]["accuracy"] > 0.9
