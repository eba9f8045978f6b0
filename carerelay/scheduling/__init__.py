"""Provider scheduling: assignments, schedules, slots, swaps, time off, on-call lookup and feeds."""
