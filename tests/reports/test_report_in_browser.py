"""The reports render in a real browser (headless Chromium) with no console errors.

Needs Debian's ``chromium`` (``.ci/run`` installs it when apt is available); skipped with the
reason otherwise. Every image of the page must load (its natural width > 0, checked in the page
itself), and a screenshot is saved beside the report for a person to look at.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ketpet_bids.bids import naming
from ketpet_bids.reports.participant import build_participant_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="headless Chromium not installed (apt-get install chromium)")

# Appended to the page: after load, report images that failed to decode as a console error.
CHECK_IMAGES = """<script>
window.addEventListener('load', () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0);
  if (broken.length) { console.error('BROKEN_IMAGES ' + broken.map(i => i.src).join(' ')); }
  else { console.log('ALL_IMAGES_OK ' + document.images.length); }
});
</script>"""


def _render(page: Path, screenshot: Path) -> str:
    """Load ``page`` in headless Chromium; return its console log (stderr)."""
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(page.read_text().replace("</body>", CHECK_IMAGES + "</body>"))
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--allow-file-access-from-files", "--virtual-time-budget=5000",
         f"--screenshot={screenshot}", "--window-size=1200,2000", probe.as_uri()],
        capture_output=True, text=True, timeout=120)
    probe.unlink()
    return result.stderr


def test_participant_report_renders_without_console_errors(derivatives: dict) -> None:
    root = derivatives["root"]
    page = build_participant_report(root, derivatives["subject"], [derivatives["run"]],
                                    settings_toml="[settings]\n")
    screenshot = root / "report.png"
    log = _render(page, screenshot)
    console = [line for line in log.splitlines() if "CONSOLE" in line]
    assert any("ALL_IMAGES_OK" in line for line in console), log[-2000:]
    assert not [line for line in console if "BROKEN_IMAGES" in line or ":ERROR:" in line]
    assert screenshot.stat().st_size > 10_000
    assert page == root / naming.report_path(derivatives["subject"])


def test_a_missing_figure_is_caught_by_the_browser_check(derivatives: dict) -> None:
    """The check can fail: with one figure file deleted, the page reports a broken image."""
    root = derivatives["root"]
    page = build_participant_report(root, derivatives["subject"], [derivatives["run"]])
    next((root / f"sub-{derivatives['subject']}" / "figures").glob("*.svg")).unlink()
    log = _render(page, root / "broken.png")
    assert any("BROKEN_IMAGES" in line for line in log.splitlines() if "CONSOLE" in line), \
        log[-2000:]
