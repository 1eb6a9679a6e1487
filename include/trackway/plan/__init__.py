"""The tracking plan: one folder of YAML that the collector enforces and that types,
tests and documents the warehouse (see adr/0007-tracking-plan-as-code-issue-8.md)."""
