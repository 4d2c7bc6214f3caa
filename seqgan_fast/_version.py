"""The package's one version string: read by the build (pyproject.toml's dynamic version) and
shown by ``seqgan_fast.__version__``, ``seqgan-fast --version``, each run's summary.json and
the bench JSON's ``machine``."""
__version__ = "0.1.0"
