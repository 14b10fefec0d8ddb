"""--shared-keyspace (experimental): worker 0's keyspace owner and the links the other workers forward on."""
