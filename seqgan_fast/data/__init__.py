"""Data: where the shared data sets live, and loaders for text and interaction files."""
from .paths import data_dir, data_file

__all__ = ["data_dir", "data_file"]
