"""Adapters to the protocols hospitals speak (hl7 now; wctp, paging, scim… to come)."""
