"""The watch stream's line splitting: events arrive in chunks that cut lines anywhere."""

from __future__ import annotations

import json

from ludus.runtime.kube import JsonLines


def test_events_cut_across_chunks_come_out_whole_and_in_order() -> None:
    events = [{"type": "ADDED", "object": {"metadata": {"name": f"p{i}"}, "data": "x" * 70_000}} for i in range(3)]
    stream = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    lines = JsonLines()
    out = []
    for start in range(0, len(stream), 4096):  # far smaller than one event: every line spans chunks
        out += lines.feed(stream[start : start + 4096])
    assert out == events


def test_blank_keep_alive_lines_are_skipped_and_a_last_line_without_newline_waits() -> None:
    lines = JsonLines()
    assert lines.feed(b'\n{"type":"BOOKMARK"}\n\n{"type":') == [{"type": "BOOKMARK"}]
    assert lines.feed(b'"ADDED"}') == []
    assert lines.feed(b"\n") == [{"type": "ADDED"}]
