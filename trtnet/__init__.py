"""trtnet: well-known PyTorch models re-expressed layer by layer as TensorRT networks.

>>> import trtnet
>>> from trtnet.zoo import resnet50
>>> model = resnet50(weights=None)
>>> engine = trtnet.build(model, batch_size=8, precision="fp16")   # doctest: +SKIP
"""
from trtnet.builder import Network, build, build_network, emit, reference
from trtnet.calibration import Calibration
from trtnet.calibrator import calibrate
from trtnet.errors import (BackendError, BuildError, CalibrationError, ConfigError, EngineError, ExportError,
                           InterpreterError, NetworkError, TrtnetError, WeightsError)
from trtnet.graph import Policy
from trtnet.interpreter import run_network
from trtnet.onnx import parse_onnx
from trtnet.plan import TensorSpec
from trtnet.runtime import Engine, PlanRejected
from trtnet.summary import summarize
from trtnet.weights import init_random, load_weights, read_safetensors, save_safetensors

__version__ = "0.1.0"
__all__ = ["BackendError", "BuildError", "Calibration", "CalibrationError", "ConfigError", "Engine", "EngineError",
           "ExportError", "InterpreterError", "Network", "NetworkError", "PlanRejected", "Policy", "TensorSpec",
           "TrtnetError", "WeightsError", "build", "build_network", "calibrate", "emit",
           "init_random", "load_weights", "parse_onnx", "read_safetensors", "reference", "run_network",
           "save_safetensors", "summarize"]
