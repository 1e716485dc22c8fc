"""Training stages: teacher, one-step distillation, binarization, evaluation.

Import-light: submodules (``data``, ``degradations``, ...) are imported explicitly by their users.
"""

__all__ = ["data", "degradations"]
