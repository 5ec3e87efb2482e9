"""Quantization: calibration in the reference interpreter (calibrate) and the activation ranges it measures (ranges).

Where the Q/DQ pairs go is emission policy, in trtnet.ops.quantize.
"""

from trtnet.quant.ranges import CALIBRATION_METHODS

__all__ = ["CALIBRATION_METHODS"]
