"""Translate a vendor's JSON Schema into the plan's dialect (JSON Schema 2020-12, see ``plan.schema``).

Segment exports draft-07 with Segment's own ``any`` type, Iglu schemas are draft-04,
rudder-cli projects are YAML the importer turns into draft-07-like schemas. Each
construct the collector's compiler would refuse, or read differently, is rewritten to
what the vendor meant (``"any"`` -> no type constraint, draft-04 ``exclusiveMinimum:
true`` -> a number, tuple ``items`` -> ``prefixItems``, local ``$ref`` -> inlined ...).
What has no equivalent is kept as an ``x-<vendor>-...`` annotation: it is no longer
checked, and the import says so. The table is in docs/tracking-plan.md.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jsonschema_rs

from trackway.plan.schema import (
    MISSING,
    SCHEMA_LISTS,
    SCHEMA_MAPS,
    SCHEMA_ONE,
    Pointer,
    compile_schema,
    resolve_pointer,
    subschemas,
)

JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")
# Segment's editor offers a "Date time" data type; its schema form is a string with a format.
DATE_TYPES = {"date-time": "date-time", "datetime": "date-time", "date time": "date-time", "date": "date"}
# Keywords that only describe: kept beside an inlined $ref (draft-07 ignored the others there).
ANNOTATIONS = frozenset(
    {"title", "description", "examples", "default", "$comment", "deprecated", "readOnly", "writeOnly", "privacy", "id"}
)


@dataclass(frozen=True)
class Note:
    """One translation: ``kept`` when it could not be translated and is now only an annotation."""

    code: str
    pointer: Pointer
    message: str
    kept: bool = False


@cache
def regex_ok(pattern: str) -> bool:
    """Whether the collector's regex engine compiles ``pattern`` (ECMA-262 constructs it lacks fail here)."""
    try:
        compile_schema({"pattern": pattern})
    except (jsonschema_rs.ValidationError, ValueError):
        return False
    return True


