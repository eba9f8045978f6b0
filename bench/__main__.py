"""`make bench`: run every benchmark under bench/."""

from bench import directory, hl7

for module in (directory, hl7):
    module.main()
