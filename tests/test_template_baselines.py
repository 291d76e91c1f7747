"""Each template's defaults come within 0.03 of a linear baseline on its bundled data."""

import pytest

from templates.baselines import template_against_linear
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
