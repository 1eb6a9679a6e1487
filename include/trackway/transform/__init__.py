"""Running the dbt project that types raw.events_raw into analytics.*."""
