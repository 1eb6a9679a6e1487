-- Extra databases on the stack's PostgreSQL: Airflow's metadata and Metabase's
-- application DB live beside the warehouse, not in it.
CREATE DATABASE airflow;
CREATE DATABASE metabase;
