"""What Airflow needs from Trackway: assets, DAG defaults, the alert notifier, the Cosmos task group.

The DAG files in ``dags/`` only wire these together; the work itself lives in
the capability packages below (load, transform, collector, plan).
"""
