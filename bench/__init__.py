"""Arbiter's benchmark suite: `make bench` (bench/run.py) and bench/audit_verify.py."""
