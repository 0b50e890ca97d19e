"""texttune.tasks: the task and column-name constants, importable without the data package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from texttune import tasks

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_constants():
    assert tasks.TASKS == (tasks.SINGLE_LABEL, tasks.MULTI_LABEL, tasks.REGRESSION)
    assert (tasks.TEXT, tasks.TEXT_PAIR, tasks.LABELS) == ("text", "text_pair", "labels")


@pytest.mark.parametrize("module", ["metrics", "tokenization", "long_text", "imbalance", "report", "export"])
def test_modules_that_only_need_constants_do_not_load_the_data_package(module):
    code = f"import sys, texttune.{module}; print('texttune.data' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=SRC)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
