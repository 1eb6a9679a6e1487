"""Dashboards as code in Apache Superset: the bundle (include/superset) and the server in .venv-bi (docs/bi.md)."""
