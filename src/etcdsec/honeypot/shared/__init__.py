"""One keyspace for all workers (the default with --workers N): worker 0's keyspace owner, the links
the other workers forward on, and their replicas."""
