"""The ONNX route: a file parsed by the backend's OnnxParser into a trtnet Network (parse), and that network
checked against onnxruntime in the interpreter (check)."""
