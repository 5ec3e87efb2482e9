"""trtnet: well-known PyTorch models re-expressed layer by layer as TensorRT networks.

>>> import trtnet
>>> from trtnet.zoo import resnet50
>>> model = resnet50(weights=None)
>>> engine = trtnet.build(model, batch_size=8, precision="fp16")   # doctest: +SKIP
"""

from trtnet._version import __version__ as __version__
from trtnet.builder.build import build, build_network
from trtnet.builder.emit import Network, emit, reference
from trtnet.errors import (
    BackendError,
    BuildError,
    CalibrationError,
    ConfigError,
    EngineError,
    ExportError,
    InterpreterError,
    NetworkError,
    TrtnetError,
    WeightsError,
)
from trtnet.generation import Decoder, generate, stream
from trtnet.graph import Policy
from trtnet.interpreter import run_network
from trtnet.onnx.parse import parse_onnx
from trtnet.quant.calibrate import calibrate
from trtnet.quant.ranges import Calibration
from trtnet.random_init import init_random
from trtnet.runtime.engine import Engine, PlanRejected
from trtnet.runtime.plan import TensorSpec
from trtnet.summary import summarize
from trtnet.weights import load_weights, read_safetensors, save_safetensors

__all__ = [
    "BackendError",
    "BuildError",
    "Calibration",
    "CalibrationError",
    "ConfigError",
    "Decoder",
    "Engine",
    "EngineError",
    "ExportError",
    "InterpreterError",
    "Network",
    "NetworkError",
    "PlanRejected",
    "Policy",
    "TensorSpec",
    "TrtnetError",
    "WeightsError",
    "build",
    "build_network",
    "calibrate",
    "emit",
    "generate",
    "init_random",
    "load_weights",
    "parse_onnx",
    "read_safetensors",
    "reference",
    "run_network",
    "save_safetensors",
    "stream",
    "summarize",
]
