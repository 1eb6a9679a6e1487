"""The regulations API, Segment's request shape, for the collector's admin listener (never the tracking port).

  POST /v1/regulations        {"regulationType": "SUPPRESS_WITH_DELETE" | "DELETE_ONLY" | "SUPPRESS_ONLY" |
                               "UNSUPPRESS", "subjectType": "USER_ID" | "ANONYMOUS_ID", "subjectIds": [...],
                               "reason"?: "..."}  ->  200 {"data": {"regulateId": "rq-..."}}
  GET  /v1/regulations/{id}   ->  200 {"data": {"regulation": {"id", "regulationType", "overallStatus", ...}}}

``Authorization: Bearer <TRACKWAY_PRIVACY_API_TOKEN>``, a token distinct from write keys;
unset, the API answers 503 (fail closed). The collector has no warehouse: a request is
written to the ledger's copy in the raw store (``_privacy/requests/``) and the subject set
republished there, so suppression starts at the next poll; the next ``trackway privacy run``
copies it into the warehouse and applies the deletion.

The admin listener (collector/admin.py) routes ``POST /v1/regulations`` and
``GET /v1/regulations/<id>`` to ``RegulationsApi.answer``, its body already read (up to the
admin listener's limit); the tracking port never serves it.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from trackway.config import ConfigError, Settings
from trackway.objectstore import ObjectStore
from trackway.subjects import mirror
from trackway.subjects.keys import ledger_key
from trackway.subjects.ledger import (
    FINISHED,
    RECEIVED,
    STORE,
    InvalidRequest,
    RequestEvent,
    RequestState,
    new_request,
    states,
)
from trackway.subjects.sets import subject_filter

log = logging.getLogger("trackway.collector.regulations")

PREFIX = "/v1/regulations"
_STATUS = {"pending": "INITIALIZED", "running": "RUNNING", "failed": "FAILED", "finished": "FINISHED"}
_KINDS = {"USER_ID": "user_ids", "ANONYMOUS_ID": "anonymous_ids"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class RegulationsApi:
    """POST and GET of erasure requests over the ledger's copy in the raw store."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.token = settings.privacy_api_token

    @staticmethod
    def handles(path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    def answer(self, method: str, path: str, authorization: str | None, body: bytes) -> tuple[int, bytes, dict]:
        """(status, JSON body, extra headers) of one request: what the admin listener's routes answer."""
        extra: dict[str, str] = {}
        try:
            self._authorise(authorization)
            status, answer = self._route(method, path.rstrip("/"), body)
        except ApiError as err:
            status, extra = err.status, err.headers
            answer = {"errors": [{"type": "error", "message": err.message}]}
        except ConfigError as err:  # no ledger key here: nothing can be recorded
            log.error("regulations API: %s", err)
            status, answer = 503, {"errors": [{"type": "error", "message": str(err)}]}
        return status, orjson.dumps(answer), extra

    def _authorise(self, authorization: str | None) -> None:
        if not self.token:
            raise ApiError(503, "the regulations API is off: set TRACKWAY_PRIVACY_API_TOKEN on the collector")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise ApiError(
                401, "send Authorization: Bearer <TRACKWAY_PRIVACY_API_TOKEN>", {"WWW-Authenticate": "Bearer"}
            )

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if path == PREFIX:
            if method != "POST":
                raise ApiError(405, f"{PREFIX} accepts POST", {"Allow": "POST"})
            try:
                return 200, self.create(orjson.loads(body))
            except orjson.JSONDecodeError:
                raise ApiError(400, "the body is not JSON") from None
        request_id = path[len(PREFIX) + 1 :]
        if method != "GET":
            raise ApiError(405, f"{PREFIX}/{{id}} accepts GET", {"Allow": "GET"})
        if not mirror.valid_request_id(request_id):
            raise ApiError(404, "no such regulation")
        return 200, self.describe(request_id)

    def create(self, body: Any) -> dict[str, Any]:
        """Record a request in the raw store's ledger and republish the subject set."""
        if not isinstance(body, dict):
            raise ApiError(400, "send a JSON object")
        kind = str(body.get("regulationType") or "").lower()
        subject_type = body.get("subjectType")
        ids = body.get("subjectIds")
        if subject_type not in _KINDS:
            raise ApiError(400, "subjectType must be USER_ID or ANONYMOUS_ID")
        if not isinstance(ids, list):
            raise ApiError(400, "subjectIds must be a list of ids")
        reason = body.get("reason")
        key = ledger_key(self.settings)
        assert key is not None
        try:
            request = new_request(
                kind,
                key=key,
                now=datetime.now(UTC),
                due_days=self.settings.privacy_due_days,
                reason=reason if isinstance(reason, str) else None,
                source="api",
                **{_KINDS[subject_type]: ids},
            )
        except InvalidRequest as exc:
            raise ApiError(400, str(exc)) from None
        state = RequestState(request)
        mirror.write_request(self.store, request)
        self._append(state, RECEIVED, status="pending", at=request.received_at)
        self._publish(state)
        if request.suppresses or request.type == "unsuppress":
            self._append(state, STORE, store="suppression", status="done", detail={"published": mirror.SUBJECTS_KEY})
        if not request.deletes:
            self._append(state, FINISHED)
        log.info("regulation %s (%s, %d subject(s)) recorded", request.request_id, request.type, len(request.subjects))
        return {"data": {"regulateId": request.request_id}}

    def _append(self, state: RequestState, kind: str, **fields: Any) -> None:
        event = RequestEvent(
            state.request_id, state.next_seq, fields.pop("at", None) or datetime.now(UTC), kind, **fields
        )
        mirror.write_event(self.store, event)
        state.events.append(event)

    def _publish(self, state: RequestState) -> None:
        """Add the request to the published set; an unsuppress recomputes it from the whole ledger copy."""
        if state.request.type == "unsuppress":
            subjects = subject_filter(
                states(*mirror.read_records(self.store, mirror.ledger_keys(self.store))), state.request.key_id
            )
        else:
            current = mirror.read_subjects(self.store)
            added = subject_filter([state], state.request.key_id)
            subjects = current.union(added) if current is not None else added
        mirror.publish_subjects(self.store, subjects, datetime.now(UTC))

    def describe(self, request_id: str) -> dict[str, Any]:
        found = states(*mirror.read_records(self.store, mirror.ledger_keys(self.store, request_id)))
        if not found:
            raise ApiError(404, "no such regulation")
        state = found[0]
        finished = state.finished_at
        return {
            "data": {
                "regulation": {
                    "id": state.request_id,
                    "regulationType": state.request.type.upper(),
                    "overallStatus": _STATUS[state.status],
                    "createdAt": state.request.received_at.isoformat(),
                    "dueAt": state.request.due_at.isoformat(),
                    "finishedAt": finished.isoformat() if finished else None,
                    "subjects": len(state.request.subjects),
                    "streamStatus": [
                        {"name": name, "status": str(detail.get("status") or "").upper()}
                        for name, detail in state.store_status().items()
                    ],
                }
            }
        }
