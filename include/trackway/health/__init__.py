"""`trackway health`: checks that page when the pipeline is late, quiet or broken (docs/runbook.md)."""
