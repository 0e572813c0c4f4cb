"""The benchmarks' HTML report is one self-contained file: tables, text and embedded plots."""

from __future__ import annotations

import base64
from pathlib import Path

from stream_ensemble.bench.html_report import markdown_to_html, write_html

MD = """# Accuracy

Relative **log-loss** reduction vs `best single`:

| method | sonar | mean |
|---|---:|---:|
| boosting | **4.1%** | 3.0% |
| caruana | 1.0% | <2% |

- one
- two

```
raw text <kept>
```
"""


def test_markdown_subset_renders() -> None:
    page = markdown_to_html(MD)
    assert "<h1>Accuracy</h1>" in page and "<strong>log-loss</strong>" in page and "<code>best single</code>" in page
    assert page.count("<tr>") == 3 and "<td><strong>4.1%</strong></td>" in page and "&lt;2%" in page
    assert "<ul><li>one</li><li>two</li></ul>" in page and "raw text &lt;kept&gt;" in page
    assert "---" not in page


def test_html_embeds_the_plots(tmp_path: Path) -> None:
    png = tmp_path / "chart.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    out = write_html(MD, [png], tmp_path / "report.html", "bench")
    text = out.read_text()
    assert "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode() in text
    assert "http://" not in text and "https://" not in text and "<script" not in text  # nothing external
