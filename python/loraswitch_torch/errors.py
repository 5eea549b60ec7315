"""The one exception of the package: an adapter (folder, config, tensor) or an argument that cannot be used."""

from __future__ import annotations


class AdapterError(ValueError):
    """What is wrong, and where: the file, the key or tensor, what was expected, and a hint when one helps.

    The message reads ``FILE: WHAT: PROBLEM (HINT)``, one line, as `loraswitch`'s errors do."""

    def __init__(self, file: str | None, what: str, problem: str, hint: str | None = None):
        self.file, self.what, self.problem, self.hint = file, what, problem, hint
        where = f"{file}: " if file else ""
        super().__init__(f"{where}{what}: {problem}" + (f" ({hint})" if hint else ""))


OTHER_BASE_HINT = "maybe the adapter belongs to another base model?"
