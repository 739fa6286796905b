"""Name -> builder registries, the project's plug points: a decorator on one class or function adds a choice."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Builder = TypeVar("Builder", bound=Callable)


class Registry(dict):
    """Builders by name, filled by ``@registry.register(name)``; ``kind`` names the builders in errors."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[Builder], Builder]:
        """Decorator: the decorated class or function becomes the builder ``name``; a name is registered once."""

        def decorator(builder: Builder) -> Builder:
            if name in self:
                raise ValueError(f"a {self.kind} named {name!r} is already registered.")
            self[name] = builder
            return builder

        return decorator

    def names(self) -> list[str]:
        return sorted(self)
