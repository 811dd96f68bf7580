"""User-facing errors: one line that says what was wrong, where, and what to do."""


class EdgepruneError(Exception):
    """An error the CLI prints as one line (``error: ...``) and exits non-zero on."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem} — {fix}")


class UnsupportedLayerError(EdgepruneError):
    """The pruning engine met a layer whose channel semantics it does not know."""


class RecipeError(EdgepruneError):
    """A recipe failed validation."""


class ModelLoadError(EdgepruneError):
    """A model file could not be read."""


class DeviceError(EdgepruneError):
    """A device could not be reached or could not run the model."""
