"""Build hook: the wheel carries conf/, personas/ and surveys/ as package data.

The three directories stay at the top of the checkout, where users read and edit them and where
an editable install (or ``PYTHONPATH=src``) reads them. A regular build copies them into the
package as ``simsurvey/_data/``, which :mod:`simsurvey.paths` finds in an installed wheel.
A copy at build time, not a symlink or a second tree in git: one set of files, on every OS.
Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# The same list as simsurvey.paths.DATA_DIRS (not imported: the build must not import the package).
DATA_DIRS = ("conf", "personas", "surveys")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildPyWithData(build_py):
    """``build_py`` that also copies the data directories into ``simsurvey/_data/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout itself
        dest = Path(self.build_lib) / "simsurvey" / "_data"
        shutil.rmtree(dest, ignore_errors=True)  # no stale file from an earlier build
        for name in DATA_DIRS:
            shutil.copytree(ROOT / name, dest / name, ignore=IGNORE)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        dest = Path(self.build_lib) / "simsurvey" / "_data"
        data = [str(p) for p in dest.rglob("*") if p.is_file()] if dest.is_dir() else []
        return super().get_outputs(include_bytecode) + data


setup(cmdclass={"build_py": BuildPyWithData})
