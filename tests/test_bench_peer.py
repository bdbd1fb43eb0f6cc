"""bench/peer_biotorch.py's page section and table (no torch, no side venv)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "bench"))

import peer_biotorch  # pylint: disable=g-import-not-at-top,wrong-import-position

START, END = peer_biotorch.START, peer_biotorch.END
PAGE = "# tfbio performance\n\n## Step time\n\n| a |\n"


def _section(body):
  return f"{START}\n## Peer\n\n{body}\n{END}"


def test_section_appended_then_replaced_in_place():
  page = peer_biotorch.with_peer_section(PAGE, _section("old"))
  assert page.startswith(PAGE)
  assert peer_biotorch.peer_section(page) == _section("old")
  tail = "\n## Later section\n\ntext\n"
  page = peer_biotorch.with_peer_section(page + tail, _section("new"))
  assert page == PAGE + "\n" + _section("new") + "\n" + tail
  assert "old" not in page


def test_section_of_empty_or_unmarked_page():
  assert peer_biotorch.peer_section(PAGE) == ""
  assert peer_biotorch.peer_section(END + START) == ""
  assert peer_biotorch.with_peer_section("", _section("x")) == (
      _section("x") + "\n")


def test_report_rewrite_keeps_the_section():
  # bench/report.py writes a new page, then puts the old peer section back.
  old = peer_biotorch.with_peer_section(PAGE, _section("kept"))
  new = PAGE.replace("| a |", "| b |")
  page = peer_biotorch.with_peer_section(
      new, peer_biotorch.peer_section(old))
  assert "| b |" in page and "| a |" not in page
  assert peer_biotorch.peer_section(page) == _section("kept")


def test_table_ratios_and_missing_cells():
  per_round = {("tfbio", "resnet20", "bp"): [10.0, 12.0, 11.0],
               ("biotorch", "resnet20", "bp"): [20.0],
               ("tfbio", "resnet20", "dfa"): [9.0],
               ("tfbio", "resnet20", "fa"): [22.0]}
  errors = {("biotorch", "resnet20", "dfa"): "RuntimeError: no"}
  rows = peer_biotorch.summarize(per_round, errors, ["resnet20"],
                                 ["bp", "fa", "dfa"])
  bp, fa, dfa = rows
  assert bp["tfbio"] == 11.0 and bp["tfbio_ratio"] == 1.0
  assert bp["tfbio_vs_biotorch"] == 0.55
  assert fa["tfbio_ratio"] == 2.0 and fa["biotorch"] is None
  assert dfa["tfbio_vs_biotorch"] is None
  assert "biotorch n/a: RuntimeError: no" in dfa["notes"]
  assert any("block-wise" in n for n in dfa["notes"])
  table = peer_biotorch.markdown_table(rows)
  assert "| resnet20 | bp | 11.00 | 1.000 | 20.00 | 1.000 | 0.550 |" in table
  assert "| resnet20 | fa | 22.00 | 2.000 | n/a | n/a | n/a |" in table
