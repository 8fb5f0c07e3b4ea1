"""The parts of `benchmarks/scale_bench.py`: scratch PostgreSQL databases, the processes it
starts (set-up, sender, daemons) and what it reads from the sink's records."""
