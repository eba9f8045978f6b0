"""The cyclic garbage collector, tuned for a long-running server node.

A node holds a few hundred thousand long-lived objects (modules, routes, ORM mappers, compiled
statements, one subscription per socket). With the interpreter's defaults every full collection walks
all of them again, and a busy node starts one every few seconds: a fifth of a node's CPU under a
steady message load went to collections that found nothing (measured with ``gc.callbacks`` under
``python -m bench.cpu messaging-server``). So once the node has started, what is alive then is moved
out of the collector's sight (``gc.freeze``), and young collections run less often: most of what a
request allocates is freed by reference counting before any collection sees it.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations between young collections (the interpreter's default: 700)
MIDDLE_THRESHOLD = 20  # young collections between middle ones (default 10)
OLD_THRESHOLD = 20  # middle collections between full ones (default 10)


def settle_after_start() -> None:
    """Collect what start-up left behind, freeze what is still alive, and space collections out.

    Cyclic garbage made later is still collected; only start-up's survivors are never scanned again.
    Called once per server process (``carerelay serve``), never from tests' many apps in one process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
