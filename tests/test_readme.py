"""README's Quick start is what CI runs."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def quick_start_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands_run_then_test():
    run, test = quick_start_commands()
    assert "python -m templates." in run
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_in_a_fresh_virtual_environment():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv" in ci
    assert "<!-- test-command -->" in ci
    readme = (ROOT / "README.md").read_text()
    marked = readme.split("<!-- test-command -->", 1)[1].split("```bash\n", 1)[1].split("\n", 1)[0]
    assert marked == quick_start_commands()[1]
