"""trtnet: well-known PyTorch models re-expressed layer by layer as TensorRT networks.

>>> import trtnet
>>> from trtnet.zoo import resnet50
>>> model = resnet50(weights=None)
>>> engine = trtnet.build(model, batch_size=8, precision="fp16")   # doctest: +SKIP
"""
# The interpreter package is imported before `reference` below is bound: `trtnet.reference` is then the
# function that runs a model, while `from trtnet.reference import run_network` still reaches the package.
from trtnet.reference import run_network  # noqa: I001
from trtnet.build import build, emit, reference
from trtnet.calibration import Calibration
from trtnet.calibrator import calibrate
from trtnet.errors import (BackendError, BuildError, CalibrationError, EngineError, InterpreterError, NetworkError,
                           TrtnetError, WeightsError)
from trtnet.runtime import Engine
from trtnet.weights import init_random, load_weights, read_safetensors, save_safetensors

__version__ = "0.1.0"
__all__ = ["BackendError", "BuildError", "Calibration", "CalibrationError", "Engine", "EngineError", "InterpreterError",
           "NetworkError", "TrtnetError", "WeightsError", "build", "calibrate", "emit", "init_random", "load_weights",
           "read_safetensors", "reference", "run_network", "save_safetensors"]
