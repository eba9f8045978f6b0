"""The cyclic garbage collector, tuned for a long-running server node.

A node holds a few hundred thousand long-lived objects (modules, routes, ORM mappers, compiled
statements). With the interpreter's defaults every full collection walks all of them again, and a
busy node starts one every few seconds: a fifth of a node's CPU under a steady message load went to
collections that found nothing (measured with ``gc.callbacks`` under ``python -m bench.cpu
messaging-server``). So once the node has started, what is alive then is moved out of the
collector's sight (``gc.freeze``).

A collection also stops the event loop for as long as it takes to walk its generation, so the
thresholds keep the frequent passes short rather than rare: with 10,000 sockets open, young
collections 20,000 allocations apart let the middle generation fill with the sockets' objects that
outlive a young pass, and each middle pass took 190–300 ms (every delivery behind one waited).
Young collections a little further apart than the default, the default middle step and full
collections ten times rarer keep a middle pass under 35 ms there and cost about 1 % of a loaded
node's CPU. A full collection still walks every socket's objects when it comes (1.5 s once, while
10,000 sockets connected): this interpreter walks a generation in one go.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 2_000  # allocations between young collections (the interpreter's default: 700)
MIDDLE_THRESHOLD = 10  # young collections between middle ones (the default)
OLD_THRESHOLD = 100  # middle collections between full ones (default 10)


def settle_after_start() -> None:
    """Collect what start-up left behind, freeze what is still alive, and space collections out.

    Cyclic garbage made later is still collected; only start-up's survivors are never scanned again.
    Called once per server process (``carerelay serve``), never from tests' many apps in one process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
