"""Hyperparameter search over the templates' models with KerasTuner.

`python -m tuning.search --task binary` tunes the learning rate, optimizer,
activation, depth, width, dropout, L2 and batch size of a template model,
retrains the best few configurations as one averaged model and writes a
report beside scikit-learn baselines. `tuning.hypermodel.TemplateHyperModel` is the search space.
"""
