"""Name -> factory registries with strict lookups (models, encoders, balancers, datasets, ...).

Duplicate names raise; an unknown name lists the closest valid names; options are validated
against the factory's signature (unknown key, wrong type) before anything is built.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pydantic

from ._utils import did_you_mean, validation_messages

T = TypeVar("T")

__all__ = ["Registry", "RegistryEntry", "UnknownNameError", "OptionsError"]


class UnknownNameError(KeyError):
    """An unknown registered name; the message lists the close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0])


class OptionsError(ValueError):
    """Options that do not fit a registered factory's signature."""


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """One registered component: its name, factory and a one-line summary."""

    name: str
    factory: Callable[..., T]
    summary: str
    details: Mapping[str, str] = field(default_factory=dict)


class Registry(Generic[T]):
    """A registry of factories for one kind of component (``kind`` is used in messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, RegistryEntry[T]] = {}

    def register(self, name: str, summary: str = "",
                 details: Mapping[str, str] | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``; a duplicate name raises.

        ``details`` are shown by ``manytask list`` (paper, what a method needs, ...)."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered.")
            doc = summary or _first_sentence(inspect.getdoc(factory) or "")
            self._entries[name] = RegistryEntry(name, factory, doc, dict(details or {}))
            return factory

        return decorator

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style ``pattern``, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self) -> list[RegistryEntry[T]]:
        """All entries, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> RegistryEntry[T]:
        """The entry for ``name``; an unknown name raises with the closest matches."""
        if name not in self._entries:
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}.{did_you_mean(name, self.names(), 'Registered')}"
            )
        return self._entries[name]

    def validate(
        self, name: str, options: Mapping[str, Any], provided: tuple[str, ...] = (), complete: bool = False
    ) -> dict[str, Any]:
        """Check ``options`` against the factory's signature; return them coerced to its types.

        ``provided`` names arguments the caller supplies itself (e.g. ``tasks``); users may not
        set them. ``complete``: ``options`` and ``provided`` are all the factory gets, so a
        required argument missing from both is named. ``None`` values are dropped so that unset
        CLI/config values never override the factory's defaults.
        """
        factory = self.get(name).factory
        params = {
            p.name: p
            for p in inspect.signature(factory).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in provided
        }
        options = {k: v for k, v in options.items() if v is not None}
        unknown = [k for k in options if k not in params]
        if unknown:
            key = unknown[0]
            tail = did_you_mean(key, sorted(params), "Valid options") or " It takes no options."
            raise OptionsError(f"Unknown option {key!r} for {self.kind} {name!r}.{tail}")
        try:
            hints = _type_hints(factory)
        except (TypeError, SyntaxError, AttributeError) as error:  # a broken annotation: a bug in the factory
            raise TypeError(f"The annotations of {self.kind} {name!r} ({getattr(factory, '__qualname__', factory)}) "
                            f"cannot be evaluated: {error}. Fix them: options are validated against them."
                            ) from error
        fields: dict[str, Any] = {
            k: (hints.get(k, Any), ...) for k in options
        }
        model = pydantic.create_model(  # type: ignore[call-overload]
            f"{name}_options", __config__=pydantic.ConfigDict(arbitrary_types_allowed=True), **fields
        )
        missing = [p.name for p in params.values() if p.default is p.empty and p.name not in options]
        if complete and missing:
            raise OptionsError(f"{self.kind.capitalize()} {name!r} needs option(s) {', '.join(map(repr, missing))} "
                               f"(`manytask explain {name}` describes them); set them beside its name.")
        flags = [k for k, v in options.items() if isinstance(v, bool) and _number_not_flag(hints.get(k, Any))]
        if flags:
            raise OptionsError(f"Option {flags[0]!r} of {self.kind} {name!r} is a number; got "
                               f"{options[flags[0]]!r}.")
        try:
            validated = model(**options)
        except pydantic.ValidationError as error:
            where = f" of {self.kind} {name!r}"
            lines = validation_messages(error, noun="option", where=where)
            raise OptionsError(" ".join(lines)) from None
        return {k: getattr(validated, k) for k in options}

    def create(self, name: str, /, **kwargs: Any) -> T:
        """Build ``name`` with ``kwargs`` (``None`` values dropped)."""
        return self.get(name).factory(**{k: v for k, v in kwargs.items() if v is not None})


def _number_not_flag(hint: Any) -> bool:
    """Whether ``hint`` takes a number but not a bool (pydantic would read ``true`` as 1)."""
    import typing

    kinds = set(typing.get_args(hint)) if typing.get_origin(hint) in (typing.Union, types.UnionType) else {hint}
    return bool(kinds & {int, float}) and bool not in kinds


def _type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The factory's resolved annotations. One that cannot be resolved at run time (a name
    imported only for type checking) leaves that parameter unchecked, and only that one."""
    import typing

    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    try:
        return typing.get_type_hints(target)
    except NameError:
        pass
    namespace = getattr(target, "__globals__", {})
    hints: dict[str, Any] = {}
    for name, annotation in inspect.get_annotations(target).items():
        try:
            hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307
        except NameError:
            continue
    return hints


def _first_sentence(doc: str) -> str:
    """The docstring's first sentence, across line breaks (a summary cut at the first line ended
    mid-sentence), as plain text: reST roles and literals (``:math:`x```, ````x````) lose their markup."""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = re.split(r"(?<=\.)\s+(?=[A-Z`(:])", paragraph, maxsplit=1)[0]
    sentence = re.sub(r":[a-z]+:`([^`]*)`", r"\1", sentence)
    return re.sub(r"``([^`]*)``", r"\1", sentence)
