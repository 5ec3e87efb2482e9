"""Building: a model emitted as a TensorRT network (emit), compiled into a plan (build), kept in the engine cache
(cache, keyed by everything that shapes the plan), with a progress line while TensorRT works (progress)."""
