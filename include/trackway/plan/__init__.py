"""The tracking plan: one folder of YAML that the collector enforces and that types,
tests and documents the warehouse (see adr/0011-tracking-plan-as-code.md)."""
