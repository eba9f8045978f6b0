"""`make bench`: run every benchmark under bench/."""

from bench import directory

for module in (directory,):
    module.main()
