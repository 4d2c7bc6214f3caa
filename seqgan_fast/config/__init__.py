"""Training configuration: the ``TrainConfig`` dataclass, its presets and its value limits."""
from .train_config import CHOICES, OFFICIAL, PRESETS, ConfigError, TrainConfig

__all__ = ["TrainConfig", "ConfigError", "PRESETS", "OFFICIAL", "CHOICES"]
