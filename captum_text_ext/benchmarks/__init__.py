"""Support for the reproduction and speed benchmarks whose results live in ``benchmarks/results/``."""

from captum_text_ext.benchmarks.provenance import (
    Provenance,
    RunRecorder,
    png_metadata,
    sha256_file,
    write_json,
    write_markdown,
)

__all__ = ["Provenance", "RunRecorder", "png_metadata", "sha256_file", "write_json", "write_markdown"]
