"""The raw data's own rules, with no I/O: table schema, object and ledger records, hour partitions, line parsing.

The lowest layer above the settings: the collector, the loader, the warehouse
backends and the tracking plan all read raw data the same way through here.
"""
