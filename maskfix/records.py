"""``record``: plain data classes for the modules every run imports.

The command line, the report and what the engine hands back declare their data with ``record``
rather than ``dataclasses``, whose import also imports ``inspect`` (about 8 ms, an eighth of a
pre-commit run on a few files).  A record's annotated fields, in order, make its ``__init__``
(positional or by keyword, with the class attribute as default, or ``Factory(f)`` for a fresh
value each time), ``__repr__`` and ``__eq__``; ``record(frozen=True)`` forbids assignment and
makes it hashable.  The engine, imported only when a file can match, uses ``dataclasses``.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple


class Factory:
    """A default made fresh for each record, as ``field(default_factory=...)``."""

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


_NONE = object()


def record(cls=None, *, frozen: bool = False):
    """Make ``cls`` a record (usable as ``@record`` or ``@record(frozen=True)``)."""

    def build(cls):
        names: Tuple[str, ...] = tuple(cls.__dict__.get("__annotations__", {}))
        defaults: Dict[str, object] = {}
        for name in names:
            value = cls.__dict__.get(name, _NONE)
            if value is not _NONE:
                defaults[name] = value
                if isinstance(value, Factory):
                    delattr(cls, name)
        cls.__match_args__ = names
        cls.__init__ = _init(names, defaults)
        cls.__repr__ = lambda self: f"{type(self).__name__}(" + ", ".join(
            f"{n}={getattr(self, n)!r}" for n in names) + ")"
        cls.__eq__ = lambda self, other: (
            tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)
            if other.__class__ is self.__class__ else NotImplemented)
        if frozen:
            cls.__setattr__ = _frozen
            cls.__delattr__ = _frozen
            cls.__hash__ = lambda self: hash(tuple(getattr(self, n) for n in names))
        else:
            cls.__hash__ = None  # equal by value, so not hashable (as a dataclass)
        return cls

    return build if cls is None else build(cls)


def _init(names: Tuple[str, ...], defaults: Dict[str, object]):
    def __init__(self, *args, **kwargs) -> None:
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes at most {len(names)} arguments ({len(args)} given)")
        values = dict(zip(names, args))
        for name, value in kwargs.items():
            if name not in names:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
            values[name] = value
        for name in names:
            if name not in values:
                if name not in defaults:
                    raise TypeError(f"{type(self).__name__}() missing required argument: {name!r}")
                default = defaults[name]
                values[name] = default.make() if isinstance(default, Factory) else default
        self.__dict__.update(values)  # past a frozen record's __setattr__

    return __init__


def _frozen(self, *args) -> None:
    raise AttributeError(f"cannot change a frozen {type(self).__name__}")
