"""The tracking plan as code: loading, lint, diff, import, validation (no servers needed)."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from trackway.cli import main
from trackway.plan import names
from trackway.plan.diff import BREAKING, diff_plans, worst
from trackway.plan.lint import ERROR, lint_findings, lint_plan
from trackway.plan.model import Plan, PlanError, load_plan
from trackway.plan.schema import compile_schema, schema_problems
from trackway.plan.translate import Translator
from trackway.plan.validate import CompiledPlan
from trackway.plan.views import typed_views

try:
    from plan_fixtures import DEMO_PLAN, PLAN_EXPORTS, hostile_plan, messy_segment_export, write_plan
except ImportError:  # tests/ imported as a package
    from tests.plan_fixtures import DEMO_PLAN, PLAN_EXPORTS, hostile_plan, messy_segment_export, write_plan

REPO_DBT = Path(__file__).resolve().parents[1] / "include" / "dbt"


def segment_message(call) -> dict:
    """A demo Call as the Segment message its SDK would send (the fields the plan checks)."""
    kw = call.kwargs
    msg: dict = {"type": call.method, "context": kw.get("context") or {}, "messageId": kw["message_id"]}
    for src, dst in (
        ("anonymous_id", "anonymousId"),
        ("user_id", "userId"),
        ("event", "event"),
        ("name", "name"),
        ("properties", "properties"),
        ("traits", "traits"),
        ("group_id", "groupId"),
        ("previous_id", "previousId"),
    ):
        if kw.get(src) is not None:
            msg[dst] = kw[src]
    return msg


def test_demo_plan_has_the_nestful_events_and_lints_clean():
    plan = load_plan(DEMO_PLAN)
    keys = {e.key for e in plan.events}
    assert len(plan.events) >= 8
    for key in [
        ("track", "Listings Searched"),
        ("track", "Listing Viewed"),
        ("track", "Showing Requested"),
        ("track", "Signed Up"),
        ("track", "Newsletter Subscribed"),
        ("page", "Page Viewed"),
        ("identify", "Identify"),
        ("group", "Group"),
    ]:
        assert key in keys
    identify = plan.event("identify", "Identify")
    assert identify is not None and identify.payload_field == "traits"
    assert {p.name: p.privacy for p in identify.current.properties}["email"] == "pii"
    assert {p.name for p in plan.event("page", "Page Viewed").current.properties} >= {"path", "url", "title"}
    assert [p.name for p in plan.common_properties if p.required] == ["sessionId"]
    assert any(e.queries for e in plan.events)
    assert lint_plan(plan) == []
    assert main(["plan", "lint", str(DEMO_PLAN)]) == 0


def test_everything_the_demo_marketplace_sends_is_planned():
    from trackway.demo.marketplace import generate_day

    compiled = CompiledPlan(load_plan(DEMO_PLAN))
    calls = generate_day(date(2026, 11, 22), people=60, seed=3)
    problems = {}
    for call in calls:
        found = compiled.check(segment_message(call))
        if found:
            problems[(call.method, call.kwargs.get("event"))] = [str(v) for v in found]
    assert len(calls) > 300
    assert problems == {}


def test_each_violation_kind_is_found():
    root = DEMO_PLAN
    compiled = CompiledPlan(load_plan(root))
    ctx = {"sessionId": 1}

    def kinds(event):
        return {(v.kind, v.property) for v in compiled.check(event)}

    assert kinds({"type": "track", "event": "Listing Teleported", "context": ctx}) == {("unplanned_event", None)}
    viewed = {"listing_id": "l1", "city": "Lisbon", "price_per_night": 10}
    assert kinds({"type": "track", "event": "Listing Viewed", "properties": viewed, "context": ctx}) == set()
    assert ("missing_required", "price_per_night") in kinds(
        {
            "type": "track",
            "event": "Listing Viewed",
            "properties": {"listing_id": "l1", "city": "Lisbon"},
            "context": ctx,
        }
    )
    assert ("wrong_type", "price_per_night") in kinds(
        {"type": "track", "event": "Listing Viewed", "properties": {**viewed, "price_per_night": "10"}, "context": ctx}
    )
    assert ("not_in_enum", "city") in kinds(
        {"type": "track", "event": "Listing Viewed", "properties": {**viewed, "city": "Paris"}, "context": ctx}
    )
    requested = {"listing_id": "l1", "requested_date": "2026-02-30"}
    assert ("bad_format", "requested_date") in kinds(
        {"type": "track", "event": "Showing Requested", "properties": requested, "context": ctx}
    )
    assert ("deprecated_event", None) in kinds(
        {"type": "track", "event": "Listing Favorited", "properties": {"listing_id": "x"}, "context": ctx}
    )
    assert ("missing_required", "context.sessionId") in kinds(
        {"type": "track", "event": "Listing Viewed", "properties": viewed, "context": {}}
    )
    assert ("unknown_version", None) in kinds(
        {
            "type": "track",
            "event": "Listing Viewed",
            "properties": viewed,
            "context": {**ctx, "protocols": {"event_version": 7}},
        }
    )


def test_unexpected_property_and_event_version_selects_the_schema(tmp_path):
    v2 = {
        "type": "object",
        "required": ["sku"],
        "additionalProperties": False,
        "properties": {"sku": {"type": "string", "privacy": "public"}},
    }
    v1 = {"type": "object", "required": ["product_id"], "properties": {"product_id": {"type": "integer"}}}
    write_plan(
        tmp_path,
        [
            {
                "name": "Product Viewed",
                "description": "d",
                "owner": "o",
                "version": "2-0-0",
                "properties": v2,
                "previous_versions": [{"version": "1-0-0", "properties": v1}],
            }
        ],
    )
    compiled = CompiledPlan(load_plan(tmp_path))
    base = {"type": "track", "event": "Product Viewed"}
    found = compiled.check({**base, "properties": {"sku": "a", "color": "red"}})
    assert [(v.kind, v.property) for v in found] == [("unexpected_property", "color")]
    old = {**base, "properties": {"product_id": 5}, "context": {"protocols": {"event_version": 1}}}
    assert compiled.check(old) == []
    assert sorted(v.kind for v in compiled.check({**old, "context": {"protocols": {"event_version": "2"}}})) == [
        "missing_required",
        "unexpected_property",
    ]


def test_lint_reports_one_line_per_problem(tmp_path, capsys):
    bad_props = {
        "Listing ID": {"type": "string", "privacy": "public"},
        "listingId": {"type": "string", "privacy": "public"},
        "listing_id": {"type": "string", "privacy": "public"},
        "event_id": {"type": "string", "privacy": "public"},
        "select": {"type": "string", "privacy": "public"},
        "notype": {"privacy": "public"},
        "noprivacy": {"type": "string"},
        "secret": {"type": "string", "privacy": "topsecret"},
        "broken": {"type": "strng", "privacy": "public"},
    }
    write_plan(
        tmp_path,
        [
            {"name": "listing viewed", "properties": {"type": "object", "properties": bad_props}},
            {"name": "Listings Viewed", "description": "d", "owner": "o"},
            {"name": "Viewed", "description": "d", "owner": "o", "queries": ["queries/missing.sql"]},
        ],
    )
    assert main(["plan", "lint", str(tmp_path)]) == 2  # an invalid schema is an error, the rest style
    out = capsys.readouterr().out.strip().splitlines()
    text = "\n".join(out)
    expected = [
        "event 'listing viewed': name is not title case",
        "event 'listing viewed': no description",
        "event 'listing viewed': no owner",
        "property 'Listing ID': name is not snake case",
        "property 'listingId': column 'listing_id' collides with property 'Listing ID'",
        "property 'event_id': column 'event_id' collides with a common column",
        "property 'select': is a reserved SQL word",
        "property 'notype': no 'type'",
        "property 'noprivacy': no privacy class",
        "property 'secret': privacy 'topsecret' is not one of",
        "property 'broken': invalid JSON Schema at 'type'",
        "events 'listing viewed' and 'Listings Viewed' are near-duplicate names",
        "event 'Viewed': name is not 'Object Action'",
        "analyst query queries/missing.sql does not exist",
    ]
    for fragment in expected:
        assert fragment in text, f"missing lint line: {fragment}\n{text}"
    assert all(line.startswith(str(tmp_path)) for line in out), out
    assert ": error: " in out[0] and "[invalid-schema]" in out[0]  # errors first
    assert all(": warning: " in line for line in out[1:]), out


def test_lint_conventions_are_configurable(tmp_path):
    props = {"listingId": {"type": "string", "privacy": "public"}}
    write_plan(
        tmp_path,
        [
            {
                "name": "listing_viewed",
                "description": "d",
                "owner": "o",
                "properties": {"type": "object", "properties": props},
            }
        ],
        conventions={"event_case": "snake", "property_case": "camel"},
    )
    assert lint_plan(load_plan(tmp_path)) == []


def _event(props: dict, required: list[str] | None = None, version: str = "1-0-0", **extra) -> dict:
    schema = {"type": "object", "properties": props, **({"required": required} if required else {}), **extra}
    return {"name": "Order Completed", "description": "d", "owner": "o", "version": version, "properties": schema}


S = {"type": "string", "privacy": "public"}
N = {"type": "number", "privacy": "public"}
INT = {"type": "integer", "privacy": "public"}


@pytest.mark.parametrize(
    ("old", "new", "kind", "what"),
    [
        (_event({"a": S}), _event({"a": S, "b": S}), "addition", "new optional property 'b'"),
        (_event({"a": S}), _event({"a": S, "b": S}, ["b"]), "breaking", "new required property 'b'"),
        (_event({"a": S, "b": S}), _event({"a": S}), "breaking", "property 'b' removed"),
        (_event({"a": S, "b": N}), _event({"a": S, "c": N}), "breaking", "property 'b' renamed to 'c'"),
        (_event({"a": N}), _event({"a": INT}), "breaking", "property 'a' type narrowed"),
        (_event({"a": INT}), _event({"a": N}), "addition", "property 'a' type widened"),
        (_event({"a": {**S, "enum": ["x", "y"]}}), _event({"a": {**S, "enum": ["x"]}}), "breaking", "enum narrowed"),
        (_event({"a": {**S, "enum": ["x"]}}), _event({"a": {**S, "enum": ["x", "y"]}}), "addition", "enum gained"),
        (_event({"a": S}, ["a"]), _event({"a": S}), "revision", "no longer required"),
        (_event({"a": S}), _event({"a": S}, additionalProperties=False), "breaking", "now forbidden"),
        (_event({"a": S}), _event({"a": {**S, "description": "x"}}), "addition", "documentation changed"),
    ],
)
def test_diff_classifies_like_schemaver(tmp_path, old, new, kind, what):
    changes = diff_plans(load_plan(write_plan(tmp_path / "old", [old])), load_plan(write_plan(tmp_path / "new", [new])))
    assert [(c.kind, c.event) for c in changes if what in c.what] == [(kind, "Order Completed")], changes
    assert worst(changes) == kind


def test_lint_refuses_a_breaking_change_without_a_major_bump(tmp_path, capsys):
    old = write_plan(tmp_path / "old", [_event({"a": S, "b": S})])
    same = write_plan(tmp_path / "same", [_event({"a": S}, version="1-0-1")])
    bumped = write_plan(tmp_path / "bumped", [_event({"a": S}, version="2-0-0")])
    assert main(["plan", "lint", str(same), "--baseline", str(old)]) == 2  # an error, not style
    out = capsys.readouterr().out
    assert ": error: event 'Order Completed': breaking change (property 'b' removed) keeps version 1-0-1; " in out
    assert "bump it to 2-0-0 (or undo the change) [version-bump]" in out
    assert main(["plan", "lint", str(bumped), "--baseline", str(old)]) == 0
    assert main(["plan", "diff", str(old), str(bumped)]) == 0
    assert "breaking" in capsys.readouterr().out
    assert main(["plan", "diff", "--fail-on-breaking", str(old), str(bumped)]) == 1


def test_broken_plan_files_get_a_clear_error(tmp_path, capsys):
    write_plan(tmp_path, [])
    (tmp_path / "events" / "bad.yaml").write_text("name: [unclosed\n")
    assert main(["plan", "lint", str(tmp_path)]) == 2
    assert "bad.yaml: error: not valid YAML" in capsys.readouterr().out
    (tmp_path / "events" / "bad.yaml").write_text(yaml.safe_dump({"name": "X Y", "type": "click"}))
    with pytest.raises(PlanError, match="type 'click' is not one of"):
        load_plan(tmp_path)
    (tmp_path / "events" / "bad.yaml").write_text(yaml.safe_dump({"name": "X Y", "version": "v2"}))
    with pytest.raises(PlanError, match="not a SchemaVer"):
        load_plan(tmp_path)


# ---- import


def test_import_segment_public_api(tmp_path):
    export = {
        "data": None,
        "trackingPlan": {
            "name": "Shop",
            "rules": [
                {
                    "type": "TRACK",
                    "key": "Order Completed!",
                    "version": 1,
                    "jsonSchema": {
                        "description": "old",
                        "properties": {"properties": {"type": "object", "properties": {"Total $": {"type": "number"}}}},
                    },
                },
                {
                    "type": "TRACK",
                    "key": "Order Completed!",
                    "version": 2,
                    "jsonSchema": {
                        "description": "An order",
                        "properties": {
                            "properties": {
                                "type": "object",
                                "required": ["Order ID"],
                                "properties": {"Order ID": {"type": "string"}, "Tier": {"enum": ["a", "b"]}},
                            }
                        },
                    },
                },
                {
                    "type": "IDENTIFY",
                    "key": "",
                    "version": 1,
                    "jsonSchema": {
                        "properties": {
                            "traits": {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}}
                        }
                    },
                },
                {
                    "type": "PAGE",
                    "key": "",
                    "version": 1,
                    "jsonSchema": {
                        "properties": {"properties": {"type": "object", "properties": {"path": {"type": "string"}}}}
                    },
                },
                {
                    "type": "COMMON",
                    "key": "",
                    "version": 1,
                    "jsonSchema": {
                        "properties": {
                            "context": {
                                "type": "object",
                                "required": ["app"],
                                "properties": {"app": {"type": "object"}},
                            }
                        }
                    },
                },
            ],
        },
    }
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert (
        main(["plan", "import", "--from", "segment", str(tmp_path / "export.json"), "--to", str(tmp_path / "plan")])
        == 0
    )
    plan = load_plan(tmp_path / "plan")
    order = plan.event("track", "Order Completed!")
    assert order is not None and str(order.version) == "2-0-0" and order.description == "An order"
    assert [p.name for p in order.current.properties] == ["Order ID", "Tier"]
    assert order.current.schema["required"] == ["Order ID"]
    assert [str(v.version) for v in order.previous] == ["1-0-0"]
    assert [p.name for p in order.previous[0].properties] == ["Total $"]
    assert plan.event("identify", "Identify").current.schema["properties"]["email"]["format"] == "email"
    assert plan.event("page", "Page Viewed") is not None
    assert plan.common["required"] == ["app"]


def test_import_segment_config_api(tmp_path):
    export = {
        "display_name": "Legacy",
        "rules": {
            "events": [
                {
                    "name": "Signed Up",
                    "version": 1,
                    "description": "x",
                    "rules": {
                        "properties": {
                            "properties": {"type": "object", "properties": {"plan type": {"type": ["string", "null"]}}}
                        }
                    },
                }
            ],
            "identify": {
                "properties": {"traits": {"type": "object", "properties": {"First Name": {"type": "string"}}}}
            },
            "group": {"properties": {"traits": {"type": "object", "properties": {"seats": {"type": "integer"}}}}},
            "global": {"properties": {"context": {"type": "object", "properties": {"locale": {"type": "string"}}}}},
        },
    }
    (tmp_path / "legacy.json").write_text(json.dumps(export))
    assert (
        main(["plan", "import", "--from", "segment", str(tmp_path / "legacy.json"), "--to", str(tmp_path / "plan")])
        == 0
    )
    plan = load_plan(tmp_path / "plan")
    assert plan.event("track", "Signed Up").current.schema["properties"]["plan type"]["type"] == ["string", "null"]
    assert [p.name for p in plan.event("identify", "Identify").current.properties] == ["First Name"]
    assert [p.name for p in plan.event("group", "Group").current.properties] == ["seats"]
    assert "locale" in plan.common["properties"]


RUDDER_FILES = {
    "properties.yaml": """
