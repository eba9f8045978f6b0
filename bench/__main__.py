"""`make bench`: run every benchmark under bench/, then print one table (ours, floor, ratio, target).

``python -m bench NAME …`` runs only those (directory, scheduling, routing, messaging, escalation,
hl7, wctp, websockets); ``python -m bench --table`` prints the table of the results already in bench/results/.
"""

import sys
import time

from bench import common, directory, escalation, hl7, messaging, routing, scheduling, wctp, websockets

MODULES = {"directory": directory, "scheduling": scheduling, "routing": routing, "messaging": messaging,
           "escalation": escalation, "hl7": hl7, "wctp": wctp, "websockets": websockets}

args = sys.argv[1:]
if args != ["--table"]:
    chosen = args or list(MODULES)
    unknown = [a for a in chosen if a not in MODULES]
    if unknown:
        sys.exit(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    started = time.time()
    for name in chosen:
        sys.argv = [f"bench.{name}"]
        MODULES[name].main()
    fresh = [p.stem for p in common.RESULTS.glob("*.json") if p.stat().st_mtime >= started]
    print("\n" + "\n".join(common.table(sorted(fresh))))
else:
    print("\n".join(common.table()))
