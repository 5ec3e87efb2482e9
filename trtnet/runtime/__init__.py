"""The runtime side: plan files and their sidecars (no CUDA), and engines run on CUDA streams.

plan and sidecar read and write plan files; bindings checks what a call is given; cudart wraps cuda-python;
engine deserializes a plan once and runner runs it, one execution context per CUDA stream.
"""