@dataclass
class Translator:
    """Translates the schemas of one source document; ``root`` is what its local ``$ref`` resolve against."""

    vendor: str
    root: Any
    draft: int = 7  # the source's draft: 3/4 (Iglu is 4), 6, 7 (Segment), 2019, 2020
    notes: list[Note] = field(default_factory=list)
    defs: dict[str, Any] = field(default_factory=dict)  # recursive definitions, written under $defs
    _stack: list[str] = field(default_factory=list)
    _recursive: dict[str, str] = field(default_factory=dict)

    def translate(self, schema: Any, pointer: Pointer = ()) -> Any:
        """``schema`` in the plan's dialect, with the recursive definitions it needs under ``$defs``."""
        self.defs = {}
        out = self._node(schema, pointer)
        if isinstance(out, dict):
            # Local references are inlined (or kept as annotations): the source's definitions are unused now.
            for key in ("definitions", "$defs"):
                if out.pop(key, None) is not None:
                    self._note("definitions", pointer, f"{key} dropped: every $ref to them is inlined")
            if self.defs:
                out["$defs"] = self.defs
        return out

    def _note(self, code: str, pointer: Pointer, message: str, *, kept: bool = False) -> None:
        self.notes.append(Note(code, pointer, message, kept))

    @property
    def _x(self) -> str:
        return f"x-{self.vendor}-"

    # ---- one schema object

    def _node(self, schema: Any, pointer: Pointer) -> Any:
        if not isinstance(schema, dict):
            return schema  # true/false stay; anything else is left for the meta-schema check to name
        if isinstance(schema.get("$ref"), str):
            return self._ref(schema, pointer)
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "$schema":
                continue  # one dialect for the whole plan
            if key == "type":
                self._type(value, out, pointer)
            elif key == "properties" and isinstance(value, dict):
                out[key] = self._properties(value, out, pointer)
            elif key == "patternProperties" and isinstance(value, dict):
                out[key] = self._pattern_properties(value, out, pointer)
            elif key in SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: self._node(sub, (*pointer, key, name)) for name, sub in value.items()}
            elif key == "dependencies" and isinstance(value, dict):
                self._dependencies(value, out, pointer)
            elif key == "items" and isinstance(value, list):
                out["prefixItems"] = [self._node(sub, (*pointer, "prefixItems", i)) for i, sub in enumerate(value)]
                self._note("items-array", pointer, "items as a list (draft-07 tuple) -> prefixItems")
                if "additionalItems" in schema:
                    out["items"] = self._node(schema["additionalItems"], (*pointer, "items"))
            elif key == "additionalItems":
                if not isinstance(schema.get("items"), list):  # meaningless without tuple items, in every draft
                    self._note(
                        "additional-items", pointer, "additionalItems without tuple items had no effect; dropped"
                    )
            elif key in SCHEMA_LISTS and isinstance(value, list):
                out[key] = [self._node(sub, (*pointer, key, i)) for i, sub in enumerate(value)]
            elif key in SCHEMA_ONE and isinstance(value, (dict, bool)):
                out[key] = self._node(value, (*pointer, key))
            elif key == "required" and isinstance(value, bool):
                continue  # draft-03: moved into the parent object's list by _properties
            elif key == "required" and isinstance(value, list):
                unique = self._unique(value, (*pointer, key), "required")
                out[key] = list(dict.fromkeys([*(out.get(key) or []), *unique]))  # after draft-03 ones
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
                continue  # draft-04 form, rewritten below
            elif key == "nullable":
                continue  # OpenAPI's, rewritten below
            elif key == "pattern" and isinstance(value, str) and not regex_ok(value):
                out[self._x + "pattern"] = value
                self._note(
                    "bad-pattern",
                    pointer,
                    f"pattern {value!r} cannot be compiled by the collector's regex engine: kept as "
                    f"{self._x}pattern, not checked",
                    kept=True,
                )
            else:
                out[key] = copy.deepcopy(value)  # no object shared between two places: YAML would alias it
        self._draft4_exclusive(schema, out, pointer)
        self._nullable(schema, out, pointer)
        return out

    def _unique(self, values: list, pointer: Pointer, what: str) -> list:
        try:
            unique = list(dict.fromkeys(values))
        except TypeError:  # unhashable entries: the meta-schema check names them
            return values
        if len(unique) != len(values):
            self._note("duplicate", pointer, f"{what} listed a name twice: once is enough")
        return unique

    def _type(self, raw: Any, out: dict, pointer: Pointer) -> None:
        names = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else None
        if names is None:
            out["type"] = raw  # not a name nor a list: the meta-schema check names it
            return
        kinds: list[str] = []
        unknown: list[Any] = []
        any_type = False
        for name in names:
            key = name.strip().lower() if isinstance(name, str) else None
            if key == "any":
                any_type = True
            elif key in JSON_TYPES:
                if name != key:
                    self._note("type-case", pointer, f"type {name!r} written {key!r}")
                kinds.append(key)
            elif key in DATE_TYPES:
                kinds.append("string")
                out.setdefault("format", DATE_TYPES[key])
                self._note("date-type", pointer, f"type {name!r} -> string with format {DATE_TYPES[key]}")
            else:
                unknown.append(name)
        if unknown:
            out[self._x + "type"] = raw
            self._note(
                "unknown-type",
                pointer,
                f"type {raw!r} is not a JSON Schema type: kept as {self._x}type, any value passes",
                kept=True,
            )
            return
        if any_type:
            self._note("any-type", pointer, f"type {raw!r}: any value, no type constraint")
            return
        if not kinds:
            self._note("empty-type", pointer, "type [] named no type: no type constraint")
            return
        unique = list(dict.fromkeys(kinds))
        if len(unique) != len(kinds):
            self._note("duplicate", pointer, "type listed a name twice: once is enough")
        out["type"] = unique[0] if isinstance(raw, str) else unique

    def _properties(self, props: dict, out: dict, pointer: Pointer) -> dict:
        translated = {}
        required = []
        for name, sub in props.items():
            translated[name] = self._node(sub, (*pointer, "properties", name))
            if isinstance(sub, dict) and isinstance(sub.get("required"), bool):
                self._note(
                    "required-bool",
                    (*pointer, "properties", name),
                    f"required: {str(sub['required']).lower()} on the property (draft-03) -> its object's required list",
                )
                if sub["required"]:
                    required.append(name)
        if required:
            existing = out.get("required")
            out["required"] = list(dict.fromkeys([*(existing if isinstance(existing, list) else []), *required]))
        return translated

    def _pattern_properties(self, value: dict, out: dict, pointer: Pointer) -> dict:
        kept = {}
        for regex, sub in value.items():
            if regex_ok(regex):
                kept[regex] = self._node(sub, (*pointer, "patternProperties", regex))
            else:
                out.setdefault(self._x + "patternProperties", {})[regex] = sub
                self._note(
                    "bad-pattern",
                    pointer,
                    f"patternProperties {regex!r} cannot be compiled by the collector's regex engine: kept as "
                    f"{self._x}patternProperties, not checked",
                    kept=True,
                )
        return kept

    def _dependencies(self, value: dict, out: dict, pointer: Pointer) -> None:
        for name, dep in value.items():
            if isinstance(dep, list):
                out.setdefault("dependentRequired", {})[name] = dep
            else:
                out.setdefault("dependentSchemas", {})[name] = self._node(dep, (*pointer, "dependentSchemas", name))
        self._note("dependencies", pointer, "dependencies -> dependentRequired / dependentSchemas")

    def _draft4_exclusive(self, schema: dict, out: dict, pointer: Pointer) -> None:
        for keyword, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            flag = schema.get(keyword)
            if not isinstance(flag, bool):
                continue
            limit = schema.get(bound)
            if flag and isinstance(limit, (int, float)) and not isinstance(limit, bool):
                out.pop(bound, None)
                out[keyword] = limit
                self._note("draft4-exclusive", pointer, f"{keyword}: true with {bound} {limit} -> {keyword}: {limit}")
            else:
                self._note("draft4-exclusive", pointer, f"{keyword}: {str(flag).lower()} (draft-04) had no effect")

    def _nullable(self, schema: dict, out: dict, pointer: Pointer) -> None:
        if schema.get("nullable") is not True:
            if "nullable" in schema:
                self._note("nullable", pointer, "nullable: false is the default: dropped")
            return
        kinds = out.get("type")
        if isinstance(kinds, (str, list)):
            listed = [kinds] if isinstance(kinds, str) else list(kinds)
            out["type"] = list(dict.fromkeys([*listed, "null"]))
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        self._note("nullable", pointer, "nullable: true -> null added to type")

    # ---- $ref

    def _ref(self, schema: dict, pointer: Pointer) -> Any:
        ref = schema["$ref"]
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        local = ref.startswith("#")
        target: Any = MISSING
        if local:
            target = resolve_pointer(self.root, ref) if ref == "#" or ref.startswith("#/") else self._anchor(ref[1:])
        if target is MISSING:
            return self._unresolved(ref, siblings, pointer, local)
        if ref in self._stack:  # a recursive structure (a tree): keep it as a reference to $defs
            name = self._recursive.setdefault(ref, self._def_name(ref))
            return {"$ref": f"#/$defs/{name}", **self._annotations(siblings)}
        self._stack.append(ref)
        try:
            inlined = self._node(target, pointer)
        finally:
            self._stack.pop()
        if ref in self._recursive:
            name = self._recursive[ref]
            self.defs[name] = inlined
            inlined = {"$ref": f"#/$defs/{name}"}
            self._note("ref-recursive", pointer, f"recursive $ref {ref!r} -> '#/$defs/{name}'")
        else:
            self._note("ref-inlined", pointer, f"$ref {ref!r} inlined")
        return self._beside_ref(inlined, siblings, pointer)

    def _anchor(self, name: str) -> Any:
        for _, sub in subschemas(self.root):
            if sub.get("$anchor") == name or sub.get("id") == f"#{name}" or sub.get("$id") == f"#{name}":
                return sub
        return MISSING

    def _def_name(self, ref: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", ref.rstrip("/").rsplit("/", 1)[-1]) or "root"
        name, i = base, 1
        while name in self._recursive.values():
            i += 1
            name = f"{base}_{i}"
        return name

    @staticmethod
    def _annotations(siblings: dict) -> dict:
        return {k: v for k, v in siblings.items() if k in ANNOTATIONS or k.startswith("x-")}

    def _beside_ref(self, inlined: Any, siblings: dict, pointer: Pointer) -> Any:
        """Keywords next to a $ref: applied from draft 2019-09 on, ignored by the drafts before."""
        annotations = self._annotations(siblings)
        others = {k: v for k, v in siblings.items() if k not in annotations}
        if not isinstance(inlined, dict):
            inlined = {} if inlined is True else {"not": {}}
        if others and self.draft >= 2019:
            rest = self._node(others, pointer)
            return {**annotations, **rest, "allOf": [*(rest.get("allOf") or []), inlined]}
        out = {**inlined, **annotations}
        if others:
            out[self._x + "beside-ref"] = others
            self._note(
                "ref-siblings",
                pointer,
                f"{', '.join(sorted(others))} beside $ref (ignored by draft-0{self.draft}): kept as "
                f"{self._x}beside-ref, not checked",
                kept=True,
            )
        return out

    def _unresolved(self, ref: str, siblings: dict, pointer: Pointer, local: bool) -> Any:
        out = self._node(siblings, pointer) if self.draft >= 2019 else self._annotations(siblings)
        out[self._x + "ref"] = ref
        why = "points at nothing in the export" if local else "is outside the export (the collector fetches nothing)"
        self._note(
            "ref-unresolved" if local else "ref-external",
            pointer,
            f"$ref {ref!r} {why}: kept as {self._x}ref, not checked",
            kept=True,
        )
        return out
