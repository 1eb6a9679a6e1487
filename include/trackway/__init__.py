"""Trackway: a self-hostable pipeline for product-analytics events."""

__version__ = "0.1.0"
