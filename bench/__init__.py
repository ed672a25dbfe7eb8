"""Benchmarks for discovery at scale: generated ``test:///`` node files and the virsh baseline."""
