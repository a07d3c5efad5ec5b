"""A cheaper constructor for frozen dataclasses built once per file scanned.

A frozen dataclass's generated __init__ sets each field through object.__setattr__, which
costs about twenty dict stores: for ModelInfo's 22 fields that is more than walking a small
pickle. quick_init gives the class an __init__ with the same signature that fills the
instance's __dict__ directly, as attrs does for its frozen classes; the class stays frozen,
equal, hashable and printable exactly as before.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Replace the __init__ of a frozen dataclass without slots, whose fields all take plain
    values or plain defaults; anything else (factories, init=False, keyword-only fields, a
    __post_init__) is refused, so that a change to the class cannot be silently skipped."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__} is not a frozen dataclass with an instance dict")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__")
    defaults: dict[str, Any] = {}
    signature, body = [], []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} needs the generated __init__")
        if f.name in ("self", "_fields") or f.name.startswith("_default_"):
            raise TypeError(f"{cls.__name__}.{f.name} is a name the new __init__ uses")
        if f.default is dataclasses.MISSING:
            signature.append(f.name)
        else:
            defaults[f"_default_{f.name}"] = f.default
            signature.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _fields[{f.name!r}] = {f.name}")
    head = [f"def __init__(self, {', '.join(signature)}):", "    _fields = self.__dict__"]
    namespace: dict[str, Any] = {}
    exec("\n".join(head + body), defaults, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
