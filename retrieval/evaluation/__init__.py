"""Benchmarking through MTEB: offline data sets wrapped as MTEB retrieval tasks."""
