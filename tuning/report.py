"""`report.md`: the tuned model beside the baselines, and what mattered.

Numbers print with about 4 significant digits (`templates.numbers`);
`metrics.json` and `best_hyperparameters.json` keep them in full.

Example:

>>> members = [{"trial": "03", "score": 0.41,
...             "hyperparameters": {"learning_rate": 0.00040684306656026695, "epochs": 12}}]
>>> text = report_markdown("regression", {"r2": 0.5123456}, {"linear": {"r2": 0.45}},
...                        {"learning_rate": 1.0}, members, trials={"COMPLETED": 5}, folds=5)
>>> "| tuned network | 0.5123 |" in text, "| 03 | 0.41 | 4.068e-4 | 12 |" in text
(True, True)
"""

from templates.artifacts import replace_atomically
from templates.numbers import format_number, format_signed

# The metric the report leads with, per task.
HEADLINE = {"regression": "r2", "binary": "accuracy", "multiclass": "accuracy"}


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report_markdown(task, test, baselines, importances, members, *, trials, folds=1,
                    sensitivity="sensitivity.png"):
    """Returns the report's Markdown text.

    Args:
        task: str, the task's name.
        test: dict of the tuned model's test metrics.
        baselines: dict `{baseline: test metrics}`.
        importances: dict `{hyperparameter: importance}` (may be empty).
        members: list of the final model's trials, best first, each a dict
            with `trial` (id), `score` and `hyperparameters` (values and
            `epochs`).
        trials: dict `{status: count}`.
        folds: int, cross-validation folds per trial (`1`: the validation
            split). Defaults to `1`.
        sensitivity: str, the plot's file name.
    """
    metrics = list(test)
    results = _table(["model", *metrics], [
        ["tuned network", *(format_number(test[m]) for m in metrics)],
        *([name.replace("_", " "), *(format_number(scores[m]) for m in metrics)]
          for name, scores in baselines.items()),
    ])
    headline = HEADLINE[task]
    best_baseline = max(scores[headline] for scores in baselines.values())
    if importances:
        mattered = _table(["hyperparameter", "importance"],
                          [[name, f"{value:.2f}"] for name, value in importances.items()])
    else:
        mattered = "Too few completed trials with varying values to estimate importances."
    counts = ", ".join(f"{count} {status.lower()}" for status, count in trials.items())
    scored_on = (f"the mean over {folds} cross-validation folds of train+validation" if folds > 1
                 else "the validation split")
    if len(members) > 1:
        final = (f"The mean of the {len(members)} best trials' models, each retrained on "
                 "train+validation for its best epoch count,")
    else:
        final = "The best configuration, retrained on train+validation for its best epoch count,"
    names = list(members[0]["hyperparameters"])
    configurations = _table(["trial", "score", *names], [
        [member["trial"], format_number(member["score"]),
         *(format_number(member["hyperparameters"][name]) for name in names)]
        for member in members
    ])
    return f"""# Hyperparameter search: {task}

Trials: {counts}. Each trial is scored on {scored_on}.

## Test split

{final}
against scikit-learn baselines fitted on the same rows:

{results}

Tuned {headline} minus best baseline: {format_signed(test[headline] - best_baseline)}.

## Final model's configurations (best first)

{configurations}

## What mattered

Importance of each tuned hyperparameter for the validation loss without
the L2 penalty (random forest on the trials' score ranks; sums to 1):

{mattered}

![score against value]({sensitivity})
"""


def write_report(path, *args, **kwargs):
    """Writes `report_markdown(*args, **kwargs)` to `path`, atomically."""
    text = report_markdown(*args, **kwargs)

    def write(temporary):
        with open(temporary, "w") as file:
            file.write(text)

    replace_atomically(path, write)
