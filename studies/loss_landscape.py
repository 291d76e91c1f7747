"""Study 8: the loss of a network is non-convex; mini-batch noise helps escape saddle points.

Four measurements:

- the training loss along the straight line between two solutions trained
  from different seeds, and from an initialisation to its solution
  (Goodfellow et al. 2015); a convex loss has no bump on such a line;
- a 2-D slice of the loss around one solution along two random,
  filter-normalised directions (Li et al. 2018), and how often a point of it
  lies above the chord of its neighbours (a convex function never does);
- the spread of the final training losses over seeds;
- a toy saddle, `f(x, y) = x^2 - y^2 + y^4 / 4`, started exactly at its saddle
  point `(0, 0)` and on its stable line `(1, 0)`: exact gradient steps stay on
  the saddle (the gradient there is 0), noisy steps fall to a minimum at
  `y = +-sqrt(2)`, `f = -1`.

Run `python -m studies.loss_landscape [--quick] [--seeds 0,1,2] [--output DIR]`.

Example:

>>> saddle_descent((0.0, 0.0), steps=100, learning_rate=0.1, noise=0.0, seed=0)[-1].tolist()
[0.0, 0.0]
>>> round(saddle_value(0.0, 2 ** 0.5), 6)
-1.0
"""

import sys

import keras
import numpy as np
import pandas as pd

from studies import common

NAME = "loss_landscape"

HIDDEN = (32, 32)
LEARNING_RATE = 3e-3
BATCH_SIZE = 32
EPOCHS = 40
TRAIN_ROWS = 512
SOLUTION_SEEDS = 6  # solutions trained for the spread and the lines
LINE_POINTS = 31
LINE_RANGE = (-0.25, 1.25)
SLICE_POINTS = 21
SLICE_RADIUS = 1.0
# Toy saddle.
SADDLE_STEPS = 300
SADDLE_LEARNING_RATE = 0.1
SADDLE_NOISE = 0.05  # standard deviation of the noise added to each gradient
SADDLE_RUNS = 20
ESCAPED_Y = 1.0  # |y| beyond this: in a minimum's basin, off the saddle
# Verdict thresholds.
MIN_BARRIER = 0.05  # a bump of this share of the endpoints' loss on a line: non-convex
MIN_SPREAD = 0.05  # (max - min) / min of the final losses over seeds
MIN_ESCAPED = 0.9  # share of noisy runs that must leave the saddle
EXACT_TOLERANCE = 1e-6  # |y| below this: still on the saddle

QUICK = {"epochs": 4, "solutions": 2, "line_points": 9, "slice_points": 7, "saddle_runs": 5}


def saddle_value(x, y):
    """`f(x, y) = x^2 - y^2 + y^4 / 4`: a saddle at `(0, 0)`, minima `f = -1` at `(0, +-sqrt(2))`."""
    return x**2 - y**2 + y**4 / 4


def saddle_descent(start, *, steps, learning_rate, noise, seed):
    """Gradient descent on `saddle_value`, with Gaussian noise of std `noise` added to each gradient.

    Returns:
        np.ndarray of shape `(steps + 1, 2)`: the path, start included.
    """
    rng = np.random.default_rng(seed)
    point = np.array(start, dtype=float)
    path = [point.copy()]
    for _ in range(steps):
        x, y = point
        gradient = np.array([2 * x, -2 * y + y**3])
        point = point - learning_rate * (gradient + noise * rng.normal(size=2))
        path.append(point.copy())
    return np.array(path)


