"""`make bench`: run every benchmark under bench/."""

from bench import directory, hl7, scheduling, wctp

for module in (directory, scheduling, hl7, wctp):
    module.main()
