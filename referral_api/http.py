"""The shared HTTP layer: the Api object, marshmallow-to-Swagger models, input loading, pages, ETags."""

from __future__ import annotations

import functools
import hashlib
import json
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import marshmallow as ma
from apispec import APISpec
from apispec.ext.marshmallow import OpenAPIConverter
from flask import Request, Response, current_app, request
from flask_restx import Api, Namespace
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property

from . import errors
from .validators import FreeText, authorization_header_message, control_character_message

API_PREFIX = "/api/v1"
CONSOLE_PREFIX = "/console/"
MAX_JSON_DEPTH = 32  # no input is nested half as deep; a deeper body is refused before anything reads it


class ProblemApi(Api):
    """flask-restx's Api, but every error leaves as problem+json through errors.render().

    Parts served by plain Flask views (the OAuth endpoints) add their description to the document
    with `extend_schema()`: the document stays the one description of everything the service answers.
    """

    def handle_error(self, e: Exception) -> Response:
        return errors.render(e)

    def extend_schema(self, extend: Callable[[dict[str, Any]], None]) -> None:
        """Have `extend(schema)` add to the generated Swagger document (paths, definitions, ...)."""
        self.__dict__.setdefault("_schema_extensions", []).append(extend)

    @cached_property
    def __schema__(self) -> dict[str, Any]:
        schema = Api.__schema__.fget(self)
        for extend in self.__dict__.get("_schema_extensions", []):
            extend(schema)
        return schema


def make_api(*, swagger_ui: bool) -> ProblemApi:
    api = ProblemApi(
        version="1.0",
        title="MGEC repatriation and referral API",
        description=(
            "The shared, secure record of a trafficked person's journey home: referrals from partners, "
            "review by the Mongolian Gender Equality Center, cases from verification to reintegration. "
            "Errors are RFC 9457 problem details. OAuth 2.0 bearer tokens in the Authorization header."
        ),
        doc="/docs" if swagger_ui else False,
        default_mediatype="application/json",
        ordered=True,
    )
    # Documented as a media type every operation may answer with (its errors); rendered by errors.render.
    api.representations[errors.PROBLEM_JSON] = api.representations["application/json"]
    return api


def _name_resolver(_schema: Any) -> None:
    # None tells apispec to inline nested schemas instead of emitting $refs restx cannot follow.
    return None


_converter = OpenAPIConverter(
    openapi_version="2.0",
    schema_name_resolver=_name_resolver,
    spec=APISpec(title="referral-api", version="1", openapi_version="2.0"),
)


COMMON_ERRORS = {
    400: "Malformed JSON",
    401: "No or bad token (invalid_token)",
    403: "The token lacks the route's scope (insufficient_scope), or the move is not yours",
    404: "No such record, or not yours to see",
    409: "Not allowed in the record's current state",
    412: "If-Match does not match the current version",
    413: "Body larger than MAX_CONTENT_LENGTH",
    415: "Not application/json",
    422: "Invalid fields, named in `errors`",
}
_BODY_ERRORS = (400, 413, 415)


def error_docs(ns: Namespace, descriptions: Mapping[int, str] | None = None) -> Callable[..., Callable]:
    """A `documents(*codes)` decorator for the routes of `ns`: each code with its description (the
    namespace's own, else the common one); a POST, PUT or PATCH also documents 400, 413 and 415,
    which any request body can earn."""
    texts = {**COMMON_ERRORS, **(descriptions or {})}

    def documents(*codes: int) -> Callable:
        def decorator(fn: Callable) -> Callable:
            extra = _BODY_ERRORS if fn.__name__ in {"post", "put", "patch"} else ()
            for code in sorted(set(codes) | set(extra)):
                fn = ns.response(code, texts[code])(fn)
            return fn

        return decorator

    return documents


def json_schema(schema: ma.Schema | type[ma.Schema]) -> dict[str, Any]:
    """The JSON Schema (Swagger 2.0 dialect) of a marshmallow schema, nested schemas inlined."""
    instance = schema() if isinstance(schema, type) else schema
    out = _converter.schema2jsonschema(instance)
    if instance.unknown == ma.RAISE:
        out["additionalProperties"] = False
    return out


def _parameter(param: Mapping[str, Any], drop: frozenset[str]) -> dict[str, Any]:
    """A Swagger 2.0 parameter: no null, no `example` (a schema's keyword, not a parameter's; Swagger
    UI would also fill it in as a filter the caller never chose)."""
    return {k: v for k, v in param.items() if k not in drop | {"example"} and v is not None}


def form_parameters(schema: ma.Schema | type[ma.Schema]) -> list[dict[str, Any]]:
    """Swagger `formData` parameters of a marshmallow schema (a form body, as OAuth 2.0 endpoints take)."""
    instance = schema() if isinstance(schema, type) else schema
    params = _converter.schema2parameters(instance, location="form")
    return [_parameter(p, frozenset({"x-nullable"})) for p in params]


