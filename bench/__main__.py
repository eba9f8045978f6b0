"""`make bench`: run every benchmark under bench/."""

from bench import directory, hl7, scheduling

for module in (directory, scheduling, hl7):
    module.main()
