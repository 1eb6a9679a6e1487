"""`trackway privacy ...`: the pseudonymisation keyring and erasure requests (argument parsing and printing only).

No command here ever prints a secret: `keys new` writes it to the keyring file only, and erasure
requests keep their subjects as keyed hashes.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from trackway.config import ConfigError, load_settings
from trackway.pseudonym import KeyringError, append_key, load_keyring, new_key
from trackway.pseudonym.keyring import is_inline


def _keyring_file(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    spec = load_settings().pseudonym_keys
    if not spec:
        raise ConfigError("no --file given and TRACKWAY_PSEUDONYM_KEYS is not set; pass --file PATH")
    if is_inline(spec):
        raise ConfigError(
            "TRACKWAY_PSEUDONYM_KEYS holds the keyring itself, not a file path: pass --file PATH, then put the "
            "new key into wherever that keyring is kept"
        )
    return Path(spec.strip())


def _keys_new(args: argparse.Namespace) -> int:
    path = _keyring_file(args.file)
    valid_from = args.valid_from or datetime.now(UTC).replace(microsecond=0).isoformat()
    try:
        key = new_key(args.id, valid_from, args.valid_until)
        keyring = append_key(path, key)
    except KeyringError as exc:
        print(f"trackway privacy keys new: {exc}", file=sys.stderr)
        return 2
    print(f"added key {key.describe()} to {path} ({len(keyring)} key(s)); the secret is only in that file")
    if key.valid_from > datetime.now(UTC):
        print("it takes over for new events at its valid_from; send SIGHUP to a running collector before then")
    else:
        print("send SIGHUP to a running collector to use it now")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    spec = str(args.file) if args.file else load_settings().pseudonym_keys
    if not spec:
        raise ConfigError("no --file given and TRACKWAY_PSEUDONYM_KEYS is not set")
    try:
        keyring = load_keyring(spec)
    except KeyringError as exc:
        print(f"trackway privacy keys list: {exc}", file=sys.stderr)
        return 2
    try:
        current = keyring.current().id
    except KeyringError:
        current = None
    for key in keyring.keys:
        print(f"{key.describe()}{'  <- current' if key.id == current else ''}")
    if current is None:
        print("no key is valid now: values classified hash are dropped", file=sys.stderr)
    return 0


TYPES = ("suppress_with_delete", "delete_only", "suppress_only", "unsuppress")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; write e.g. 2026-12-01T00:00 (UTC)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _request(args: argparse.Namespace) -> int:
    from trackway.privacy.runs import request
    from trackway.subjects.ledger import InvalidRequest

    try:
        state = request(
            load_settings("privacy"),
            args.type,
            user_ids=args.user_id or [],
            anonymous_ids=args.anonymous_id or [],
            reason=args.reason,
        )
    except InvalidRequest as exc:
        print(f"trackway privacy request: {exc}", file=sys.stderr)
        return 2
    print(state.request_id)
    done = "suppression published" if state.request.suppresses else "recorded"
    print(
        f"{state.request.type}: {done}; due {state.request.due_at:%Y-%m-%d}"
        + ("; `trackway privacy run` applies the deletion" if state.request.deletes else ""),
        file=sys.stderr,
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from trackway.privacy.runs import run

    settings = load_settings("privacy")
    report = run(settings, as_of=args.as_of, dry_run=args.dry_run, say=lambda msg: print(msg, file=sys.stderr))
    for line in report.lines():
        print(line)
    if report.days and not args.dry_run:
        _recompute_aggregates(settings, report.days)
    retention_failed = report.retention is not None and report.retention.objects_failed
    return 1 if report.failed or report.objects_failed or retention_failed else 0


def _recompute_aggregates(settings, days) -> None:
    """daily_active_users (and the plan's aggregates) for the affected days: their dbt models, now."""
    from trackway.orchestration.privacy_tasks import recompute_aggregates

    print(recompute_aggregates(settings, days))


def _status(args: argparse.Namespace) -> int:
    from trackway.privacy.runs import status

    found = status(load_settings("privacy"), args.request_id)
    if args.json:
        print(json.dumps(found if args.request_id is None else found[0], indent=2))
        return 0
    if not found:
        print("no erasure requests")
    for item in found:
        print(
            f"{item['request_id']}  {item['type']:<20} {item['status']:<8} received {item['received_at'][:19]}  "
            f"due {item['due_at'][:10]}  subjects {item['subjects']['requested']}+{item['subjects']['linked']} linked"
        )
        if args.request_id:
            for store, detail in item["stores"].items():
                print(f"  {store}: {detail.get('status')} at {detail.get('at', '')[:19]}")
            if item["verification"]:
                print("  verification: " + json.dumps(item["verification"], sort_keys=True))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from trackway.privacy.runs import verify

    result = verify(load_settings("privacy"), args.request_id)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.request_id} ({result['status']}): matching rows and objects per store")
        for table, rows in result["warehouse"].items():
            print(f"  warehouse {table:<40} {rows:>8} rows")
        raw = result["raw_objects"]
        print(
            f"  raw objects {'':<38} {raw['objects']:>8} objects, {raw['lines']} lines "
            f"(scanned {raw['scanned']} objects)"
        )
        for problem in result["unreadable_objects"]:
            print(f"  unreadable object: {problem}")
        if "suppression" in result:
            found = result["suppression"]
            print(f"  suppression {'':<38} {found['subjects_suppressed']}/{found['subjects']} subjects suppressed")
        print("clean: nothing left" if result["clean"] else "NOT CLEAN: rows or objects are left")
    return 0 if result["clean"] else 1


