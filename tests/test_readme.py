"""README.md, docs/*.md and benchmarks/README.md stay true.

README's Quick start is what CI runs. On every page: links and file paths
resolve, every command's module exists and accepts its options, every option
a page names belongs to a command on that page, every Python snippet compiles
and names functions and keyword arguments that exist, documented signatures
match the code, and README's snippets run.
"""

import argparse
import ast
import contextlib
import functools
import inspect
import pathlib
import re
import runpy
import shlex
import sys
import warnings
from unittest import mock

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")),
         *(ROOT / "benchmarks" / name for name in ("README.md", "HISTORY.md"))]
README_MAX_LINES = 200
# Folders of this repository whose files the pages name in backticks.
REPO_FOLDERS = ("templates", "callbacks", "tuning", "benchmarks", "tests", "docs", "studies")
SIGNATURES_MARKER = "<!-- signatures -->"
# The copy-and-edit walk-through of README.md and docs/templates.md: `WALKTHROUGH` in tests/test_walkthrough.py.
WALKTHROUGH_MARKER = "<!-- walkthrough -->"
# The walk-through's copies of a template, checked as the template they copy.
COPIES = {"churn.py": ("-m", "templates.binary")}


def page_id(page):
    return str(page.relative_to(ROOT))


def code_blocks(text, language):
    """Returns `(code, marker)` per fenced block: `marker` is the HTML comment just above it."""
    pattern = r"(?:(<!--[^\n]*-->)\n)?```" + language + r"\n(.*?)\n```"
    return [(code, marker or "") for marker, code in re.findall(pattern, text, flags=re.DOTALL)]


def quick_start_commands():
    readme = README.read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def commands(page):
    """Returns every `python ...` command of a page as a tuple of words.

    Commands come from bash blocks, and from inline code that gives
    arguments (inline, `python -m tuning.search` alone names the command).
    """
    text = page.read_text()
    lines = []
    for block, marker in code_blocks(text, "bash"):
        if marker == WALKTHROUGH_MARKER:  # shell around the commands: keep only theirs
            lines += [line for line in block.splitlines()
                      if line.startswith("python ") and not line.startswith("python -c ")]
            continue
        lines += block.replace("\\\n", " ").splitlines()
    lines += re.findall(r"`(python [^`\s]+ -[^`]+|python -m [^`\s]+ [^`]+)`", text)
    found = []
    for line in lines:
        for part in re.split(r"&&|;|\|", line):
            words = shlex.split(part, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # environment variables
                words.pop(0)
            if len(words) >= 2 and words[0] == "python":
                found.append(("python", *COPIES.get(words[1], words[1:2]), *words[2:]))
    return found


def target_of(command):
    """`("module", name, args)` for `python -m name args`, `("path", file, args)` for a script."""
    if command[1] == "-m":
        return "module", command[2], list(command[3:])
    return "path", command[1], list(command[2:])


def is_external(command):
    return command[1] == "-m" and command[2] in ("pip", "pytest")


ALL_COMMANDS = sorted({command for page in PAGES for command in commands(page)
                       if not is_external(command)})


class _Parsed(Exception):
    def __init__(self, parser):
        super().__init__()
        self.parser = parser


@functools.cache
def command_parser(kind, target):
    """Runs the command's entry point until it parses its arguments; returns that parser.

    It runs with `--help` (so `tuning.search` plans no workers) and stops at
    the first `ArgumentParser.parse_args`, before anything is trained.
    """
    def capture(self, args=None, namespace=None):
        raise _Parsed(self)

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(argparse.ArgumentParser, "parse_args", capture))
        stack.enter_context(mock.patch.object(sys, "argv", [target, "--help"]))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: module already imported
        try:
            if kind == "module":
                runpy.run_module(target, run_name="__main__", alter_sys=False)
            else:
                runpy.run_path(str(ROOT / target), run_name="__main__")
        except _Parsed as parsed:
            return parsed.parser
    raise AssertionError(f"`python {target}` ended without parsing a command line")


def test_quick_start_has_exactly_two_commands_run_then_test():
    run, test = quick_start_commands()
    assert "python -m templates." in run
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_in_a_fresh_virtual_environment():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv" in ci
    assert "<!-- test-command -->" in ci
    marked = README.read_text().split("<!-- test-command -->", 1)[1].split("```bash\n", 1)[1].split("\n", 1)[0]
    assert marked == quick_start_commands()[1]


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; expected at most {README_MAX_LINES}: move reference "
        "text to docs/ and figures to benchmarks/README.md")


def test_readme_links_every_reference_page():
    readme = README.read_text()
    for page in PAGES[1:]:
        assert f"]({page_id(page)})" in readme, f"README.md does not link {page_id(page)}"


def test_walkthrough_block_is_the_one_the_walkthrough_test_runs():
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from test_walkthrough import WALKTHROUGH
    finally:
        sys.path.remove(str(ROOT / "tests"))
    for page in (README, ROOT / "docs" / "templates.md"):
        blocks = [code for code, marker in code_blocks(page.read_text(), "bash")
                  if marker == WALKTHROUGH_MARKER]
        assert blocks == [WALKTHROUGH.rstrip("\n")], (
            f"{page.name}'s walk-through block differs from WALKTHROUGH in tests/test_walkthrough.py")


