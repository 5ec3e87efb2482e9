"""`Tensor`: a TensorRT `ITensor` in the network being built. This module holds only the data class.

Its Python operators (`+`, `@`, `x[...]`, `.reshape`, `.softmax`...) are attached by `trtnet.ops` when that
package is imported (`trtnet/ops/methods.py`), so data flows one way: ops import Tensor, never the reverse.
Every Tensor is made by an op, so by the time one exists its operators are in place.
"""

from __future__ import annotations

from trtnet.backend import capture_errors
from trtnet.errors import NetworkError


class Tensor:
    """A tensor in the network being built. `shape` has -1 for dimensions known only at run time.

    >>> y = (x @ w).softmax(-1).reshape(b, -1)   # inside a model's forward
    """

    __slots__ = ("itensor",)

    def __init__(self, itensor) -> None:
        self.itensor = itensor  # the TensorRT ITensor

    @property
    def shape(self) -> tuple[int, ...]:
        # Ops check each layer's output shape as they add it (trtnet.graph), so this fails only for a tensor made
        # some other way; then TensorRT's reason goes into the error, not only into its log.
        with capture_errors() as errors:
            try:
                return tuple(self.itensor.shape)
            except RuntimeError:
                from trtnet.graph import current_path

                reason = "; ".join(errors) or "no reason logged"
                raise NetworkError(
                    f"{current_path()}: tensor {self.name!r}: TensorRT cannot infer its shape: {reason}"
                ) from None

    @property
    def ndim(self) -> int:
        return len(self.itensor.shape)

    @property
    def dtype(self):
        """The TensorRT dtype (compare with `trtnet.dtypes.to_trt("float16")`, or use `trtnet.dtypes.name_of`)."""
        return self.itensor.dtype

    @property
    def name(self) -> str:
        return self.itensor.name

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, shape={self.shape}, dtype={self.dtype})"
