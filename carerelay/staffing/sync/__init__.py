"""Assignment systems (Rauland Sync and the like): pluggable adapters polled over REST, and pushes."""
