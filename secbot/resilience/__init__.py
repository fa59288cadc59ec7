"""Resilience: the retry policy, the circuit breaker and bounded TTL caches every room shares."""
