"""Pulls from third-party schedulers (Amion, QGenda, ShiftAdmin) into published department schedules.

Each vendor module turns the vendor's answer into ``ExternalShift`` values; ``engine.run_sync``
maps ids through the admin-managed tables and writes slots through the same validation as a
scheduler's edits. Hand-entered slots (``manual``, ``csv``) are never overwritten or removed.
"""