def doc_query(schema: ma.Schema | type[ma.Schema]) -> dict[str, dict[str, Any]]:
    """Swagger query parameters of a marshmallow schema, for `ns.doc(params=...)`: typed, so that
    clients and the fuzzer know what each parameter takes."""
    instance = schema() if isinstance(schema, type) else schema
    params: dict[str, dict[str, Any]] = {}
    for param in _converter.schema2parameters(instance, location="query"):
        spec = _parameter(param, frozenset({"name", "x-nullable"}))
        spec.setdefault("type", "string")
        params[param["name"]] = spec
    return params


def doc_model(ns: Namespace, schema: ma.Schema | type[ma.Schema], name: str | None = None) -> Any:
    """Register a marshmallow schema with a namespace as a Swagger model, written once in marshmallow."""
    instance = schema() if isinstance(schema, type) else schema
    model_name = name or type(instance).__name__.removesuffix("Schema")
    return ns.schema_model(model_name, json_schema(instance))


def arguments(ns: Namespace, schema: type[ma.Schema],
              name: str | None = None) -> Callable[[Callable], Callable]:
    """Declare a route's JSON body once: documented as the model `name`, loaded with `schema` (422
    naming the field) and passed to the view as `data`. Place it under the scope decorator, so that
    the scope is checked before the body is read."""
    model = doc_model(ns, schema, name)

    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, data=load(schema()), **kwargs)

        return ns.expect(model)(wrapper)

    return decorator


def response(ns: Namespace, status: int, description: str, schema: type[ma.Schema],
             name: str | None = None) -> Callable[[Callable], Callable]:
    """Declare a route's answer once: documented as the model `name`; what the view returns is dumped
    with `schema`, unless it is a finished Response (an answer with an ETag, a replay)."""
    model = doc_model(ns, schema, name)
    dumper = schema()

    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            answer = fn(*args, **kwargs)
            return answer if isinstance(answer, Response) else dumper.dump(answer)

        return ns.response(status, description, model)(wrapper)

    return decorator


UPLOAD_LIMIT = "__upload_limit__"


def accepts_upload(limit: Callable[[], int]) -> Callable[[Callable], Callable]:
    """Mark a route method as taking multipart/form-data up to `limit()` bytes instead of JSON."""

    def decorator(fn: Callable) -> Callable:
        setattr(fn, UPLOAD_LIMIT, limit)
        return fn

    return decorator


_UPLOAD_LIMITS = "referral_api.upload_limits"  # app.extensions: (endpoint, method) -> its limit or None


def _upload_limit(req: Request) -> int | None:
    if req.endpoint is None:  # no route (a 404 or 405 to come): nothing to cache, whatever the method
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    known = app.extensions.setdefault(_UPLOAD_LIMITS, {})
    route = (req.endpoint, req.method)  # a route admits only its own methods: bounded
    limit = known.get(route, False)
    if limit is False:  # found once per route and method (no view is added after the first request)
        view = app.view_functions.get(req.endpoint)
        method = getattr(getattr(view, "view_class", None), req.method.lower(), None)
        # a flask-restx Resource method, or a plain function view (the console's uploads)
        limit = known[route] = getattr(method, UPLOAD_LIMIT, None) or getattr(view, UPLOAD_LIMIT, None)
    return limit() if limit is not None else None


def check_request_body() -> None:
    """Refuse an oversized body (413) or one that is not JSON (415) before any view or router reads it.

    A route marked with `accepts_upload` takes multipart/form-data within its own limit instead."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # one lookup through the proxy
    upload = _upload_limit(req)
    limit = upload if upload is not None else current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and (req.content_length or 0) > limit:
        raise RequestEntityTooLarge(f"The body is larger than {limit} bytes.")
    if upload is not None:
        req.max_content_length = upload  # the view checks the media type, after the token
        return
    if req.method in {"POST", "PUT", "PATCH"} and req.path.startswith(API_PREFIX):
        has_body = (req.content_length or 0) > 0 or req.headers.get("Transfer-Encoding")
        if has_body and not req.is_json:
            raise errors.UnsupportedMediaType(
                "This endpoint accepts application/json only.",
                errors={"Content-Type": [f"unsupported media type {req.mimetype or 'none'!r}"]},
            )


def json_body() -> Any:
    """The request body parsed as JSON; an empty body is an empty object."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    if not request.is_json:
        raise errors.UnsupportedMediaType("This endpoint accepts application/json only.")
    try:
        return json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.MalformedRequest(
            "The body is not valid JSON.", errors={"body": [f"invalid JSON: {type(exc).__name__}"]}
        ) from None


def _too_deep() -> errors.MalformedRequest:
    return errors.MalformedRequest(
        "The body is nested too deep.", errors={"body": [f"more than {MAX_JSON_DEPTH} levels of nesting"]}
    )


def load(schema: ma.Schema, data: Any | None = None, **kwargs: Any) -> Any:
    """Validate input with `schema`; marshmallow's messages become a 422 naming each field, and so
    does a control character in any string of the input (keys included)."""
    if data is None:
        data = json_body()
    refused: dict[str, list[str]] = {}
    _refuse_control_characters(data, schema, path="", depth=0, out=refused)
    if refused:
        raise errors.InvalidPayload(errors=refused)
    try:
        return schema.load(data, **kwargs)
    except ma.ValidationError as exc:
        raise errors.InvalidPayload(errors=_flatten(exc.messages)) from None


