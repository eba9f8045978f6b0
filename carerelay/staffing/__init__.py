"""Staff assignments: who is caring for which bed, room or unit this shift, and where that came from."""
