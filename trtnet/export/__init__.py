"""What trtnet writes for other systems: Triton model repositories (triton, triton_config), and safetensors
files from PyTorch checkpoints (convert, the one place that may unpickle, opt-in)."""
