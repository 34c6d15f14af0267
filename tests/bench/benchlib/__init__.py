"""Shared pieces of Tether's benchmarks: building, hugepages, the processes
under test (tether-dataplane, dpdk-testpmd), packet files and sampling.
A benchmark lives in benchmarks/NAME.py and uses these."""
