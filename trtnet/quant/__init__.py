"""Quantization: calibration in the reference interpreter (calibrate) and the activation ranges it measures (ranges).

Where the Q/DQ pairs go is emission policy, in trtnet.ops.quantize.
"""
