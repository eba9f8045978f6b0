"""The server node's collector tuning, in a child process: it changes the interpreter's global state."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import gc, json, weakref
from carerelay.core.collector import settle_after_start

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)

before = cycle()          # start-up garbage: collected, not frozen
kept = Node()             # alive at start: frozen
settle_after_start()
after = cycle()           # a cycle made while serving: still collectable
frozen = gc.get_freeze_count()
gc.collect()
print(json.dumps({"before_freed": before() is None, "after_freed": after() is None, "frozen": frozen,
                  "threshold": gc.get_threshold()}))
"""


def test_start_up_garbage_is_collected_survivors_frozen_and_later_cycles_still_freed() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout
    seen = json.loads(out)
    assert seen["before_freed"] is True
    assert seen["after_freed"] is True
    assert seen["frozen"] > 1_000  # the modules and classes imported so far
    assert seen["threshold"][0] > 700  # young collections spaced out from the interpreter's default