version: rudder/v1
kind: properties
metadata: {name: props}
spec:
  properties:
    - {id: sku, name: "Product SKU", type: string, description: "Stock unit", config: {min_length: 3, enum: [A-1, B-2]}}
    - {id: price, name: price, type: "number"}
    - {id: addr, name: "Shipping Address", type: "#custom-type:address"}
    - {id: city, name: city, type: string}
    - {id: tags, name: tags, type: array, config: {item_types: [string]}}
""",
    "types.yaml": """
version: rudder/v1
kind: custom-types
metadata: {name: types}
spec:
  types:
    - id: address
      name: AddressType
      type: object
      properties:
        - {property: "#property:city", required: true}
""",
    "events.yaml": """
version: rudder/v1
kind: events
metadata: {name: events}
spec:
  events:
    - {id: product_viewed, name: "Product Viewed", event_type: track, description: "Saw a product"}
    - {id: ident, event_type: identify}
""",
    "categories.yaml": """
version: rudder/v1
kind: categories
metadata: {name: cats}
spec: {categories: [{id: browsing, name: Browsing}]}
""",
    "plan.yaml": """
version: rudder/v1
kind: tracking-plan
metadata: {name: shop}
spec:
  id: shop
  display_name: "Shop Plan"
  rules:
    - type: event_rule
      id: r1
      event: "#event:product_viewed"
      additional_properties: false
      properties:
        - {property: "#property:sku", required: true}
        - {property: "#property:price"}
        - {property: "#property:addr"}
        - {$ref: "#/properties/props/tags"}
    - type: event_rule
      id: r2
      event: {$ref: "#/events/events/ident"}
      properties:
        - {property: "#property:city"}
