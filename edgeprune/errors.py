"""User-facing errors: one line that says what was wrong, where, and what to do."""
import signal


class EdgepruneError(Exception):
    """An error the CLI prints as one line (``error: <problem> — <fix>``), optionally followed by one
    ``hint:`` line, and exits non-zero on (``exit_code``)."""

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None, hint: str | None = None):
        self.problem = problem
        self.fix = fix
        self.hint = hint
        super().__init__(problem if not fix else f"{problem} — {fix}")


class UnsupportedLayerError(EdgepruneError):
    """The pruning engine met a layer whose channel semantics it does not know."""


class RecipeError(EdgepruneError):
    """A recipe failed validation."""


class ModelLoadError(EdgepruneError):
    """A model file could not be read."""


class DeviceError(EdgepruneError):
    """A device could not be reached or could not run the model."""


class DataMismatchError(EdgepruneError):
    """The dataset does not fit the model (input shape, dtype, classes, label range)."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived.  A BaseException, so no ``except Exception`` swallows it on the way out;
    the recipe runner adds the step it interrupted (``step``)."""

    def __init__(self, signum: int, step: str | None = None):
        self.signum = signum
        self.step = step
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)

    # The signal the CLI's handler last turned into this exception.  A handler's exception raised while C code
    # runs (TensorFlow, a list operation) can come out as another error (SystemError: "bad argument to
    # internal function"); whoever reports an error checks this first, so an interrupt is still an interrupt.
    received: int | None = None

    @classmethod
    def lost_in(cls, err: BaseException, step: str | None = None) -> "Interrupted | None":
        """The interrupt that `err` stands for, when a signal arrived before it (else None)."""
        return None if cls.received is None or isinstance(err, cls) else cls(cls.received, step=step)
