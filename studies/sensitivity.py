"""Study 9: results are sensitive to hyperparameters; which ones matter most?

The task's bundled template itself (`templates/<task>.py`, with its early
stopping) is trained with its defaults, then with one hyperparameter changed
at a time: every other choice of a categorical one, each end of a numeric
range, as the template declares them (`tuning.space.bundled_space`). Each
configuration runs over seeds; a setting's effect is the largest change of
the mean test score it causes, set against the spread of the default
configuration over seeds. The same runs are handed to the tuning report's
importance measure (`tuning.importance.importance`) for a second ranking.

Run `python -m studies.sensitivity [--quick] [--seeds 0,1,2] [--output DIR]
[--csv FILE --target COLUMN --task TASK]`.

Example:

>>> from tuning.space import Hyperparameter
>>> variants({"lr": Hyperparameter("lr", float, bool, "", low=1e-4, high=1e-1, log=True,
...                                default=1e-3)})
[('lr', 0.0001), ('lr', 0.1)]
"""

import math
import sys

import numpy as np
import pandas as pd

from studies import common
from templates.data import load_bundled
from templates.model import template_module
from templates.tasks import get_task
from tuning.importance import importance
from tuning.space import bundled_space

NAME = "sensitivity"
TASK = "regression"
# A setting matters when its effect exceeds this many standard deviations of
# the default configuration's score over seeds.
NOISE_FACTOR = 2.0
# ...and this share of the default configuration's score.
MIN_RELATIVE_EFFECT = 0.10
# The defaults run on every seed (they measure the seed's spread); each change
# on the first this many seeds, to keep a full run near 3 minutes.
CHANGE_SEEDS = 2

QUICK = {"epochs": 5, "patience": 2, "settings": ("dropout",)}


def variants(space):
    """One-at-a-time changes: `[(name, value), ...]` away from each default.

    Every other value of a categorical hyperparameter; the low and high ends
    of a numeric range, or of numeric choices such as the batch sizes (those
    that differ from the default).
    """
    changes = []
    for name, hyperparameter in space.items():
        values = hyperparameter.values
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            options = (min(values), max(values))
        elif values:
            options = values
        else:
            options = (hyperparameter.low, hyperparameter.high)
        changes += [(name, value) for value in options if value != hyperparameter.default]
    return changes


def _config(settings, defaults, name, value, seed):
    """The template's settings with hyperparameter `name` set to `value`."""
    if name == "depth":
        return settings.replace(hidden=(defaults["width"],) * value, seed=seed)
    if name == "width":
        return settings.replace(hidden=(value,) * defaults["depth"], seed=seed)
    return settings.replace(seed=seed, **{name: value})


def _train(template, features, target, config, score_metric):
    run = template.train(features, target, config=config, verbose=0)
    score = float(run.metrics["test"][score_metric])
    return (score if math.isfinite(score) else float("nan")), run.metrics["epochs_run"]


def _effects(table, noise):
    """Each setting's largest mean change of the score, paired with the defaults seed by seed."""
    rows = []
    changed = table[table["setting"] != "default"]
    for setting, group in changed.groupby("setting", sort=False):
        means = group.groupby("value", sort=False)["change"].mean()
        size = means.abs().fillna(float("inf"))  # NaN: the run failed
        worst = size.idxmax()
        rows.append({"setting": setting, "effect": float(size.max()),
                     "largest_change_at": str(worst), "mean_change_there": float(means[worst]),
                     "effect_over_seed_sd": float(size.max() / noise) if noise > 0 else float("nan")})
    return pd.DataFrame(rows).sort_values("effect", ascending=False).reset_index(drop=True)


def _verdict(effects, default_score, noise):
    if not len(effects) or not np.isfinite(noise) or noise == 0:
        return "INCONCLUSIVE"
    largest = effects["effect"].iloc[0]
    if largest <= NOISE_FACTOR * noise:
        return "CONTRADICTED"
    if largest >= MIN_RELATIVE_EFFECT * abs(default_score):
        return "SUPPORTED"
    return "INCONCLUSIVE"


