"""The copy-and-edit walk-through of the docs runs as written (with tiny budgets).

`WALKTHROUGH` is the bash block the docs show: copy a template out of the
kit, change a layer and the loss, train, predict and tune the copy. The test
runs exactly those commands in a folder outside the repository, with only
the training budgets shrunk (`TINY`).
"""

import os
import subprocess
import sys

import pandas as pd

WALKTHROUGH = """\
# Copy the binary template into a project of your own.
mkdir -p churn && cd churn
cp "$(python -c 'import templates.binary as t; print(t.__file__)')" churn.py
python -c "from templates.data import load_bundled; f, t = load_bundled('breast_cancer'); f.assign(churned=t).to_csv('churn.csv', index=False)"

# Edit it: batch normalisation after each hidden layer, and a focal loss.
sed -i 's/^        if dropout:$/        x = keras.layers.BatchNormalization()(x)\\n        if dropout:/' churn.py
sed -i 's/keras.losses.BinaryCrossentropy()/keras.losses.BinaryFocalCrossentropy()/' churn.py

# Train it, then predict rows with the saved model.
python churn.py --csv churn.csv --target churned --output run
python -m templates.predict --model run/model.keras --csv churn.csv --output predictions.csv

# Tune it: the search space is the copy's own hp.* declarations.
python -m tuning.search --template churn.py --csv churn.csv --target churned --max-trials 10 --directory search
"""

# The only changes the test makes: smaller training budgets.
TINY = {
    "--output run": "--output run --epochs 3 --hidden 8 --quiet",
    "--max-trials 10": "--max-trials 2 --max-epochs 2 --folds 1 --ensemble 1 --fix depth=1 --fix width=8",
}


def tiny(script):
    for command, shrunk in TINY.items():
        assert command in script
        script = script.replace(command, shrunk)
    return script


def test_the_copy_and_edit_walkthrough_runs(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", tiny(WALKTHROUGH)], cwd=tmp_path, capture_output=True,
        text=True, timeout=900,
        env={**os.environ, "PYTHONPATH": "", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    project = tmp_path / "churn"
    copy = (project / "churn.py").read_text()
    assert "BatchNormalization()" in copy and "BinaryFocalCrossentropy()" in copy
    predictions = pd.read_csv(project / "predictions.csv")
    assert len(predictions) == 569 and set(predictions["prediction"]) <= {0, 1}
    board = pd.read_csv(project / "search" / "leaderboard.csv")
    assert len(board) == 2 and (board["status"] == "COMPLETED").all()
