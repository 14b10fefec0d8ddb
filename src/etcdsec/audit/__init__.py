"""`etcdsec audit`: find etcd misconfigurations on a host, resolved the way etcd itself reads them.

Pipeline: sources (files, trees, /proc) -> instances with effective settings -> rules -> reporters.
"""
