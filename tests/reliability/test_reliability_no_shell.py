"""Security: the package never runs a command through a shell.

A command line built from input (file names, labels) and handed to a shell is an injection
risk; subprocesses must take argument lists. Checked on the source of every module of the
package: a text search for the shell-running spellings, and a syntax-tree check of every
``subprocess`` call's command and of nipype ``CommandLine`` interfaces (nipype runs those
through a shell).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ketpet_bids

PACKAGE = Path(ketpet_bids.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
FORBIDDEN = re.compile(r"shell\s*=\s*True|\bos\.system\s*\(|\bos\.popen\s*\(|\bos\.spawn\w*\s*\("
                       r"|\bsubprocess\.getoutput\s*\(|\bsubprocess\.getstatusoutput\s*\(")
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}


def _subprocess_commands(tree: ast.AST) -> list[ast.expr]:
    """First arguments of ``subprocess.<call>(...)`` calls."""
    return [node.args[0] for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in SUBPROCESS_CALLS and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "subprocess" and node.args]


def _is_string(node: ast.expr) -> bool:
    """A literal string, an f-string, or a string concatenation/format."""
    return (isinstance(node, ast.JoinedStr)
            or (isinstance(node, ast.Constant) and isinstance(node.value, str))
            or (isinstance(node, ast.BinOp) and (_is_string(node.left) or _is_string(node.right)))
            or (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"format", "join"}))


def test_sources_were_found():
    assert len(SOURCES) > 30 and PACKAGE / "bids" / "validate.py" in SOURCES


def test_no_shell_spellings():
    found = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
             for path in SOURCES
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if FORBIDDEN.search(line)]
    assert found == []


def test_subprocesses_take_argument_lists():
    calls = []
    for path in SOURCES:
        for command in _subprocess_commands(ast.parse(path.read_text())):
            calls.append(path.name)
            assert not _is_string(command), f"{path}:{command.lineno}: command is a string"
    assert "validate.py" in calls  # the BIDS validator call is seen by this check


def test_no_nipype_commandline_interfaces():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base) for base in node.bases]
                assert not any(b.endswith("CommandLine") for b in bases), \
                    f"{path}:{node.lineno}: {node.name} runs its command through a shell"


def test_checks_catch_what_they_should():
    """The patterns and the tree check are not vacuous."""
    bad = ["subprocess.run(cmd, shell=True)", "os.system(f'rm {x}')", "os.popen('ls')",
           "subprocess.getoutput('ls ' + name)"]
    assert all(FORBIDDEN.search(line) for line in bad)
    assert not FORBIDDEN.search("subprocess.run([exe, path], shell=False)")
    tree = ast.parse("subprocess.run(f'validator {path}')\nsubprocess.run([exe, path])\n"
                     "subprocess.Popen('ls ' + d)\n")
    assert [_is_string(c) for c in _subprocess_commands(tree)] == [True, False, True]
