"""The tracking plan as code: loading, lint, diff, import, validation (no servers needed)."""

from __future__ import annotations

import json
import shutil
from datetime import date

import pytest
import yaml

from trackway.cli import main
from trackway.plan import names
from trackway.plan.diff import BREAKING, diff_plans, worst
from trackway.plan.lint import lint_plan
from trackway.plan.model import PlanError, load_plan
from trackway.plan.validate import CompiledPlan
from trackway.plan.views import typed_views

try:
    from plan_fixtures import DEMO_PLAN, hostile_plan, messy_segment_export, write_plan
except ImportError:  # tests/ imported as a package
    from tests.plan_fixtures import DEMO_PLAN, hostile_plan, messy_segment_export, write_plan


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
    assert main(["plan", "lint", str(tmp_path)]) == 1
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
        "invalid JSON Schema at properties/broken/type",
        "events 'listing viewed' and 'Listings Viewed' are near-duplicate names",
        "event 'Viewed': name is not 'Object Action'",
        "analyst query queries/missing.sql does not exist",
    ]
    for fragment in expected:
        assert fragment in text, f"missing lint line: {fragment}\n{text}"
    assert all(line.startswith(str(tmp_path)) for line in out), out


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
    assert main(["plan", "lint", str(same), "--baseline", str(old)]) == 1
    assert "breaking change (property 'b' removed) keeps version 1-0-1; bump it to 2-0-0" in capsys.readouterr().out
    assert main(["plan", "lint", str(bumped), "--baseline", str(old)]) == 0
    assert main(["plan", "diff", str(old), str(bumped)]) == 0
    assert "breaking" in capsys.readouterr().out
    assert main(["plan", "diff", "--fail-on-breaking", str(old), str(bumped)]) == 1


def test_broken_plan_files_get_a_clear_error(tmp_path, capsys):
    write_plan(tmp_path, [])
    (tmp_path / "events" / "bad.yaml").write_text("name: [unclosed\n")
    assert main(["plan", "lint", str(tmp_path)]) == 2
    assert "bad.yaml: not valid YAML" in capsys.readouterr().err
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


def test_import_iglu_self_describing_schemas(tmp_path):
    base = tmp_path / "schemas" / "com.nestful" / "link_click" / "jsonschema"
    base.mkdir(parents=True)
    for version, props in (
        ("1-0-0", {"targetUrl": {"type": "string"}}),
        ("1-0-1", {"targetUrl": {"type": "string"}, "elementId": {"type": "string"}}),
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
    assert str(event.version) == "1-0-1" and [str(v.version) for v in event.previous] == ["1-0-0"]
    assert event.owner == "com.nestful" and not event.current.allows_extra
    assert [p.name for p in event.current.properties] == ["targetUrl", "elementId"]


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
