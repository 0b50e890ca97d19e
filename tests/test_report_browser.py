"""The run report and the audit page render in a real browser: headless Chromium, where one is installed.

Skipped without Chromium on the PATH (Debian: ``apt-get install chromium``). Set ``TEXTTUNE_SCREENSHOTS``
to a folder to keep the screenshots.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from texttune.cli import main

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on the PATH (apt-get install chromium)")
#: A closed network refuses Chromium's background connections; these flags keep it from trying.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def _chromium(profile: Path, *args: str) -> str:
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_and_audit_page_render_in_chromium(tiny_bert_mean, review_frame, tmp_path):
    from matplotlib.image import imread

    data = tmp_path / "reviews.csv"
    review_frame(60).to_csv(data, index=False)
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--model", tiny_bert_mean, "--output", str(run), "--audit"]
    assert main([*argv, "--strategy", "full", "--epochs", "2", "--learning-rate", "5e-3", "--quiet"]) == 0
    pages = {
        run / "report.html": ("Validation metrics", "Confusion matrix", "Error analysis", "Data audit"),
        run / "audit" / "audit.html": ("Data audit", "Class balance", "label (", "outlier ("),
    }
    keep = os.environ.get("TEXTTUNE_SCREENSHOTS")
    for page, headings in pages.items():
        dom = _chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
        assert dom.count("<h2") >= 3 and all(h in dom for h in headings), page
        shot = tmp_path / f"{page.stem}.png"
        _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri())
        pixels = imread(shot)
        assert pixels.shape[:2] == (2400, 1200) and pixels.std() > 0.05  # drawn, not a blank page
        if keep:
            shutil.copy(shot, Path(keep) / shot.name)