def _train(x, y, epochs, seed):
    common.seed_everything(seed)
    model = common.mlp(x.shape[1], HIDDEN)
    initial = [v.numpy().copy() for v in model.trainable_variables]
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mean_squared_error",
                  steps_per_execution=32)
    model.fit(common.repeated_dataset(x, y, BATCH_SIZE, seed), epochs=epochs,
              steps_per_epoch=len(x) // BATCH_SIZE, shuffle=False, verbose=0)
    return model, initial, [v.numpy().copy() for v in model.trainable_variables]


def _loss_at(model, weights, x, y):
    for variable, value in zip(model.trainable_variables, weights):
        variable.assign(value)
    prediction = keras.ops.convert_to_numpy(model(x))
    return float(np.mean((prediction - y) ** 2))


def _line(model, start, end, x, y, alphas):
    return [_loss_at(model, [(1 - a) * s + a * e for s, e in zip(start, end)], x, y)
            for a in alphas]


def _barrier(losses, alphas):
    """Height of the bump between the endpoints (alpha 0 and 1) above the higher endpoint."""
    alphas = np.asarray(alphas)
    losses = np.asarray(losses)
    inside = (alphas >= 0) & (alphas <= 1)
    ends = max(losses[np.argmin(np.abs(alphas))], losses[np.argmin(np.abs(alphas - 1))])
    return float(losses[inside].max() - ends)


def filter_normalised_direction(weights, rng):
    """A random direction scaled, unit by unit, to the norm of the weights (Li et al. 2018).

    Each column of a kernel (one unit's incoming weights) gets the norm of
    the same column of `weights`; biases get no direction.
    """
    direction = []
    for value in weights:
        if value.ndim < 2:
            direction.append(np.zeros_like(value))
            continue
        random = rng.normal(size=value.shape)
        scale = np.linalg.norm(value, axis=0) / (np.linalg.norm(random, axis=0) + 1e-12)
        direction.append(random * scale)
    return direction


def _slice(model, center, x, y, points, seed):
    rng = np.random.default_rng(seed)
    first, second = (filter_normalised_direction(center, rng) for _ in range(2))
    grid = np.linspace(-SLICE_RADIUS, SLICE_RADIUS, points)
    surface = np.array([[_loss_at(model, [c + a * d1 + b * d2 for c, d1, d2 in
                                          zip(center, first, second)], x, y)
                         for a in grid] for b in grid])
    return grid, surface


def _chord_violations(surface):
    """Share of interior points above the mean of their two neighbours, along either axis."""
    tolerance = 1e-9 * np.abs(surface).max()
    rows = surface[1:-1, :] > (surface[:-2, :] + surface[2:, :]) / 2 + tolerance
    columns = surface[:, 1:-1] > (surface[:, :-2] + surface[:, 2:]) / 2 + tolerance
    return float((rows.sum() + columns.sum()) / (rows.size + columns.size))


def _saddle(runs, seed):
    rows = []
    for start in ((0.0, 0.0), (1.0, 0.0)):
        for noise, repeats in ((0.0, 1), (SADDLE_NOISE, runs)):
            for run in range(repeats):
                path = saddle_descent(start, steps=SADDLE_STEPS,
                                      learning_rate=SADDLE_LEARNING_RATE, noise=noise,
                                      seed=seed * 1000 + run)
                escaped_at = np.flatnonzero(np.abs(path[:, 1]) > ESCAPED_Y)
                rows.append({"part": "saddle", "start": f"({start[0]:g}, {start[1]:g})",
                             "gradient_noise": noise, "seed": seed * 1000 + run,
                             "final_x": path[-1, 0], "final_y": path[-1, 1],
                             "final_f": saddle_value(*path[-1]),
                             "escape_step": int(escaped_at[0]) if len(escaped_at) else None,
                             "path": path})
    return rows


def _figure(lines, alphas, grid, surface, spread, saddle_rows):
    figure, axes = common.new_figure(1, 4, width=4.6, height=3.8)
    for label, losses in lines.items():
        axes[0].plot(alphas, losses, label=label)
    axes[0].axvline(0, color="grey", linewidth=0.5)
    axes[0].axvline(1, color="grey", linewidth=0.5)
    axes[0].set(yscale="log", xlabel="alpha (0 = start, 1 = end)", ylabel="training loss",
                title="loss along straight lines")
    axes[0].legend(fontsize=7)
    contour = axes[1].contourf(grid, grid, np.log10(surface), levels=12)
    figure.colorbar(contour, ax=axes[1], label="log10 training loss")
    axes[1].plot([0], [0], "r*")
    axes[1].set(xlabel="direction 1", ylabel="direction 2",
                title="2-D slice around a solution")
    axes[2].plot(range(len(spread)), sorted(spread), "o")
    axes[2].set(xlabel="seed (sorted)", ylabel="final training loss",
                title="solutions from different seeds")
    xs = np.linspace(-1.2, 1.2, 61)
    ys = np.linspace(-2.0, 2.0, 81)
    axes[3].contour(xs, ys, saddle_value(*np.meshgrid(xs, ys)), levels=12, linewidths=0.5,
                    colors="grey")
    # Noisy paths first, so that the exact ones stay visible on top.
    for row in sorted(saddle_rows, key=lambda r: r["gradient_noise"] == 0):
        path = row["path"]
        noisy = row["gradient_noise"] > 0
        axes[3].plot(path[:, 0], path[:, 1], color="tab:orange" if noisy else "tab:blue",
                     linewidth=0.6 if noisy else 2.5, alpha=0.5 if noisy else 1)
    axes[3].plot([0], [0], "k+", markersize=12)
    axes[3].set(xlabel="x", ylabel="y",
                title="toy saddle: exact (blue), noisy (orange)")
    return figure


def _verdict(barrier, violations, spread, exact_stayed, escaped):
    non_convex = barrier >= MIN_BARRIER or violations > 0
    if not non_convex or escaped < MIN_ESCAPED or not exact_stayed:
        return "CONTRADICTED"
    if barrier >= MIN_BARRIER and spread >= MIN_SPREAD:
        return "SUPPORTED"
    return "INCONCLUSIVE"


def run(options):
    """Trains solutions over seeds, walks the lines and the slice, and runs the toy saddle."""
    epochs, solutions, line_points, slice_points, saddle_runs = (
        (QUICK["epochs"], QUICK["solutions"], QUICK["line_points"], QUICK["slice_points"],
         QUICK["saddle_runs"]) if options.quick else
        (EPOCHS, SOLUTION_SEEDS, LINE_POINTS, SLICE_POINTS, SADDLE_RUNS))
    seeds = list(options.seeds)
    base = seeds[0]
    # The solutions share the data (seed `base`) and differ in their seed.
    solution_seeds = seeds + [base + 100 + i for i in range(max(0, solutions - len(seeds)))]
    x, y = common.make_regression_data(base, TRAIN_ROWS)
    trained = {seed: _train(x, y, epochs, seed) for seed in solution_seeds}
    model = trained[base][0]
    finals = {seed: _loss_at(model, weights, x, y) for seed, (_, _, weights) in trained.items()}

    alphas = np.linspace(*LINE_RANGE, line_points)
    lines, rows = {}, []
    _, initial, end = trained[base]
    lines[f"init -> solution (seed {base})"] = _line(model, initial, end, x, y, alphas)
    barriers, peaks = [], []
    for other in solution_seeds[1:]:
        label = f"seed {base} -> seed {other}"
        lines[label] = _line(model, end, trained[other][2], x, y, alphas)
        barrier = _barrier(lines[label], alphas)
        ends = (lines[label][np.argmin(np.abs(alphas))] + lines[label][np.argmin(np.abs(alphas - 1))]) / 2
        barriers.append(barrier / ends)
        peaks.append(barrier)
    for label, losses in lines.items():
        rows += [{"part": "line", "line": label, "alpha": a, "loss": loss}
                 for a, loss in zip(alphas, losses)]
    grid, surface = _slice(model, end, x, y, slice_points, base)
    rows += [{"part": "slice", "alpha": a, "beta": b, "loss": surface[j, i]}
             for j, b in enumerate(grid) for i, a in enumerate(grid)]
    rows += [{"part": "seeds", "seed": seed, "loss": loss} for seed, loss in finals.items()]
    saddle_rows = _saddle(saddle_runs, base)
    table = pd.DataFrame(rows + [{k: v for k, v in r.items() if k != "path"} for r in saddle_rows])

    barrier = max(barriers) if barriers else float("nan")
    violations = _chord_violations(surface)
    losses = np.array(list(finals.values()))
    spread = float((losses.max() - losses.min()) / losses.min())
    saddle = table[table["part"] == "saddle"]
    exact = saddle[saddle["gradient_noise"] == 0]
    noisy = saddle[saddle["gradient_noise"] > 0]
    exact_at_saddle = exact[exact["start"] == "(0, 0)"]
    exact_stayed = bool((exact_at_saddle["final_y"].abs() < EXACT_TOLERANCE).all())
    escaped = float((noisy["final_y"].abs() > ESCAPED_Y).mean())
    verdict = _verdict(barrier, violations, spread, exact_stayed, escaped)
    init_line = np.array(lines[f"init -> solution (seed {base})"])
    inside = (alphas >= 0) & (alphas <= 1)
    monotone = bool(np.all(np.diff(init_line[inside]) <= 0))
    on_line = exact[exact["start"] == "(1, 0)"].iloc[0]
    evidence = "\n".join([
        (f"- non-convex: on the straight line between two solutions the loss rises by up to "
         f"{common.format_number(max(peaks) if peaks else float('nan'))} (1.0 is the loss of "
         f"predicting the mean), **{barrier:.3g}x** the mean loss of the two ends (largest "
         f"over {len(barriers)} pairs; a convex loss has no bump, SUPPORTED needs >= "
         f"{MIN_BARRIER}x); "
         f"{violations:.1%} of the points of the 2-D slice lie above the chord of their "
         "neighbours (a convex function has none)."),
        (f"- seeds: final training losses from {common.format_number(losses.min())} to "
         f"{common.format_number(losses.max())} over {len(losses)} seeds, a spread of "
         f"**{spread:.1%}** (SUPPORTED needs >= {MIN_SPREAD:.0%}: otherwise the seeds find "
         "different but equally good solutions, and nothing here says a global minimum was "
         "missed)."),
        (f"- saddle: exact steps from (0, 0) end at y = {exact_at_saddle['final_y'].iloc[0]:g} "
         f"(the gradient is exactly 0 there); from (1, 0) they end at "
         f"({on_line['final_x']:.2g}, {on_line['final_y']:g}), f = {on_line['final_f']:.3g}: "
         f"drawn into the saddle, not the minimum f = -1. With noise of std {SADDLE_NOISE} on "
         f"each gradient, **{escaped:.0%}** of {len(noisy)} runs end in a minimum's basin "
         f"(|y| > {ESCAPED_Y}; SUPPORTED needs >= {MIN_ESCAPED:.0%}), after "
         f"{noisy['escape_step'].median():.3g} steps (median)."),
        (f"- from the initialisation to its solution the loss falls "
         f"{'monotonically' if monotone else 'but not monotonically'} along the straight line "
         "(Goodfellow et al. 2015 found the same on their networks): the non-convexity does "
         "not stand in the way of that path."),
    ])
    protocol = f"""\
- data: Friedman #1 regression (`common.make_regression_data`, seed {base}), {TRAIN_ROWS} rows, standardised; the loss is the training MSE (1.0 = predicting the mean);
- model: MLP {HIDDEN}, ReLU with He initialisation, no L2, no dropout; Adam at {LEARNING_RATE}, batch {BATCH_SIZE}, {epochs} epochs, no early stopping; {len(solution_seeds)} solutions from seeds {solution_seeds} on the same rows;
- lines: {line_points} points for alpha in {list(LINE_RANGE)}, weights (1 - alpha) start + alpha end; the barrier is the highest loss for alpha in [0, 1] minus the higher endpoint, divided by the endpoints' mean;
- slice: {slice_points} x {slice_points} points in [-{SLICE_RADIUS}, {SLICE_RADIUS}]^2 around the seed-{base} solution along two Gaussian directions scaled unit by unit to the weights' norms (biases fixed), Li et al. (2018);
- toy saddle: f(x, y) = x^2 - y^2 + y^4/4, {SADDLE_STEPS} steps of w <- w - {SADDLE_LEARNING_RATE} (grad + noise), noise 0 (exact) or Gaussian with std {SADDLE_NOISE} ({saddle_runs} runs per start), from (0, 0) and (1, 0)."""
    literature = """\
- Goodfellow, Vinyals & Saxe (2015), *Qualitatively characterizing neural network optimization problems*: the loss along the line from the initialisation to the solution falls smoothly, with no bumps; compare the init line.
- Dauphin et al. (2014), *Identifying and attacking the saddle point problem*: in high dimensions most critical points with a high loss are saddles, not local minima; the toy shows why exact gradient steps stall there and noisy ones do not (Ge et al. 2015; Jin et al. 2017 prove escape with added noise).
- Choromanska et al. (2015), *The loss surfaces of multilayer networks*: the local minima of large networks have losses close to the global one; a small spread over seeds is what that predicts.
- Li et al. (2018), *Visualizing the loss landscape of neural nets*: filter-normalised random directions, used for the slice; Garipov et al. (2018) and Draxler et al. (2018) find that the bump between two solutions disappears along a curved path, so the solutions are connected."""
    settings = {"hidden": list(HIDDEN), "optimizer": "adam", "learning_rate": LEARNING_RATE,
                "batch_size": BATCH_SIZE, "epochs": epochs, "l2": 0, "dropout": 0,
                "early_stopping": False, "solution_seeds": solution_seeds,
                "saddle": {"steps": SADDLE_STEPS, "learning_rate": SADDLE_LEARNING_RATE,
                           "noise": SADDLE_NOISE, "runs": saddle_runs},
                "thresholds": {"min_barrier": MIN_BARRIER, "min_spread": MIN_SPREAD,
                               "min_escaped": MIN_ESCAPED},
                "barrier": barrier, "chord_violations": violations, "spread": spread,
                "escaped": escaped, "exact_stayed": exact_stayed}
    summary = pd.DataFrame([
        {"measure": "largest bump between two solutions (loss)", "value": max(peaks) if peaks else float("nan")},
        {"measure": "largest bump between two solutions (x their mean loss)", "value": barrier},
        {"measure": "slice points above their neighbours' chord (share)", "value": violations},
        {"measure": "spread of final training losses over seeds ((max - min) / min)", "value": spread},
        {"measure": "lowest final training loss", "value": float(losses.min())},
        {"measure": "exact steps from the saddle: final |y|", "value": float(exact_at_saddle["final_y"].abs().iloc[0])},
        {"measure": "exact steps from (1, 0): final f", "value": float(on_line["final_f"])},
        {"measure": "noisy runs that escaped (share)", "value": escaped},
        {"measure": "noisy runs: median final f", "value": float(noisy["final_f"].median())},
    ])
    return common.StudyResult(
        claim="Non-linearity makes the loss non-convex, so the global minimum is hard to find; "
              "the noise of mini-batch gradients helps escape saddle points and poor regions.",
        protocol=protocol, table=table, verdict=verdict, evidence=evidence,
        literature=literature, settings=settings,
        figure=_figure(lines, alphas, grid, surface, list(finals.values()), saddle_rows),
        summary_table=summary)


def main(argv=None):
    """Command line: `python -m studies.loss_landscape --help`."""
    return common.study_main(NAME, run, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