def _figure(table, effects, score_metric):
    settings = list(effects["setting"])
    changed = table[table["setting"] != "default"]
    labels = [(setting, value) for setting in settings
              for value in dict.fromkeys(changed[changed["setting"] == setting]["value"])]
    figure, axes = common.new_figure(1, 2, width=6.0, height=max(3.6, 0.3 * len(labels) + 1))
    axes[0].barh(settings[::-1], effects["effect"].replace(np.inf, np.nan)[::-1])
    axes[0].set(xlabel=f"largest mean change of test {score_metric}",
                title="one setting changed at a time")
    for row, (setting, value) in enumerate(labels[::-1]):
        runs = changed[(changed["setting"] == setting) & (changed["value"] == value)]["change"]
        axes[1].scatter(runs, [row] * len(runs), s=14, alpha=0.6, color="tab:blue")
        axes[1].scatter([runs.mean()], [row], marker="|", s=200, color="black")
    axes[1].axvline(0, color="grey", linestyle="--")
    axes[1].set_yticks(range(len(labels)), [f"{s}={v}" for s, v in labels[::-1]], fontsize=8)
    axes[1].set(xlabel=f"test {score_metric} minus the defaults' (same seed)",
                title="each change, per seed (bar: mean)")
    return figure


def run(options):
    """Trains the template at its defaults and at each one-at-a-time change, over seeds."""
    if options.data is not None:
        task, features, target = options.data.task, options.data.features, options.data.target
        source = f"the user CSV {options.data.source} ({task})"
    else:
        task = TASK
        features, target = load_bundled(get_task(TASK).default_dataset)
        source = f"the bundled `{get_task(TASK).default_dataset}` data set ({TASK})"
    template = template_module(task)
    score_metric = get_task(task).score_metric
    space = bundled_space(task)
    defaults = {name: h.default for name, h in space.items()}
    settings = template.SETTINGS
    changes = variants(space)
    if options.quick:
        settings = settings.replace(epochs=QUICK["epochs"], patience=QUICK["patience"])
        changes = [(name, value) for name, value in changes if name in QUICK["settings"]]
    rows = []
    for index, seed in enumerate(options.seeds):
        for name, value in [("default", "defaults"), *(changes if index < CHANGE_SEEDS else [])]:
            config = (settings.replace(seed=seed) if name == "default"
                      else _config(settings, defaults, name, value, seed))
            score, epochs = _train(template, features, target, config, score_metric)
            rows.append({"setting": name, "value": value, "seed": seed, "score": score,
                         "epochs_run": epochs})
    table = pd.DataFrame(rows)
    table["value"] = table["value"].astype(str)
    default_scores = table[table["setting"] == "default"].set_index("seed")["score"]
    table["change"] = table["score"] - table["seed"].map(default_scores)
    default_score = float(default_scores.mean())
    noise = float(default_scores.std(ddof=1)) if len(default_scores) > 1 else float("nan")
    effects = _effects(table, noise)
    verdict = _verdict(effects, default_score, noise)

    # The tuning report's importance, fitted to the same runs as if they were trials.
    board = pd.DataFrame([{**defaults, "status": "COMPLETED", "score": -row.score,
                           **({} if row.setting == "default" else
                              {row.setting: _value(space[row.setting], row.value)})}
                          for row in table.itertuples()])
    forest = importance(board, space)
    effects["forest_importance"] = effects["setting"].map(forest)
    ranked = effects.dropna(subset=["forest_importance"])
    agreement = (float(ranked["effect"].rank().corr(ranked["forest_importance"].rank()))
                 if len(ranked) > 2 else float("nan"))

    top = effects.head(3)
    matters = effects[effects["effect"] > NOISE_FACTOR * noise] if np.isfinite(noise) else effects.iloc[:0]
    evidence = "\n".join([
        (f"- largest effects on the test {score_metric} (defaults: "
         f"{common.format_number(default_score)}, seed sd {common.format_number(noise)}), mean "
         "change against the defaults on the same seeds: "
         + "; ".join(f"**{r.setting}** {r.mean_change_there:+.3g} (at {r.largest_change_at})"
                     for r in top.itertuples())
         + f". SUPPORTED needs the largest > {NOISE_FACTOR} seed sd and >= "
         f"{MIN_RELATIVE_EFFECT:.0%} of the default score; CONTRADICTED if none exceeds "
         f"{NOISE_FACTOR} seed sd."),
        (f"- {len(matters)} of {len(effects)} settings move the score by more than "
         f"{NOISE_FACTOR} seed sd: {', '.join(matters['setting']) or 'none'}."),
        ("- the tuning report's forest importance on the same runs ranks them "
         + ", ".join(f"{k} {v:.2f}" for k, v in forest.items())
         + f"; Spearman rank correlation with the effects above: {agreement:.2f}."
         if forest else "- the tuning report's forest importance needs at least 5 runs."),
    ])
    protocol = f"""\
- data: {source}, the template's own split (test 20 %, validation 20 % of the rest) and preprocessing;
- model and training: `templates/{task}.py` itself: its defaults ({', '.join(f'{k}={v}' for k, v in defaults.items())}), its early stopping (patience {settings.patience}, best weights restored, at most {settings.epochs} epochs). The defaults include the template's L2 of {defaults.get('l2')} and its early stopping, because they are what is studied;
- changes, one at a time: every other declared choice of a categorical hyperparameter, each end of a numeric range or of numeric choices ({len(changes)} changes: {', '.join(f'{n}={v}' for n, v in changes)}); depth and width change `hidden` with the other at its default;
- score: the template's test {score_metric} (higher is better); the change of a run is its score minus the defaults' score on the same seed (same split and shuffling); effect of a setting: the largest |mean change| over its changes (a failed run counts as infinite), set against the defaults' standard deviation over seeds, which includes the split's variation and so is a cautious yardstick; the defaults run on seeds {list(options.seeds)} (split, weights, shuffling), each change on seeds {list(options.seeds[:CHANGE_SEEDS])};
- second opinion: `tuning.importance.importance` (a random forest on the score's rank, as in the tuning report) fitted to these runs as if they were trials of a search."""
    literature = """\
- Bergstra & Bengio (2012), *Random search for hyper-parameter optimization*: only a few hyperparameters matter much for a given data set, and which ones changes from one data set to another; read the ranking above as this data set's.
- Hutter, Hoos & Leyton-Brown (2014), *An efficient approach for assessing hyperparameter importance* (fANOVA), and van Rijn & Hutter (2018): over many data sets the learning rate is the most important hyperparameter of neural networks.
- One at a time measures each effect at the defaults of the others: it misses interactions (a high learning rate can be fine with SGD and fatal with Adam), which a search's forest importance sees when its trials vary jointly. Here the forest is fitted to the same one-at-a-time runs, so the two rankings differ only in how they weigh the same evidence; a real search (`python -m tuning.search`) would sample the settings jointly, at many times the cost."""
    summary = effects.rename(columns={"effect": f"effect_on_{score_metric}"})
    settings_record = {"task": task, "template": f"templates/{task}.py", "defaults": defaults,
                       "changes": [[n, v] for n, v in changes], "epochs": settings.epochs,
                       "patience": settings.patience, "score_metric": score_metric,
                       "seeds": list(options.seeds), "default_score": default_score,
                       "seed_sd": noise, "forest_importance": forest,
                       "rank_agreement": agreement,
                       "thresholds": {"noise_factor": NOISE_FACTOR,
                                      "min_relative_effect": MIN_RELATIVE_EFFECT}}
    return common.StudyResult(
        claim="Results are sensitive to hyperparameters: changing one setting can change the "
              "result by more than the seed does, and some settings matter far more than "
              "others.",
        protocol=protocol, table=table, verdict=verdict, evidence=evidence,
        literature=literature, settings=settings_record,
        figure=_figure(table, effects, score_metric),
        summary_table=summary)


def _value(hyperparameter, text):
    """The value of a hyperparameter from its text in the table."""
    return hyperparameter.parse(text) if hyperparameter.parse is not str else text


def main(argv=None):
    """Command line: `python -m studies.sensitivity --help`."""
    return common.study_main(NAME, run, accepts_csv=True, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
