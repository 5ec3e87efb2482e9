"""The benchmark behind `bench.py`: building and timing (`cpu`, `gpu`, `timing`), what the backend can target
(`targets`), the report (`report`) and the published figures it is compared with (`reference`)."""
