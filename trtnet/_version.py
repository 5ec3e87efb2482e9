"""The package version: one source, read by the package, the command line and the files trtnet writes."""

__version__ = "0.1.0"
