"""report.html as a person sees it: rendered by headless Chromium, every figure drawn (a
non-blank region of the screenshot where the page lays it out) and every table on the page."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from manytask.config import parse_config
from manytask.runs import compare

CHROMIUM = next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name)) is not None), None)

pytestmark = [pytest.mark.report, pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (`make test` installs the Debian package "
    "chromium where apt-get can); test_report.py still checks the HTML without a browser")]

#: Appended to a copy of the page: where the browser laid out each image, whether it decoded,
#: and each table's row count, written into the DOM that --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const out = {height: document.documentElement.scrollHeight,
    images: [...document.images].map(i => { const r = i.getBoundingClientRect();
      return {x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height,
              decoded: i.complete && i.naturalWidth > 0}; }),
    tables: [...document.querySelectorAll("table")].map(t => t.rows.length)};
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium(tmp_path: Path, *args: str) -> str:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)
    return done.stdout


def test_every_figure_is_drawn_and_every_table_is_there(tmp_path: Path) -> None:
    config = {"data": {"name": "demo", "n_train": 300, "n_val": 60, "n_test": 60},
              "training": {"steps": 30, "eval_every": 10, "progress": False}}
    compare(parse_config(config), run_dir=tmp_path / "cmp")
    report = tmp_path / "cmp" / "report.html"
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--window-size=1200,900", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found is not None, "the page's load event never ran"
    layout = json.loads(html.unescape(found.group(1)))
    assert len(layout["images"]) == 6 and all(image["decoded"] for image in layout["images"])
    assert len(layout["tables"]) == 4 and all(rows >= 2 for rows in layout["tables"])  # a header and a row at least

    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--window-size=1200,{layout['height']}", f"--screenshot={shot}", report.as_uri())
    screen = Image.open(shot).convert("L")
    for image in layout["images"]:
        box = (round(image["x"]), round(image["y"]), round(image["x"] + image["w"]), round(image["y"] + image["h"]))
        assert image["w"] > 200 and image["h"] > 100 and box[3] <= screen.height, box
        counts = screen.crop(box).histogram()
        drawn = sum(counts[:200]) / sum(counts)
        assert 0.01 < drawn < 0.9, (box, drawn)  # axes, lines and labels where the figure is: not blank
