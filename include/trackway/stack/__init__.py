"""`trackway up` (make up): the collector and Airflow's processes on one machine, under one supervisor.

``processes`` is the one definition of what runs (the same commands docker-compose
runs, service by service), ``supervisor`` runs them with prefixed logs and stops
them together, ``state`` keeps one stack per TRACKWAY_HOME (a lock and a pid
file) and ``up`` puts these together for the CLI. Nothing here imports Airflow:
the supervisor starts the ``airflow`` command.
"""
