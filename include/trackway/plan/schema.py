"""A plan's JSON Schema as the collector reads it: compiled offline, checked with the place of each problem.

The dialect is JSON Schema 2020-12 (what jsonschema-rs compiles when a schema names no
``$schema``); importers translate other drafts and vendor extensions into it. The
collector, ``plan import`` and ``plan lint`` all go through :func:`compile_schema` and
:func:`schema_problems`, so what lint and import accept is what the collector can start with.

References are resolved offline only: a ``$ref`` to ``http:``, ``file:`` or ``iglu:`` would
otherwise make the collector fetch (or read) it at start-up, and a plan is data a pull
request can change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema_rs

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Keywords whose value is a map of name -> subschema, a subschema, or a list of subschemas
# (2020-12 and the older drafts importers meet).
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
SCHEMA_ONE = (
    "additionalProperties",
    "additionalItems",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
    "items",
)
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")

Pointer = tuple[str | int, ...]


def compile_schema(schema: Any) -> Any:
    """The validator the collector uses: formats checked, nothing fetched (ValidationError if unusable)."""
    return jsonschema_rs.validator_for(schema, validate_formats=True, offline=True)


@dataclass(frozen=True)
class SchemaProblem:
    pointer: Pointer  # where in the schema
    message: str
    kind: str = "invalid-schema"  # or "schema-ref"

    @property
    def where(self) -> str:
        """``property 'a.b'`` (when the problem is inside a property), then the keyword."""
        prop, rest = property_path(self.pointer)
        parts = [f"property '{prop}'"] if prop else []
        if rest:
            parts.append(f"at '{rest}'")
        return " ".join(parts)

    def __str__(self) -> str:
        what = "invalid JSON Schema" if self.kind == "invalid-schema" else "unusable $ref"
        return f"{self.where}: {what}: {self.message}" if self.where else f"{what}: {self.message}"


def property_path(pointer: Pointer) -> tuple[str, str]:
    """Split a schema location into the payload property it is about and the keyword path inside it.

    ``properties/address/properties/city/type`` -> (``address.city``, ``type``);
    ``properties/items/items/properties/sku`` -> (``items[].sku``, ``""``).
    """
    prop = ""
    i = 0
    steps = list(pointer)
    while i < len(steps):
        step = steps[i]
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        if step == "properties" and nxt is not None:
            prop += ("." if prop else "") + str(nxt)
            i += 2
        elif step == "items" and nxt is not None and not isinstance(nxt, int) and prop:
            prop += "[]"
            i += 1
        elif step in ("prefixItems", "items") and isinstance(nxt, int) and prop:
            prop += f"[{nxt}]"
            i += 2
        else:
            break
    return prop, "/".join(str(t) for t in steps[i:])


def subschemas(schema: Any, pointer: Pointer = ()) -> Iterator[tuple[Pointer, dict]]:
    """Every schema object inside ``schema`` (itself included) with its location."""
    if not isinstance(schema, dict):
        return
    yield pointer, schema
    for key, value in schema.items():
        if key in (*SCHEMA_MAPS, "dependencies") and isinstance(value, dict):
            for name, sub in value.items():
                yield from subschemas(sub, (*pointer, key, name))
        elif key in SCHEMA_LISTS and isinstance(value, list):
            for index, sub in enumerate(value):
                yield from subschemas(sub, (*pointer, key, index))
        elif key in SCHEMA_ONE and isinstance(value, dict):
            yield from subschemas(value, (*pointer, key))


MISSING = object()  # what resolve_pointer returns for a reference to nothing


def resolve_pointer(root: Any, ref: str) -> Any:
    """The value a local ``#/a/b`` reference points to in ``root``, or ``MISSING``."""
    from urllib.parse import unquote

    fragment = unquote(ref[1:])
    if fragment in ("", "/"):
        return root if fragment == "" else MISSING
    if not fragment.startswith("/"):
        return MISSING
    node = root
    for raw in fragment[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return MISSING
    return node


def _anchors(schema: Any) -> set[str]:
    return {s["$anchor"] for _, s in subschemas(schema) if isinstance(s.get("$anchor"), str)}


def ref_problems(schema: Any) -> list[SchemaProblem]:
    """References the collector cannot follow: pointing outside the schema, or at nothing inside it."""
    found = list(subschemas(schema))
    if any("$id" in s for _, s in found):
        return []  # a base URI changes what refs mean: leave it to the compiler
    anchors: set[str] | None = None
    out = []
    for pointer, sub in found:
        ref = sub.get("$ref")
        if not isinstance(ref, str):
            continue
        where = (*pointer, "$ref")
        if not ref.startswith("#"):
            out.append(
                SchemaProblem(
                    where,
                    f"$ref {ref!r} points outside the plan; the collector resolves only references inside the "
                    "event's own schema (put the definition under $defs and refer to '#/$defs/...')",
                    "schema-ref",
                )
            )
        elif ref.startswith("#/") or ref == "#":
            if resolve_pointer(schema, ref) is MISSING:
                out.append(SchemaProblem(where, f"$ref {ref!r} points at nothing in this schema", "schema-ref"))
        else:
            anchors = _anchors(schema) if anchors is None else anchors
            if ref[1:] not in anchors:
                out.append(SchemaProblem(where, f"$ref {ref!r} names no $anchor in this schema", "schema-ref"))
    return out


@cache
def _metaschema_validator() -> Any:
    return jsonschema_rs.validator_for({"$ref": DIALECT}, offline=True)


def _meta_problems(schema: Any) -> list[SchemaProblem]:
    declared = schema.get("$schema") if isinstance(schema, dict) else None
    if declared in (None, DIALECT, DIALECT + "#"):
        seen: dict[tuple[Pointer, str], SchemaProblem] = {}
        for err in _metaschema_validator().iter_errors(schema):
            problem = SchemaProblem(tuple(err.instance_path), err.message)
            seen.setdefault((problem.pointer, problem.message), problem)
        return list(seen.values())
    try:  # another draft named by $schema: its own meta-schema (first problem only)
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        return [SchemaProblem(tuple(exc.instance_path), exc.message)]
    except jsonschema_rs.ReferencingError as exc:
        return [SchemaProblem(("$schema",), f"unknown $schema ({exc}); drop it to use JSON Schema 2020-12")]
    return []


def schema_problems(schema: Any) -> list[SchemaProblem]:
    """Everything that stops the collector from compiling ``schema``, each with its place; [] when it compiles."""
    problems = _meta_problems(schema) + ref_problems(schema)
    if problems:
        return problems
    try:
        compile_schema(schema)
    except jsonschema_rs.ValidationError as exc:
        kind = "schema-ref" if type(exc.kind).__name__ == "Referencing" else "invalid-schema"
        return [SchemaProblem(tuple(exc.instance_path), exc.message, kind)]
    except ValueError as exc:  # e.g. an unsupported regex construct
        return [SchemaProblem((), str(exc).splitlines()[0])]
    return []
