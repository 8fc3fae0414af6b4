"""The base of every config section model, and the parsing helpers the CLI uses.

Every section is a pydantic model that rejects unknown keys and values of the wrong
type (strict: ``"8"`` is not an int, ``true`` is not a number). A failed validation
raises :class:`~safervlm.errors.ConfigError` naming the section and the key, whether the
model is built from a ``--params`` JSON argument (:func:`from_dict`) or in Python.
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, WrapValidator
from pydantic._internal._model_construction import ModelMetaclass
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from safervlm.errors import ConfigError

S = TypeVar("S", bound="Section")


def _keep_int(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate as a float but keep an int an int (``8`` stays ``8``, as YAML gave it).

    Params are logged and hashed (GRPO's run key); ``8`` becoming ``8.0`` would change both.
    """
    out = handler(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else out


# A number from the config: int or float, never a bool; an int keeps its type.
Real = Annotated[float, WrapValidator(_keep_int)]


def optional_key(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` of a key that may be left out but has no default to fill.

    Snakemake's ``validate(set_default=True)`` fills every ``default``; a key without one
    stays absent. ``None`` is only the Python stand-in for "absent", so it is not offered
    as a value either.
    """
    schema.pop("default", None)
    options = [s for s in schema.pop("anyOf", []) if s != {"type": "null"}]
    if options:
        schema.update(options[0])


class _SectionMeta(ModelMetaclass):
    """Turns a failed ``Section(...)`` call into ConfigError.

    Not an ``__init__`` override: pydantic calls a custom ``__init__`` for nested sections
    too, and the error would lose the key's location; the class call is only the outer one.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as exc:
            name = getattr(cls, "section", "") or cls.__name__
            raise ConfigError(format_errors(typing.cast(type[BaseModel], cls), exc, name)) from exc


class Section(BaseModel, metaclass=_SectionMeta):
    """A config section (or stage params): unknown keys and wrong types are errors.

    Building one in Python (``SFTParams(epochs=2)``) validates too, raising ConfigError.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    # The section's name in the config file, for error messages.
    section: typing.ClassVar[str] = ""


def _where(section: str, path: tuple[Any, ...]) -> str:
    out = section
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _unwrap(hint: Any) -> list[Any]:
    """The classes a type hint may hold (through Optional, list, dict values, Annotated)."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _unwrap(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        return [c for arg in typing.get_args(hint) for c in _unwrap(arg)]
    return [hint]


def _model_at(model: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model reached by following ``path`` (keys and indexes) from ``model``."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None:
            return None
        field = current.model_fields.get(str(part)) if not isinstance(part, int) else None
        if field is None:  # a list index or a dict key: stay with the container's item model
            continue
        subs = [c for c in _unwrap(field.annotation) if isinstance(c, type) and issubclass(c, BaseModel)]
        current = subs[0] if subs else None
    return current


def format_errors(model: type[BaseModel], exc: ValidationError, section: str) -> str:
    """One message for every problem pydantic found, each naming its section and key."""
    unknown: dict[tuple[Any, ...], list[str]] = {}
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            unknown.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        msg = str(err["msg"]).replace("Input should be", "must be").removeprefix("Value error, ")
        if err["type"] in ("value_error", "assertion_error") or not loc:
            path = loc[:-1] if loc else ()
            prefix = "" if not loc or msg.startswith(str(loc[-1])) else f"{loc[-1]}: "
            problems.append(f"config section '{_where(section, path)}': {prefix}{msg}")
        elif err["type"] == "missing":
            problems.append(f"config section '{_where(section, loc[:-1])}': key '{loc[-1]}' is required")
        else:
            value = err["input"]
            problems.append(
                f"config section '{_where(section, loc[:-1])}': key '{loc[-1]}' {msg}, "
                f"got {value!r} ({type(value).__name__})"
            )
    for path, keys in unknown.items():
        sub = _model_at(model, path)
        known = f"; known: {sorted(sub.model_fields)}" if sub is not None else ""
        problems.insert(0, f"config section '{_where(section, path)}': unknown keys {sorted(keys)}{known}")
    return "; ".join(problems)


def from_dict(cls: type[S], data: dict[str, Any] | None, *, section: str) -> S:
    """Build section model ``cls`` from ``data``; missing keys take the defaults.

    Args:
        cls: a :class:`Section` model.
        data: the config section (or the stage's ``--params``).
        section: the section's name, used in error messages.

    Raises:
        ConfigError: naming the section, the key, what it must be and the value given.
    """
    try:
        return cls.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise ConfigError(format_errors(cls, exc, section)) from exc


def parse_json_arg(text: str, *, what: str) -> dict[str, Any]:
    """Parse a ``--params`` JSON argument, with a clear error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}: not valid JSON ({exc}): {text[:200]}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def config_hash(config: Any) -> str:
    """A short, stable hash of a config (sorted-key JSON)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
