"""Segment-compatible HTTP collector: acknowledge only what is fsync'd, upload it by hour received."""
