"""Loading raw objects into raw.events_raw, exactly once per object."""