""",
}


def test_import_rudderstack_cli_yaml(tmp_path):
    src = tmp_path / "catalog"
    src.mkdir()
    for name, text in RUDDER_FILES.items():
        (src / name).write_text(text)
    assert main(["plan", "import", "--from", "rudderstack", str(src), "--to", str(tmp_path / "plan")]) == 0
    plan = load_plan(tmp_path / "plan")
    assert plan.name == "Shop Plan"
    viewed = plan.event("track", "Product Viewed")
    schema = viewed.current.schema
    assert schema["required"] == ["Product SKU"] and schema["additionalProperties"] is False
    assert schema["properties"]["Product SKU"] == {
        "type": "string",
        "minLength": 3,
        "enum": ["A-1", "B-2"],
        "description": "Stock unit",
    }
    assert schema["properties"]["Shipping Address"]["properties"]["city"]["type"] == "string"
    assert schema["properties"]["Shipping Address"]["required"] == ["city"]
    assert schema["properties"]["tags"]["items"] == {"type": ["string"]}
    assert plan.event("identify", "Identify").current.schema["properties"]["city"] == {"type": "string"}


def test_import_iglu_self_describing_schemas(tmp_path, capsys):
    base = tmp_path / "schemas" / "com.nestful" / "link_click" / "jsonschema"
    base.mkdir(parents=True)
    for version, props in (
        ("1-0-0", {"targetUrl": {"type": "string"}}),
        ("1-0-1", {"targetUrl": {"type": "string"}, "elementId": {"type": "string"}}),
        ("2-0-0", {"target": {"type": "string"}}),
    ):
        (base / version).write_text(
            json.dumps(
                {
                    "$schema": "http://iglucentral.com/schemas/com.snowplowplatform.self-desc/schema/jsonschema/1-0-0#",
                    "description": "A link click",
                    "self": {"vendor": "com.nestful", "name": "link_click", "format": "jsonschema", "version": version},
                    "type": "object",
                    "properties": props,
                    "required": ["targetUrl"],
                    "additionalProperties": False,
                }
            )
        )
    assert main(["plan", "import", "--from", "iglu", str(tmp_path / "schemas"), "--to", str(tmp_path / "plan")]) == 0
    event = load_plan(tmp_path / "plan").event("track", "link_click")
    # The collector checks a client of model 1 against 1-0-1, which supersedes 1-0-0: one schema per model.
    assert str(event.version) == "2-0-0" and [str(v.version) for v in event.previous] == ["1-0-1"]
    assert "link_click' version 1-0-0 left out: 1-0-1 of the same model supersedes it" in capsys.readouterr().err
    assert event.owner == "com.nestful" and not event.current.allows_extra
    assert [p.name for p in event.previous[0].properties] == ["targetUrl", "elementId"]


def test_import_refuses_to_overwrite_and_unknown_input(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{}")
    assert main(["plan", "import", "--from", "segment", str(tmp_path / "x.json"), "--to", str(tmp_path / "p")]) == 2
    assert "no 'rules' found" in capsys.readouterr().err
    assert main(["plan", "import", "--from", "iglu", str(tmp_path / "nope"), "--to", str(tmp_path / "p")]) == 2


def test_import_of_500_messy_events_keeps_every_name_and_stays_usable(tmp_path, capsys):
    names_sent = messy_segment_export(tmp_path / "export.json", count=520)
    assert (
        main(["plan", "import", "--from", "segment", str(tmp_path / "export.json"), "--to", str(tmp_path / "plan")])
        == 0
    )
    plan = load_plan(tmp_path / "plan")
    assert sorted(e.name for e in plan.events) == sorted(names_sent)
    assert len(list((tmp_path / "plan" / "events").glob("*.yaml"))) == 520
    capsys.readouterr()
    assert main(["plan", "lint", str(tmp_path / "plan")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any("name is not title case" in line for line in lines)
    assert any("no privacy class" in line for line in lines)
    views = {v.name for v in typed_views(plan, "duckdb")}  # every messy name still makes distinct, valid views
    assert len(views) == 520 and all(set(v) <= set("abcdefghijklmnopqrstuvwxyz0123456789_") for v in views)
    compiled = CompiledPlan(plan)
    assert compiled.check({"type": "track", "event": names_sent[0], "properties": {}}) is not None


def test_names_normalise_to_safe_distinct_identifiers():
    assert names.column_name("Product ID") == "product_id"
    assert names.column_name("productId") == "product_id"
    assert names.column_name("% off") == "off"
    assert names.column_name("select") == "select_value"
    assert names.relation_name("Group") == "group_event"
    long = names.column_name("x" * 300)
    assert len(long) <= 63 and long != names.column_name("x" * 299)
    assert names.column_name("☕").startswith("p_")
    cols = names.unique_columns(["Product ID", "product_id", "event_id"])
    assert len(set(cols.values())) == 3 and "event_id" not in cols.values()
    for value in cols.values():
        assert set(value) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_hostile_plan_generates_only_escaped_sql(tmp_path, dialect):
    plan = load_plan(hostile_plan(tmp_path))
    view = next(v.select for v in typed_views(plan, dialect) if "Robert" in v.event.name)
    assert 'DROP TABLE analytics.events;-- "Viewed"' in view  # present only inside a string literal
    assert "'Robert''); DROP TABLE" in view
    assert "{{ 7*7 }}" in view  # not a dbt model any more: nothing renders templates


def test_config_validates_plan_settings(tmp_path, monkeypatch):
    from trackway.config import ConfigError, load_settings

    monkeypatch.setenv("TRACKWAY_HOME", str(tmp_path))
    monkeypatch.setenv("TRACKWAY_PLAN_MODES", "web:block,backend:allow")
    monkeypatch.setenv("TRACKWAY_PLAN_DIR", str(DEMO_PLAN))
    settings = load_settings()
    assert settings.plan_modes == {"web": "block", "backend": "allow"} and settings.plan_default_mode == "flag"
    monkeypatch.setenv("TRACKWAY_PLAN_MODES", "web:reject")
    with pytest.raises(ConfigError, match="must be allow, flag or block"):
        load_settings("plan")
    monkeypatch.setenv("TRACKWAY_PLAN_MODES", "block")
    assert load_settings().plan_default_mode == "block"
    monkeypatch.setenv("TRACKWAY_PLAN_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="TRACKWAY_PLAN_DIR"):
        load_settings("plan")


def test_every_plan_command_has_help(capsys):
    for command in ("lint", "diff", "deploy", "test", "import", "docs", "generate"):
        with pytest.raises(SystemExit) as exit_info:
            main(["plan", command, "--help"])
        assert exit_info.value.code == 0
    with pytest.raises(SystemExit):
        main(["quarantine", "replay", "--help"])
    assert "messageId" in capsys.readouterr().out


def test_demo_plan_copy_is_independent(tmp_path):
    copy = shutil.copytree(DEMO_PLAN, tmp_path / "plan")
    assert lint_plan(load_plan(copy)) == []
    assert worst(diff_plans(load_plan(DEMO_PLAN), load_plan(copy))) is None
    assert BREAKING == "breaking"


def test_project_copy_is_synced_in_place(tmp_path):
    """DAG parsing re-syncs the plan's dbt project while tasks may read it: unchanged files are never
    deleted or rewritten (same inode, same mtime), changed ones are updated, vanished ones go."""
    from trackway.plan.dbtgen import project_with_plan

    source = shutil.copytree(REPO_DBT, tmp_path / "src", ignore=shutil.ignore_patterns("target", "logs"))
    dest = tmp_path / "copy"
    plan = load_plan(DEMO_PLAN)
    links = {("app", "listings"): [("host_id", "hosts", "id")], ("app", "hosts"): []}
    project_with_plan(plan, source, dest, app_links=links)
    generated = sorted((dest / "models" / "plan").rglob("*.sql"))
    assert generated and (dest / "dbt_project.yml").read_bytes() == (source / "dbt_project.yml").read_bytes()
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in dest.rglob("*") if p.is_file()}
    (dest / "target").mkdir()
    (dest / "target" / "manifest.json").write_text("{}")  # dbt's output is left alone

    (source / "models" / "staging" / "stg_events.sql").write_text("select 1 as changed\n")
    (source / "macros" / "plan.sql").unlink()
    project_with_plan(plan, source, dest, app_links=links)

    assert (dest / "models" / "staging" / "stg_events.sql").read_text() == "select 1 as changed\n"
    assert not (dest / "macros" / "plan.sql").exists()
    assert (dest / "target" / "manifest.json").exists()
    untouched = [p for p in before if p.exists() and p.name != "stg_events.sql"]
    assert untouched and all((p.stat().st_ino, p.stat().st_mtime_ns) == before[p] for p in untouched), (
        "unchanged files were deleted or rewritten"
    )
    assert sorted((dest / "models" / "plan").rglob("*.sql")) == generated


# ---- vendor constructs: import -> lint -> the collector's validator

ANY_VALUES = ["text", 3, 2.5, True, None, [1, "two"], {"nested": {"x": 1}}]


@pytest.mark.parametrize(
    ("case", "draft", "given", "expected", "accepted", "rejected"),
    [
        ("any as a string", 7, {"type": "any", "description": "d"}, {"description": "d"}, ANY_VALUES, []),
        ("any in a list", 7, {"type": ["any"]}, {}, ANY_VALUES, []),
        ("any keeps the other keywords", 7, {"type": "any", "minLength": 2}, {"minLength": 2}, ["ab", 1], ["a"]),
        ("any with null", 7, {"type": ["any", "null"]}, {}, ANY_VALUES, []),
        ("nullable string", 7, {"type": ["string", "null"]}, {"type": ["string", "null"]}, ["a", None], [1]),
        (
            "enum with null",
            7,
            {"type": ["string", "null"], "enum": ["a", None]},
            {"type": ["string", "null"], "enum": ["a", None]},
            ["a", None],
            ["b", 1],
        ),
        ("OpenAPI nullable", 7, {"type": "integer", "nullable": True}, {"type": ["integer", "null"]}, [1, None], ["1"]),
        ("type name in capitals", 7, {"type": "String"}, {"type": "string"}, ["a"], [1]),
        (
            "Segment's Date time type",
            7,
            {"type": "Date time"},
            {"type": "string", "format": "date-time"},
            ["2026-11-30T10:00:00Z"],
            ["yesterday", 3],
        ),
        (
            "unknown type kept as an annotation",
            7,
            {"type": "money", "description": "d"},
            {"x-segment-type": "money", "description": "d"},
            ANY_VALUES,
            [],
        ),
        (
            "draft-04 exclusiveMinimum",
            4,
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            {"type": "number", "exclusiveMinimum": 0},
            [0.5],
            [0, -1],
        ),
        ("draft-04 exclusiveMaximum: false", 4, {"maximum": 5, "exclusiveMaximum": False}, {"maximum": 5}, [5], [6]),
        (
            "tuple items",
            7,
            {"type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": False},
            {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
            [["a", 1], ["a"]],
            [[1, "a"], ["a", 1, 2]],
        ),
        (
            "dependencies",
            7,
            {"dependencies": {"card": ["cvc"], "iban": {"required": ["bic"]}}},
            {"dependentRequired": {"card": ["cvc"]}, "dependentSchemas": {"iban": {"required": ["bic"]}}},
            [{"card": 1, "cvc": 2}, {"iban": 1, "bic": 2}, {}],
            [{"card": 1}, {"iban": 1}],
        ),
        (
            "draft-03 required: true",
            3,
            {"type": "object", "properties": {"a": {"type": "string", "required": True}, "b": {"required": False}}},
            {"type": "object", "properties": {"a": {"type": "string"}, "b": {}}, "required": ["a"]},
            [{"a": "x"}],
            [{"b": 1}],
        ),
        (
            "pattern the regex engine refuses",
            7,
            {"type": "string", "pattern": "(?<=a"},
            {"type": "string", "x-segment-pattern": "(?<=a"},
            ["anything"],
            [1],
        ),
        (
            "$ref outside the export",
            7,
            {"$ref": "https://schemas.example.com/address.json", "description": "d"},
            {"description": "d", "x-segment-ref": "https://schemas.example.com/address.json"},
            ANY_VALUES,
            [],
        ),
        (
            "$ref to nothing",
            7,
            {"$ref": "#/definitions/missing"},
            {"x-segment-ref": "#/definitions/missing"},
            ANY_VALUES,
            [],
        ),
        (
            "keywords beside $ref in draft-07",
            7,
            {"$ref": "#/definitions/money", "description": "total", "maximum": 10},
            {"type": "number", "minimum": 0, "description": "total", "x-segment-beside-ref": {"maximum": 10}},
            [0, 50],
            [-1, "1"],
        ),
        (
            "keywords beside $ref in 2020-12",
            2020,
            {"$ref": "#/definitions/money", "maximum": 10},
            {"maximum": 10, "allOf": [{"type": "number", "minimum": 0}]},
            [0, 10],
            [-1, 11],
        ),
    ],
)
def test_translation_of_vendor_constructs(case, draft, given, expected, accepted, rejected):
    root = {"definitions": {"money": {"type": "number", "minimum": 0}}, "properties": {"p": given}}
    translated = Translator("segment", root, draft=draft).translate(given)
    assert translated == expected, case
    assert schema_problems(translated) == [], case
    validator = compile_schema(translated)
    assert [v for v in accepted if not validator.is_valid(v)] == [], case
    assert [v for v in rejected if validator.is_valid(v)] == [], case


def test_translation_of_recursive_and_nested_refs():
    root = {
        "definitions": {
            "category": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/definitions/category"}},
                },
                "required": ["name"],
            },
            "price": {"$ref": "#/definitions/money"},
            "money": {"type": "number"},
        },
        "properties": {
            "properties": {
                "type": "object",
                "properties": {
                    "category": {"$ref": "#/definitions/category"},
                    "price": {"$ref": "#/definitions/price"},
                },
            }
        },
    }
    translator = Translator("segment", root)
    out = translator.translate(root["properties"]["properties"])
    assert out["properties"]["price"] == {"type": "number"}  # a $ref to a $ref, inlined
    assert out["properties"]["category"] == {"$ref": "#/$defs/category"}  # a tree stays a reference
    assert out["$defs"]["category"]["properties"]["children"]["items"] == {"$ref": "#/$defs/category"}
    assert schema_problems(out) == []
    validator = compile_schema(out)
    assert validator.is_valid({"category": {"name": "home", "children": [{"name": "sofas", "children": []}]}})
    assert not validator.is_valid({"category": {"name": "home", "children": [{"children": []}]}})
    assert {n.code for n in translator.notes} == {"ref-inlined", "ref-recursive"}


def _imported(tmp_path: Path, fmt: str, source: Path, capsys, translated: str = "") -> Plan:
    """Import through the CLI, then lint: no errors, and the dbt models generate."""
    target = tmp_path / fmt
    assert main(["plan", "import", "--from", fmt, str(source), "--to", str(target)]) == 0
    err = capsys.readouterr().err
    assert (f"translated into JSON Schema 2020-12: {translated}\n" in err) if translated else "translated" not in err
    plan = load_plan(target)
    assert [f.line() for f in lint_findings(plan) if f.severity == ERROR] == []
    assert main(["plan", "lint", str(target)]) == 1  # style warnings only (owners, privacy classes ...)
    assert ": error: " not in capsys.readouterr().out
    assert len(typed_views(plan, "duckdb")) == len(plan.events)
    return plan


def _verdict(compiled: CompiledPlan, payload: dict, event: str = "", etype: str = "track", **context) -> set:
    message: dict = {"type": etype, "context": {"sessionId": 1, **context}}
    if etype == "track":
        message["event"] = event
    message["traits" if etype in ("identify", "group") else "properties"] = payload
    return {(v.kind, v.property) for v in compiled.check(message)}


ORDER = {
    "order_id": "ord_20261130",
    "total": 120.5,
    "revenue": 120.5,
    "currency": "EUR",
    "payment_method": None,
    "placed_at": "2026-11-30T10:00:00Z",
    "customer_email": "ana@example.com",
    "coupon": None,
    "gift": False,
    "shipping": {"method": "express", "address": {"city": "Lisbon", "postal_code": "1100-148", "country": "PT"}},
    "products": [{"product_id": "prd_abc123", "price": 60.25, "quantity": 2, "attributes": {"color": "red"}}],
    "metadata": [1, "two", None],
    "tracking_source": 42,
    "landing_page": "https://nestful.example/listing/1",
}


def _with(base: dict, **changes) -> dict:
    out = json.loads(json.dumps(base))
    for key, value in changes.items():
        if value is _DROP:
            out.pop(key)
        else:
            out[key] = value
    return out


_DROP = object()


def test_segment_public_api_export_with_any_types_imports_lints_and_validates(tmp_path, capsys):
    export = PLAN_EXPORTS / "segment" / "public-api-export.json"
    plan = _imported(tmp_path, "segment", export, capsys, "any-type 7, ref-inlined 5")
    order = plan.event("track", "Order Completed")
    assert plan.name == "Nestful Web" and str(order.version) == "2-0-0"
    assert [str(v.version) for v in order.previous] == ["1-0-0"]
    props = order.current.schema["properties"]
    assert props["metadata"] == {"description": "Anything the shop adds"}  # ["any"]: no type constraint
    assert props["tracking_source"] == {}  # "any"
    assert props["total"] == {"type": "number", "minimum": 0, "description": "Order total"}  # $ref inlined
    assert props["revenue"]["type"] == "number"  # $ref to another property of the export
    assert props["products"]["items"]["properties"]["price"]["type"] == "number"
    assert order.current.schema["x-segment-labels"] == {"team": "checkout", "priority": "p1"}
    search = plan.event("track", "Search Results Viewed")
    assert "x-segment-context" in search.current.schema  # per-event context rules: kept, not checked
    assert plan.common["properties"]["experiments"] == {"description": "Whatever the experiment framework sends"}

    compiled = CompiledPlan(plan)
    assert _verdict(compiled, ORDER, "Order Completed") == set()
    for anything in ANY_VALUES:
        assert _verdict(compiled, _with(ORDER, metadata=anything, tracking_source=anything), "Order Completed") == set()
    assert _verdict(compiled, _with(ORDER, payment_method="card", coupon="WELCOME"), "Order Completed") == set()
    rejected = {
        "total": ("120", {("wrong_type", "total")}),
        "currency": ("JPY", {("not_in_enum", "currency")}),
        "payment_method": ("cash", {("not_in_enum", "payment_method")}),
        "order_id": ("12345", {("invalid_value", "order_id")}),  # pattern
        "placed_at": ("yesterday", {("bad_format", "placed_at")}),
        "customer_email": ("not-an-email", {("bad_format", "customer_email")}),
        "landing_page": ("not a uri", {("bad_format", "landing_page")}),
        "gift": ("yes", {("wrong_type", "gift")}),
        "products": ([], {("invalid_value", "products")}),  # minItems
    }
    for prop, (value, expected) in rejected.items():
        assert _verdict(compiled, _with(ORDER, **{prop: value}), "Order Completed") == expected, prop
    assert _verdict(compiled, _with(ORDER, total=-1), "Order Completed") == {("invalid_value", "total")}  # via $ref
    assert _verdict(compiled, _with(ORDER, currency=_DROP), "Order Completed") == {("missing_required", "currency")}
    nested = [
        _with(ORDER, shipping={"method": "drone"}),
        _with(ORDER, shipping={"address": {"city": "Lisbon"}}),  # no country
        _with(ORDER, shipping={"address": {"country": "PT", "postal_code": "??"}}),
        _with(ORDER, products=[{"product_id": "x", "price": 1}]),
        _with(ORDER, products=[{"product_id": "prd_abc123"}]),  # no price
        _with(ORDER, products=[{"product_id": "prd_abc123", "price": -3}]),
        _with(ORDER, products=[{"product_id": "prd_abc123", "price": 1, "quantity": 0}]),
    ]
    for payload in nested:
        assert _verdict(compiled, payload, "Order Completed"), payload
    v1 = {"order_id": "o-1", "total": 3}  # version 1's schema: no pattern, no currency
    assert _verdict(compiled, v1, "Order Completed", protocols={"event_version": 1}) == set()
    assert ("missing_required", "currency") in _verdict(compiled, v1, "Order Completed")

    results = {"query": "loft", "results": [{"listing_id": "l1", "position": 0, "score": None}], "sort": None}
    assert _verdict(compiled, {**results, "filters": {"beds": [2, 3], "pets": True}}, "Search Results Viewed") == set()
    assert _verdict(compiled, {**results, "filters": "beds=2"}, "Search Results Viewed") == {("wrong_type", "filters")}
    assert _verdict(compiled, {**results, "sort": "random"}, "Search Results Viewed") == {("not_in_enum", "sort")}
    bad_item = {**results, "results": [{"listing_id": "l1", "position": -1}]}
    assert _verdict(compiled, bad_item, "Search Results Viewed") == {("invalid_value", "results")}
    assert _verdict(compiled, {**results, "results": [{"position": 1}]}, "Search Results Viewed")

    traits = {"email": "ana@example.com", "plan": None, "created_at": "2026-01-01T00:00:00Z", "preferences": ["x"]}
    assert _verdict(compiled, traits, etype="identify") == set()
    assert _verdict(compiled, {**traits, "plan": "enterprise"}, etype="identify") == {("not_in_enum", "plan")}
    assert _verdict(compiled, {**traits, "email": "nope"}, etype="identify") == {("bad_format", "email")}
    assert _verdict(compiled, {"name": "Acme", "employees": None}, etype="group") == set()
    assert _verdict(compiled, {"employees": 3}, etype="group") == {("missing_required", "name")}
    page = {"path": "/listing/1", "url": "https://nestful.example/listing/1", "title": None, "referrer": 7}
    assert _verdict(compiled, page, etype="page") == set()
    assert _verdict(compiled, {**page, "path": "listing"}, etype="page") == {("invalid_value", "path")}
    message = {"type": "track", "event": "Order Completed", "properties": ORDER, "context": {"experiments": [1]}}
    assert {(v.kind, v.property) for v in compiled.check(message)} == {("missing_required", "context.sessionId")}


def test_segment_config_api_export_imports_lints_and_validates(tmp_path, capsys):
    plan = _imported(tmp_path, "segment", PLAN_EXPORTS / "segment" / "config-api-export.json", capsys, "any-type 2")
    assert plan.name == "Nestful Mobile (legacy)"
    assert {e.key for e in plan.events} == {
        ("track", "Listing Favorited"),
        ("track", "Showing Requested"),
        ("identify", "Identify"),
    }
    assert plan.common["x-segment-required"] == ["anonymousId"]  # a root rule Trackway's context cannot hold
    compiled = CompiledPlan(plan)
    ctx = {"device": {"type": "ios"}}
    favorited = {
        "listing_id": "lst_00042",
        "price_per_night": None,
        "tags": ["sea"],
        "source_screen": "map",
        "extras": 1,
    }
    assert _verdict(compiled, favorited, "Listing Favorited", **ctx) == set()
    assert _verdict(compiled, {**favorited, "tags": ["a", "a"]}, "Listing Favorited", **ctx) == {
        ("invalid_value", "tags")
    }
    # enum lists null but type says string: null is not a string (JSON Schema needs both to pass)
    assert _verdict(compiled, {**favorited, "source_screen": None}, "Listing Favorited", **ctx) == {
        ("wrong_type", "source_screen")
    }
    assert _verdict(compiled, favorited, "Listing Favorited") == {("missing_required", "context.device")}
    showing = {"listing_id": "l1", "requested_date": "2026-12-01", "slots": [{"start": "2026-12-01T10:00:00Z"}]}
    assert _verdict(compiled, showing, "Showing Requested", **ctx) == set()
    assert _verdict(compiled, {**showing, "requested_date": "2026-02-30"}, "Showing Requested", **ctx) == {
        ("bad_format", "requested_date")
    }
    bad_slot = {**showing, "slots": [{"start": "2026-12-01T10:00:00Z", "minutes": 45}]}
    assert _verdict(compiled, bad_slot, "Showing Requested", **ctx) == {("not_in_enum", "slots")}
    traits = {"email": "a@b.co", "first_name": None, "favorite_cities": {"any": "thing"}}
    assert _verdict(compiled, traits, etype="identify", **ctx) == set()


def test_rudderstack_project_imports_lints_and_validates(tmp_path, capsys):
    plan = _imported(tmp_path, "rudderstack", PLAN_EXPORTS / "rudderstack", capsys)
    assert plan.name == "Checkout Plan"
    order = plan.event("track", "Order Completed")
    props = order.current.schema["properties"]
    assert props["metadata"] == {"description": "Anything the shop adds (no type)"}  # rudder-cli's empty type
    assert props["products"]["items"]["x-custom-type"] == "Product"  # item_type: a custom type
    assert props["tags"]["items"] == {"type": ["string", "number"]}
    assert props["card_last4"]["pattern"] == "^[0-9]{4}$"  # a variant's property, listed at the top too
    compiled = CompiledPlan(plan)
    order_ok = {
        "order_id": "ord_20261130",
        "total": 99.9,
        "currency": "EUR",
        "payment_method": "card",
        "card_last4": "4242",
        "placed_at": "2026-11-30T10:00:00Z",
        "customer_email": "ana@example.com",
        "products": [{"product_id": "prd_abc123", "price": 99.9, "quantity": 1}],
        "tags": ["gift", 3],
        "metadata": {"anything": [1]},
        "shipping": {"method": "standard", "city": "Porto"},
    }
    assert _verdict(compiled, order_ok, "Order Completed") == set()
    paypal = _with(order_ok, payment_method="paypal", card_last4=_DROP, paypal_email="ana@example.com")
    assert _verdict(compiled, paypal, "Order Completed") == set()
    assert _verdict(compiled, _with(order_ok, card_last4=_DROP), "Order Completed") == {
        ("missing_required", "card_last4")
    }
    assert _verdict(compiled, _with(paypal, paypal_email="not-an-email"), "Order Completed") == {
        ("bad_format", "paypal_email")
    }
    default_case = _with(order_ok, payment_method=None, card_last4=_DROP)  # neither card nor paypal: coupon needed
    assert _verdict(compiled, default_case, "Order Completed") == {("missing_required", "coupon")}
    assert _verdict(compiled, {**default_case, "coupon": "WELCOME"}, "Order Completed") == set()
    assert _verdict(compiled, {**order_ok, "color": "red"}, "Order Completed") == {("unexpected_property", "color")}
    assert _verdict(compiled, {**order_ok, "total": 1000000}, "Order Completed") == {("invalid_value", "total")}
    assert _verdict(compiled, {**order_ok, "tags": [True]}, "Order Completed") == {("wrong_type", "tags")}
    assert _verdict(compiled, {**order_ok, "shipping": {"city": "Porto"}}, "Order Completed")
    assert _verdict(compiled, {**order_ok, "products": [{"product_id": "prd_abc123"}]}, "Order Completed")
    assert _verdict(compiled, {**order_ok, "customer_email": "a@b"}, "Order Completed") == {
        ("invalid_value", "customer_email")  # minLength 6 of the custom type
    }
    assert _verdict(compiled, {"customer_email": "ana@example.com", "plan": None}, etype="identify") == set()
    assert _verdict(compiled, {"plan": "gold"}, etype="identify") == {("not_in_enum", "plan")}


def test_iglu_schemas_import_lint_and_validate(tmp_path, capsys):
    plan = _imported(
        tmp_path, "iglu", PLAN_EXPORTS / "iglu", capsys, "definitions 1, draft4-exclusive 1, ref-inlined 3"
    )
    view = plan.event("track", "listing_view")
    assert str(view.version) == "1-0-1" and view.previous == ()  # 1-0-1 supersedes 1-0-0 (same model)
    assert view.owner == "com.nestful"
    price = view.current.schema["properties"]["pricePerNight"]
    assert price["exclusiveMinimum"] == 0 and "minimum" not in price  # draft-04 boolean form translated
    checkout = plan.event("track", "checkout_step")
    assert "definitions" not in checkout.current.schema  # every $ref into them inlined
    compiled = CompiledPlan(plan)
    seen = {
        "listingId": "lst_00042",
        "city": "Lisbon",
        "pricePerNight": 0.01,
        "viewId": "5f2b9c1e-8d6a-4e1b-9c3f-2a7d8e6f1b0c",
        "viewedAt": None,
        "source": None,
        "photos": [{"url": "https://img.example/1.jpg", "width": 800}],
        "host": None,
    }
    assert _verdict(compiled, seen, "listing_view") == set()
    assert _verdict(compiled, {**seen, "host": {"hostId": "h1", "superhost": True}}, "listing_view") == set()
    assert _verdict(compiled, {**seen, "pricePerNight": 0}, "listing_view") == {("invalid_value", "pricePerNight")}
    assert _verdict(compiled, {**seen, "viewId": "x"}, "listing_view") == {("bad_format", "viewId")}
    assert _verdict(compiled, {**seen, "source": "email"}, "listing_view") == {("not_in_enum", "source")}
    assert _verdict(compiled, {**seen, "listingId": "42"}, "listing_view") == {("invalid_value", "listingId")}
    assert _verdict(compiled, {**seen, "clicks": 1}, "listing_view") == {("unexpected_property", "clicks")}
    assert _verdict(compiled, {**seen, "host": {}}, "listing_view")
    assert _verdict(compiled, {**seen, "photos": [{"url": "https://img.example/1.jpg", "alt": "x"}]}, "listing_view")
    step = {"step": 2, "total": 300, "deposit": 50, "guests": [{"kind": "adult", "age": None}], "paymentMethod": None}
    assert _verdict(compiled, step, "checkout_step") == set()
    assert _verdict(compiled, {**step, "total": -1}, "checkout_step") == {("invalid_value", "total")}
    assert _verdict(compiled, {**step, "guests": [{"kind": "pet"}]}, "checkout_step") == {("not_in_enum", "guests")}
    assert _verdict(compiled, {**step, "paymentMethod": "cash"}, "checkout_step") == {("not_in_enum", "paymentMethod")}
    assert _verdict(compiled, {**step, "coupon": "no"}, "checkout_step") == {("invalid_value", "coupon")}


def test_import_keeps_what_it_cannot_translate_as_annotations_and_says_so(tmp_path, capsys):
    export = {
        "trackingPlan": {
            "name": "Odd",
            "rules": [
                {
                    "type": "TRACK",
                    "key": "Widget Used",
                    "version": 1,
                    "jsonSchema": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "properties": {
                            "properties": {
                                "type": "object",
                                "properties": {
                                    "shape": {"type": "geometry"},
                                    "ref": {"$ref": "https://schemas.example.com/widget.json"},
                                    "code": {"type": "string", "pattern": "(?<=x"},
                                },
                            }
                        },
                    },
                }
            ],
        }
    }
    (tmp_path / "odd.json").write_text(json.dumps(export))
    assert main(["plan", "import", "--from", "segment", str(tmp_path / "odd.json"), "--to", str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err
    kept = [line for line in err.splitlines() if line.startswith("not translated, kept as an annotation")]
    assert len(kept) == 3, err
    assert "track 'Widget Used' version 1-0-0: property 'shape': type 'geometry' is not a JSON Schema type" in err
    assert "property 'ref': $ref 'https://schemas.example.com/widget.json' is outside the export" in err
    assert "property 'code': pattern '(?<=x' cannot be compiled" in err
    props = load_plan(tmp_path / "p").event("track", "Widget Used").current.schema["properties"]
    assert props == {
        "shape": {"x-segment-type": "geometry"},
        "ref": {"x-segment-ref": "https://schemas.example.com/widget.json"},
        "code": {"type": "string", "x-segment-pattern": "(?<=x"},
    }
    CompiledPlan(load_plan(tmp_path / "p"))  # the collector starts with it


def test_import_fails_naming_file_and_property_when_a_schema_stays_invalid(tmp_path, capsys):
    rules = [
        {
            "type": "TRACK",
            "key": "Signed Up",
            "version": 1,
            "jsonSchema": {
                "properties": {
                    "properties": {"type": "object", "properties": {"plan": {"type": "string", "minLength": "3"}}}
                }
            },
        }
    ]
    (tmp_path / "bad.json").write_text(json.dumps({"trackingPlan": {"name": "Bad", "rules": rules}}))
    assert main(["plan", "import", "--from", "segment", str(tmp_path / "bad.json"), "--to", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert (
        f"{tmp_path / 'bad.json'}: track 'Signed Up' version 1-0-0: property 'plan' at 'minLength': invalid JSON Schema"
        in err
    )
    assert "nothing was written" in err and not (tmp_path / "p").exists()


def test_the_collector_never_fetches_or_reads_a_ref(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"type": "string", "enum": ["s3cr3t-value"]}))
    props = {"a": {"$ref": secret.as_uri()}, "b": {"$ref": "http://127.0.0.1:9/x.json"}, "c": {"$ref": "#/$defs/nope"}}
    write_plan(tmp_path / "plan", [{"name": "Ref Used", "properties": {"type": "object", "properties": props}}])
    plan = load_plan(tmp_path / "plan")
    with pytest.raises(PlanError, match=r"property 'a' at '\$ref': unusable \$ref: .* points outside the plan"):
        CompiledPlan(plan)
    findings = [f for f in lint_findings(plan) if f.rule == "schema-ref"]
    assert [(f.where, f.severity) for f in findings] == [
        ("event 'Ref Used': property 'a'", "error"),
        ("event 'Ref Used': property 'b'", "error"),
        ("event 'Ref Used': property 'c'", "error"),
    ]
    assert "points at nothing in this schema" in findings[2].message


def test_lint_puts_errors_first_counts_each_kind_and_limits_long_lists(tmp_path, capsys):
    many = {f"Prop {i}": {"type": "string", "privacy": "public"} for i in range(30)}  # 30 property-case warnings
    events = [
        {
            "name": "Order Completed",
            "description": "d",
            "owner": "o",
            "properties": {"type": "object", "properties": many},
        },
        {
            "name": "Widget Used",
            "description": "d",
            "owner": "o",
            "properties": {"type": "object", "properties": {"shape": {"type": ["any"], "privacy": "public"}}},
        },
        {
            "name": "Nul\x00 Event",
            "description": "d",
            "owner": "o",
            "version": "2-0-1",
            "previous_versions": [{"version": "2-0-0"}],
        },
    ]
    root = write_plan(tmp_path / "plan", events)
    (root / "events" / "broken.yaml").write_text("name: [unclosed\n")
    code = main(["plan", "lint", str(root), "--max-findings", "5"])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert code == 2
    kinds = [("error" if ": error: " in line else "warning") for line in lines if not line.startswith("...")]
    assert kinds == sorted(kinds), "errors come first"
    text = "\n".join(lines)
    assert "broken.yaml: error: not valid YAML" in text
    assert "property 'shape': invalid JSON Schema at 'type': [\"any\"]" in text
    assert "name has a NUL character" in text
    assert "version 2-0-0: version 2-0-0 has the same major as 2-0-1" in text
    property_case = [line for line in lines if line.endswith("[property-case]")]
    assert len(property_case) == 5
    assert "... and 25 more warnings [property-case] (--max-findings 0 lists them all)" in lines
    assert captured.err.startswith(
        "plan lint: 3 events: 4 errors (plan-file 1, invalid-schema 1, unsafe-name 1, duplicate-version 1), "
        "38 warnings (event-case 1, property-case 30, near-duplicate 7) in "
    )
    assert main(["plan", "lint", str(root), "--max-findings", "0"]) == 2
    assert len([line for line in capsys.readouterr().out.splitlines() if line.endswith("[property-case]")]) == 30

    # Errors fixed, style left: 1, or 0 when only errors gate (--allow-warnings); a clean plan: 0.
    (root / "events" / "broken.yaml").unlink()
    (root / "events" / "e002.yaml").unlink()
    (root / "events" / "e001.yaml").unlink()
    assert main(["plan", "lint", str(root)]) == 1
    assert main(["plan", "lint", str(root), "--allow-warnings"]) == 0
    assert main(["plan", "lint", str(DEMO_PLAN)]) == 0
    assert "plan lint: ok, 11 events, no errors or warnings" in capsys.readouterr().err
