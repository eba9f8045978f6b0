"""carerelay: clinical communication and collaboration platform."""

__version__ = "0.1.0"