# A schema's fields by the keys the input spells, per schema object (its fields are set when it is
# made): a nested schema is the same object at every request, and was walked anew for every object.
_INPUT_FIELDS: weakref.WeakKeyDictionary[ma.Schema, dict[str, Any]] = weakref.WeakKeyDictionary()


def _child_fields(spec: Any) -> tuple[dict[str, Any], Any]:
    """The fields of an object's keys as the input spells them, and the field of any other key."""
    if isinstance(spec, ma.fields.Nested):
        spec = spec.schema
    if isinstance(spec, ma.Schema):
        known = _INPUT_FIELDS.get(spec)
        if known is None:
            known = _INPUT_FIELDS[spec] = {(f.data_key or name): f for name, f in spec.fields.items()}
        return known, None
    if isinstance(spec, ma.fields.Dict):
        return {}, spec.value_field
    return {}, None


def _refuse_control_characters(value: Any, spec: Any, *, path: str, depth: int, out: dict) -> None:
    """Collect, by field path, the strings of an input holding a control character; a string is free
    text (tab and line breaks allowed) only where the schema declares a FreeText field."""
    if depth > MAX_JSON_DEPTH:
        raise _too_deep()
    if isinstance(value, str):
        message = control_character_message(value, free_text=isinstance(spec, FreeText))
        if message:
            out.setdefault(path or "body", []).append(message)
    elif isinstance(value, Mapping):
        known, other = _child_fields(spec)
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            message = control_character_message(str(key))
            if message:
                out.setdefault(name, []).append(message)
            _refuse_control_characters(item, known.get(key, other), path=name, depth=depth + 1, out=out)
    elif isinstance(value, list):
        inner = spec.inner if isinstance(spec, ma.fields.List) else spec  # a list, or Nested(many=True)
        for index, item in enumerate(value):
            name = f"{path}.{index}" if path else str(index)
            _refuse_control_characters(item, inner, path=name, depth=depth + 1, out=out)


def check_request_text() -> None:
    """Refuse an Authorization header that is not ASCII (400 `invalid_request`), and a control character
    in a path id (404: no record has such an id), a query value or a form field (422; on the OAuth
    endpoints 400 `invalid_request`, as RFC 6749 says), on every route, before any view reads it and
    any query sends it to the database, each named."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # one lookup through the proxy
    refused_credentials = authorization_header_message(req.headers.get("Authorization", ""))
    if refused_credentials:
        raise errors.MalformedRequest(errors={"Authorization": [refused_credentials]},
                                      extra={"error": "invalid_request"})
    in_path = _refused_text((req.view_args or {}).items())
    if in_path:
        raise errors.NotFound("No record has such an id.", errors=in_path)
    refused = _refused_text(req.args.items(multi=True))
    # an upload route parses its own multipart body (its fields go through its schema's load())
    form = req.mimetype in {"application/x-www-form-urlencoded", "multipart/form-data"}
    if form and _upload_limit(req) is None:
        # A console page's form may hold several lines (a narrative, a note): tab and line breaks pass
        # here, and its schema's load() refuses them, named, in a one-line field. Nowhere else.
        several_lines = req.path.startswith(CONSOLE_PREFIX)
        for name, messages in _refused_text(req.form.items(multi=True), free_text=several_lines).items():
            refused.setdefault(name, []).extend(messages)
    if refused and req.path.startswith(API_PREFIX):
        raise errors.InvalidPayload(errors=refused)
    if refused:  # the OAuth endpoints: an RFC 6749 invalid_request (400)
        raise errors.MalformedRequest(errors=refused, extra={"error": "invalid_request"})


def _refused_text(items: Any, *, free_text: bool = False) -> dict[str, list[str]]:
    refused: dict[str, list[str]] = {}
    for name, value in items:
        checks = [(str(name), False), *([(value, free_text)] if isinstance(value, str) else [])]
        for text, lines in checks:
            message = control_character_message(text, free_text=lines)
            if message:
                refused.setdefault(str(name), []).append(message)
    return refused


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "body"
            out.update(_flatten(value, name))
    elif isinstance(messages, list | tuple):
        if all(isinstance(m, str) for m in messages):
            out.setdefault(prefix or "body", []).extend(messages)
        else:
            for item in messages:
                out.update(_flatten(item, prefix))
    else:
        out.setdefault(prefix or "body", []).append(str(messages))
    return out


def query_args(schema: ma.Schema) -> Any:
    """Validate the query string with `schema` (422 naming the parameter)."""
    return load(schema, request.args.to_dict())


def etag_of(payload: Any) -> str:
    """A strong ETag over the canonical JSON of what the caller is shown."""
    canonical = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":")).encode()
    return '"' + hashlib.sha256(canonical).hexdigest()[:32] + '"'


def with_etag(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None, *, etag: str | None = None
) -> Response:
    """A JSON answer for one resource, with its ETag (given, or over the payload)."""
    response = Response(json.dumps(payload, default=str), status=status, mimetype="application/json")
    response.headers["ETag"] = etag or etag_of(payload)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