def heading_anchors(page):
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_links_point_to_existing_files_and_headings(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page_id(page)} links {target}, which does not exist"
        if anchor:
            assert anchor in heading_anchors(linked), (
                f"{page_id(page)} links {target}, but {linked.name} has no heading #{anchor}; "
                f"it has: {sorted(heading_anchors(linked))}")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_files_named_in_backticks_exist(page):
    folders = "|".join(REPO_FOLDERS)
    for path in re.findall(rf"`((?:{folders})/[\w/]+\.(?:py|md|png))`", page.read_text()):
        assert (ROOT / path).exists(), f"{page_id(page)} names {path}, which does not exist"


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_command_accepts_its_options(command):
    kind, target, args = target_of(command)
    parser = command_parser(kind, target)
    try:
        parser.parse_args(args)
    except (Exception, SystemExit) as error:  # noqa: BLE001 - argparse exits, ours raise
        pytest.fail(f"`{' '.join(command)}` does not parse: {error}")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_option_a_page_names_belongs_to_one_of_its_commands(page):
    named_commands = [tuple(words.split()) for words in re.findall(r"`(python [^`]+)`", page.read_text())]
    parsers = {target_of(command)[:2] for command in [*commands(page), *named_commands]
               if not is_external(command)}
    known = {"--help"}
    for kind, target in parsers:
        known |= set(re.findall(r"--[a-z][a-z0-9-]*", command_parser(kind, target).format_help()))
    text = re.sub(r"python -m pip install[^\n`]*", "", page.read_text())
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
    assert not named - known, (
        f"{page_id(page)} names options that none of its commands "
        f"({', '.join(sorted(target for _, target in parsers))}) has: {sorted(named - known)}")


# The reference page that documents every option of a command.
REFERENCES = {"docs/templates.md": [("module", "templates.binary"), ("module", "templates.predict")],
              "docs/tuning.md": [("module", "tuning.search")]}


@pytest.mark.parametrize("page", sorted(REFERENCES))
def test_reference_page_documents_every_option(page):
    prose = re.sub(r"```.*?```", "", (ROOT / page).read_text(), flags=re.DOTALL)  # not examples
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", prose))
    for kind, target in REFERENCES[page]:
        options = set(re.findall(r"--[a-z][a-z0-9-]*", command_parser(kind, target).format_help()))
        missing = sorted(options - named - {"--help"})
        assert not missing, f"{page} does not document these options of `python -m {target}`: {missing}"


PYTHON_BLOCKS = [(page, index, code, marker) for page in PAGES
                 for index, (code, marker) in enumerate(code_blocks(page.read_text(), "python"))]


def block_id(block):
    page, index, _, _ = block
    return f"{page_id(page)}-{index}"


def imported_names(tree, filename):
    """Runs only the snippet's top-level imports; returns the names they define."""
    namespace = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            exec(compile(ast.Module([node], type_ignores=[]), filename, "exec"), namespace)  # noqa: S102
    return namespace


def resolve(node, namespace):
    """The object an expression like `binary.train` names, `None` if it starts from a local."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        base = resolve(node.value, namespace)
        if base is None:
            return None
        assert hasattr(base, node.attr), f"`{ast.unparse(node)}` does not exist"
        return getattr(base, node.attr)
    return None


def signature_of(function):
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):  # builtins and C functions
        return None


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=block_id)
def test_python_snippet_names_functions_and_keywords_that_exist(block):
    page, index, code, _ = block
    filename = f"{page_id(page)} python block {index + 1}"
    tree = ast.parse(code, filename)
    namespace = imported_names(tree, filename)
    for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
        function = resolve(call.func, namespace)
        signature = function and signature_of(function)
        if signature is None or any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            continue
        for keyword in call.keywords:
            assert keyword.arg in signature.parameters, (
                f"{filename}: `{ast.unparse(call.func)}` has no argument `{keyword.arg}`; "
                f"it takes {list(signature.parameters)}")


@pytest.mark.parametrize("block", [b for b in PYTHON_BLOCKS if b[3] == SIGNATURES_MARKER], ids=block_id)
def test_documented_signatures_match_the_code(block):
    page, _, code, _ = block
    tree = ast.parse(code)
    namespace = imported_names(tree, page_id(page))
    for statement in tree.body:
        if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)):
            continue
        call = statement.value
        name = ast.unparse(call.func)
        parameters = {name: parameter for name, parameter in
                      inspect.signature(resolve(call.func, namespace)).parameters.items()
                      if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)}
        documented = [argument.id for argument in call.args] + [keyword.arg for keyword in call.keywords]
        assert documented == list(parameters), (
            f"{page_id(page)} documents {name}({', '.join(documented)}); the code has "
            f"{name}({', '.join(parameters)})")
        for keyword in call.keywords:
            default = parameters[keyword.arg].default
            assert ast.literal_eval(keyword.value) == default, (
                f"{page_id(page)} documents {name}'s {keyword.arg}={ast.unparse(keyword.value)}; "
                f"the code's default is {default!r}")


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=block_id)
def test_python_snippet_compiles(block):
    page, index, code, _ = block
    compile(code, f"{page_id(page)} python block {index + 1}", "exec")


@pytest.mark.parametrize("code", [code for code, _ in code_blocks(README.read_text(), "python")])
def test_readme_python_snippet_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the monitors warn: that is what they are shown for
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102
