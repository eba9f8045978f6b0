"""`make bench`: run every benchmark under bench/."""

from bench import directory, scheduling

for module in (directory, scheduling):
    module.main()