def _dispatch(args: argparse.Namespace) -> int:
    """Run the subcommand; an unknown request id is a message and exit 1, not a traceback."""
    from trackway.privacy.runs import UnknownRequest

    try:
        return int(args.privacy_func(args))
    except UnknownRequest as exc:
        print(f"trackway privacy {args.privacy_command}: {exc}", file=sys.stderr)
        return 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    privacy = sub.add_parser(
        "privacy",
        help="personal data: pseudonymisation keys; erasure requests: request, run, status, verify (docs/privacy.md)",
        description="Personal data in Trackway (docs/privacy.md): the pseudonymisation keyring, and erasure requests "
        "(a ledger of keyed subject hashes; deletion from the warehouse and every raw object; loads that filter "
        "erased subjects; suppression at the collector).",
    )
    psub = privacy.add_subparsers(dest="privacy_command", metavar="PRIVACY_COMMAND", required=True)
    add_keys_parsers(psub)
    add_erasure_parsers(psub)


def add_keys_parsers(psub: argparse._SubParsersAction) -> None:
    keys = psub.add_parser(
        "keys",
        help="the pseudonymisation keyring (TRACKWAY_PSEUDONYM_KEYS): add or list keys, never show a secret",
        description="Keys for the `hash` action: HMAC-SHA256 pseudonyms `h1:<key id>:...`, each key with a "
        "validity window. Deleting a key from the file makes its pseudonyms unlinkable.",
    )
    ksub = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", required=True)
    new = ksub.add_parser(
        "new",
        help="generate a key (32 random bytes) and add it to the keyring file; prints its id, never its secret",
        description="Generate a key with Python's `secrets` and add it to the keyring file (created with mode "
        "0600), replacing the file atomically. Events received from --valid-from on are hashed with it.",
    )
    new.add_argument("--id", required=True, help="key id, shown in every pseudonym, e.g. k2026q4")
    new.add_argument("--valid-from", help="ISO-8601 date or time, UTC when no zone (default: now)")
    new.add_argument("--valid-until", help="ISO-8601 date or time (default: open-ended)")
    new.add_argument("--file", help="the keyring file (default: TRACKWAY_PSEUDONYM_KEYS when it is a path)")
    new.set_defaults(func=_keys_new)
    listing = ksub.add_parser(
        "list",
        help="print each key's id and validity window (never a secret), marking the current one",
        description="Print the keyring's key ids and validity windows; the secrets are never printed.",
    )
    listing.add_argument("--file", help="the keyring file (default: TRACKWAY_PSEUDONYM_KEYS)")
    listing.set_defaults(func=_keys_list)


def add_erasure_parsers(commands: argparse._SubParsersAction) -> None:
    """`request`, `run`, `status`, `verify`: erasure requests (GDPR Art. 17, CCPA).

    A ledger of requests whose subjects are stored only as keyed hashes (TRACKWAY_PRIVACY_LEDGER_KEY), in
    the warehouse (privacy.*) and in the raw store (_privacy/). Deletions reach raw.events_raw, the
    quarantine, every mart and every raw object; every later load filters the erased subjects; suppressed
    subjects are dropped by the collector.
    """

    req = commands.add_parser(
        "request",
        help="record an erasure request and print its id",
        description="Record a request (Segment's regulation types). A user id covers every anonymous id linked to "
        "it in analytics.identity_map, now and at each run. Suppressions take effect within "
        "TRACKWAY_PRIVACY_POLL_SECONDS at the collector; deletions at the next `trackway privacy run` (the privacy "
        "DAG runs daily). Prints the request id on stdout.",
    )
    req.add_argument("--type", required=True, choices=TYPES, help="what to do")
    req.add_argument("--user-id", action="append", metavar="ID", help="a userId (repeat for more)")
    req.add_argument("--anonymous-id", action="append", metavar="ID", help="an anonymousId (repeat for more)")
    req.add_argument("--reason", help="why (e.g. a ticket number); stored in the ledger: never put personal data here")
    req.set_defaults(func=_dispatch, privacy_func=_request)

    run = commands.add_parser(
        "run",
        help="apply the pending requests now",
        description="Apply every pending request: re-resolve identity links, delete the subjects' rows from the "
        "warehouse, rewrite the raw objects holding their lines, verify, publish the subject set, then recompute "
        "daily_active_users for the affected days. Exit 1 when a request or an object failed (the next run retries).",
    )
    run.add_argument(
        "--as-of",
        type=_moment,
        help="apply requests received up to this time, and retention as of it (default now, UTC)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be deleted, rewritten or sanitised, per table and object prefix; change nothing",
    )
    run.set_defaults(func=_dispatch, privacy_func=_run)

    st = commands.add_parser("status", help="show requests and their per-store status", description="Show requests.")
    st.add_argument("request_id", nargs="?", help="one request (default: all)")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_dispatch, privacy_func=_status)

    ver = commands.add_parser(
        "verify",
        help="scan every store for a request's subjects and print matching rows and objects",
        description="Scan every warehouse table, the quarantine and every raw object for the request's subjects "
        "(and the ids linked to them); print the matching rows per table and objects in the raw store, and record "
        "the result in the ledger. Exit 1 unless everything is 0.",
    )
    ver.add_argument("request_id", help="the request id (rq-...)")
    ver.add_argument("--json", action="store_true", help="print JSON")
    ver.set_defaults(func=_dispatch, privacy_func=_verify)
