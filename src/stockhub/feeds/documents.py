"""A pulled XML or JSON document to a stock file: the CSV an upload would have carried.

    validate_mapping("xml", XmlMapping(items="//item", fields={"barcode": "g:gtin", ...}, namespaces={"g": ...}))
    stock_csv_from_document(body, "xml", mapping) → b"barcode,quantity,...\\n..."

- A mapping names the items (`items`: an XPath 1.0 expression for XML, JMESPath for JSON) and,
  for each stock column, an expression evaluated on each item (`fields`). Columns are the stock
  file's (feeds/headers.py: `barcode`, `gtin`, `sku`, `quantity`, `price`, `currency`,
  `promotion_amount`, `safety_stock`, or any of their aliases, written under the canonical name);
  an identifier, `price` and `quantity` are required, as the stock reader requires them.
- The CSV has a header and one row per item, in document order, so the stock reader
  (feeds/stock_file.py) reads it unchanged: an item whose expression finds nothing has an empty
  cell, and the reader rejects that row with its usual reason. CSV and XLSX documents are stock
  files already and pass through untouched.
- A field expression's value: the first node's text (an element's text content, trimmed) or
  the string, number (`5.0` → `5`) or boolean it computes; JSON: strings as they are, numbers,
  `true`/`false`, a one-element list as its element, anything else as compact JSON text.
- Untrusted documents are parsed in the sandbox (`feeds/sandbox.py`: a child process with
  bounded memory and time). XML is parsed by lxml with entity resolution, DTD loading and
  network access off and libxml2's size limits on; a document that declares entities (billion
  laughs, XXE) is refused whole, as is a malformed one, with `DocumentRefused` naming why:
  nothing of it is applied.
- `validate_mapping` checks a mapping before it is stored (the feeds API calls it on create and
  update): `Invalid`, one error per bad field or expression, naming it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import asdict, dataclass, field

import jmespath
import jmespath.exceptions
from lxml import etree

from stockhub.errors import FieldError, Invalid, Malformed
from stockhub.feeds.decode import Limits
from stockhub.feeds.headers import ALIASES, IDENTIFIER_FIELDS, normalise
from stockhub.feeds.sandbox import ReaderFailed, Sandbox, run_isolated

FORMATS = ("csv", "xlsx", "xml", "json")
MAPPED_FORMATS = ("xml", "json")
MAX_EXPRESSION_CHARS = 1000

_FIELD_BY_NAME = {name: canonical for canonical, names in ALIASES.items() for name in names}
_NCNAME = re.compile(r"[A-Za-z_][\w.\-]*")
_REFUSED, _CSV = b"R", b"C"  # the child's answer: a refusal's reason, or the CSV


class DocumentRefused(Malformed):
    """The document cannot be turned into a stock file (malformed, entities, a failing expression):
    refused whole, nothing of it applied; `detail` (also `reason`) says why."""

    title = "Document refused"

    @property
    def reason(self) -> str:
        return self.detail


@dataclass(frozen=True)
class XmlMapping:
    items: str  # XPath 1.0 selecting each item element, e.g. "/rss/channel/item"
    fields: dict[str, str]  # stock column → XPath relative to the item, e.g. {"barcode": "g:gtin"}
    namespaces: dict[str, str] = field(default_factory=dict)  # prefix → namespace URI, e.g. {"g": "http://base.google.com/ns/1.0"}


@dataclass(frozen=True)
class JsonMapping:
    items: str  # JMESPath selecting the list of items, e.g. "data.products[].variants[]"
    fields: dict[str, str]  # stock column → JMESPath relative to the item, e.g. {"quantity": "inventory_quantity"}


Mapping = XmlMapping | JsonMapping


def stock_csv_from_document(body: bytes, format: str, mapping: Mapping | None = None, *, sandbox: Sandbox = Sandbox()) -> bytes:
    """The stock CSV for a fetched document (csv and xlsx: the body itself).

    Raises Invalid for a bad format or mapping, DocumentRefused when the document cannot be read
    (malformed, entities, an expression failing on it, the reader out of memory or time)."""
    if format in ("csv", "xlsx"):
        return body
    validate_mapping(format, mapping)
    request = {"kind": "document", "format": format, "mapping": _as_dict(mapping), "limits": asdict(sandbox.limits)}
    try:
        answer = run_isolated(request, body, sandbox, subject="document")
    except ReaderFailed as failure:
        raise DocumentRefused(str(failure)) from None
    if answer[:1] == _REFUSED:
        raise DocumentRefused(answer[1:].decode())
    return answer[1:]


def validate_mapping(format: str, mapping: Mapping | None) -> None:
    """Invalid (one FieldError per problem, naming the field or expression) unless `mapping` can map a `format` document."""
    if format not in FORMATS:
        raise Invalid(f"unknown format {format!r}", [FieldError("format", f"one of {', '.join(FORMATS)}")])
    if format not in MAPPED_FORMATS:
        if mapping is not None:
            raise Invalid("a CSV or XLSX document is read by its header: no mapping", [FieldError("mapping", "only for xml and json")])
        return
    expected = XmlMapping if format == "xml" else JsonMapping
    if not isinstance(mapping, expected):
        article = "an XML" if format == "xml" else "a JSON"
        raise Invalid(f"{article} document needs a mapping", [FieldError("mapping", f"{article} mapping: items and fields")])
    errors = _column_errors(mapping.fields)
    if format == "xml":
        errors += _namespace_errors(mapping.namespaces)
        if not errors:
            errors += _xpath_errors(mapping)
    else:
        errors += _jmespath_errors(mapping)
    if errors:
        raise Invalid("the mapping cannot be used: " + "; ".join(f"{e.field}: {e.message}" for e in errors), errors)


# --- checking a mapping --------------------------------------------------------------------


def _column_errors(fields: dict[str, str]) -> list[FieldError]:
    errors, seen = [], {}
    if not isinstance(fields, dict) or not fields:
        return [FieldError("mapping.fields", "map at least an identifier, price and quantity")]
    for name in fields:
        column = _FIELD_BY_NAME.get(normalise(name)) if isinstance(name, str) else None
        if column is None:
            known = ", ".join(ALIASES)
            errors.append(FieldError(f"mapping.fields.{name}", f"not a stock column (one of {known}, or their aliases)"))
        elif column in seen:
            errors.append(FieldError(f"mapping.fields.{name}", f"maps the same column as {seen[column]!r} ({column})"))
        else:
            seen[column] = name
    if not errors:
        if not set(seen) & set(IDENTIFIER_FIELDS):
            errors.append(FieldError("mapping.fields", "map barcode, gtin or sku: what names each item's product"))
        errors += [FieldError("mapping.fields", f"map {c}: the stock file needs it") for c in ("price", "quantity") if c not in seen]
    return errors


def _namespace_errors(namespaces: dict[str, str]) -> list[FieldError]:
    if not isinstance(namespaces, dict):
        return [FieldError("mapping.namespaces", "an object of prefix → namespace URI")]
    return [
        FieldError(f"mapping.namespaces.{prefix}", "a prefix is a name (letters, digits, _ . -) bound to a non-empty namespace URI")
        for prefix, uri in namespaces.items()
        if not (isinstance(prefix, str) and _NCNAME.fullmatch(prefix) and isinstance(uri, str) and uri.strip())
    ]


def _expressions(mapping: Mapping) -> list[tuple[str, str]]:
    return [("mapping.items", mapping.items)] + [(f"mapping.fields.{name}", expr) for name, expr in mapping.fields.items()]


def _shape_error(where: str, expression) -> FieldError | None:
    if not isinstance(expression, str) or not expression.strip():
        return FieldError(where, "an expression is required")
    if len(expression) > MAX_EXPRESSION_CHARS:
        return FieldError(where, f"at most {MAX_EXPRESSION_CHARS} characters")
    return None


_PROBE = etree.fromstring(b"<probe/>")


def _xpath_errors(mapping: XmlMapping) -> list[FieldError]:
    errors = []
    for where, expression in _expressions(mapping):
        if (error := _shape_error(where, expression)) is not None:
            errors.append(error)
            continue
        try:
            compiled = etree.XPath(expression, namespaces=mapping.namespaces or None, smart_strings=False)
            probed = compiled(_PROBE)  # undefined prefixes and unknown functions show only when evaluated
        except etree.XPathError as error:
            errors.append(FieldError(where, f"{expression!r} is not a usable XPath expression ({_xpath_message(error)})"))
            continue
        if where == "mapping.items" and not isinstance(probed, list):
            errors.append(FieldError(where, f"{expression!r} computes a value; it must select the item elements"))
    return errors


def _xpath_message(error: Exception) -> str:
    message = str(error) or type(error).__name__
    if "Undefined namespace prefix" in message:
        return "undefined namespace prefix: declare it in mapping.namespaces"
    return message.lower()


_JMESPATH_STATIC = (jmespath.exceptions.UnknownFunctionError, jmespath.exceptions.ArityError, jmespath.exceptions.VariadictArityError)


def _jmespath_errors(mapping: JsonMapping) -> list[FieldError]:
    errors = []
    for where, expression in _expressions(mapping):
        if (error := _shape_error(where, expression)) is not None:
            errors.append(error)
            continue
        try:
            compiled = jmespath.compile(expression)
        except jmespath.exceptions.JMESPathError as error:
            errors.append(FieldError(where, f"{expression!r} is not a valid JMESPath expression ({_jmespath_message(error)})"))
            continue
        try:
            compiled.search({})  # unknown functions and wrong argument counts show only when evaluated
        except _JMESPATH_STATIC as error:
            errors.append(FieldError(where, f"{expression!r} is not a usable JMESPath expression ({_jmespath_message(error)})"))
        except jmespath.exceptions.JMESPathError:
            pass  # a type error on an empty object says nothing about real items
    return errors


def _jmespath_message(error: Exception) -> str:
    message = getattr(error, "msg", None) or str(error)
    return " ".join(str(message).split())


def _as_dict(mapping: Mapping) -> dict:
    shape = {"items": mapping.items, "fields": dict(mapping.fields)}
    if isinstance(mapping, XmlMapping):
        shape["namespaces"] = dict(mapping.namespaces)
    return shape


# --- in the sandbox ------------------------------------------------------------------------


def answer_in_child(body: bytes, request: dict) -> bytes:
    """What the sandboxed child answers (`sandbox.main`): b"C" + the CSV, or b"R" + the refusal's reason."""
    mapping = request["mapping"]
    limits = Limits(**request["limits"])
    mapping = XmlMapping(**mapping) if request["format"] == "xml" else JsonMapping(**mapping)
    try:
        return _CSV + document_to_csv(body, request["format"], mapping, limits)
    except DocumentRefused as refused:
        return _REFUSED + refused.detail.encode()


def document_to_csv(body: bytes, format: str, mapping: Mapping, limits: Limits = Limits()) -> bytes:
    """The conversion itself, in this process: for the sandboxed child (and tests). Raises DocumentRefused."""
    if not body.strip():
        raise DocumentRefused(f"the {format.upper()} document is empty")
    rows = _xml_rows(body, mapping) if format == "xml" else _json_rows(body, mapping)
    columns = [_FIELD_BY_NAME[normalise(name)] for name in mapping.fields]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        count += 1
        if count > limits.max_rows:
            raise DocumentRefused(f"the document has more than {limits.max_rows:,} items")
        # a cell longer than the reader takes is kept one character too long: the reader refuses it, saying so
        writer.writerow([cell[: limits.max_cell_chars + 1] for cell in row])
    if count == 0:
        raise DocumentRefused(f"the items expression {mapping.items!r} found no items in the document")
    return out.getvalue().encode()


class _NothingExternal(etree.Resolver):
    """Every external resource the parser asks for (a DOCTYPE's DTD, a parameter entity) is empty:
    libxml2 would otherwise read local files (file:///dev/zero, a FIFO) even with network access off."""

    def resolve(self, url, public_id, context):
        return self.resolve_string("", context)


def _xml_parser() -> etree.XMLParser:
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, dtd_validation=False, collect_ids=False
    )
    parser.resolvers.add(_NothingExternal())
    return parser


def _xml_rows(body: bytes, mapping: XmlMapping):
    try:
        root = etree.fromstring(body, _xml_parser())
    except etree.XMLSyntaxError as error:
        message = str(error)
        if "amplification" in message or "entity reference loop" in message.lower():
            raise DocumentRefused(
                f"the XML document was refused: its entities expand too far (a billion-laughs document; {message})"
            ) from None
        raise DocumentRefused(f"the XML document is malformed: {message}") from None
    dtd = root.getroottree().docinfo.internalDTD
    declared = [entity.name for entity in dtd.iterentities()] if dtd is not None else []
    if declared:
        shown = ", ".join(declared[:5]) + (", …" if len(declared) > 5 else "")
        raise DocumentRefused(
            f"the XML document was refused: it declares entities ({shown}); entities are never expanded"
            " or fetched (billion-laughs and XXE documents)"
        )
    namespaces = mapping.namespaces or None
    items = _evaluate_xpath(_compiled_xpath(mapping.items, namespaces, "mapping.items"), root, "mapping.items", mapping.items)
    if not isinstance(items, list) or any(not isinstance(item, etree._Element) for item in items):
        raise DocumentRefused(f"the items expression {mapping.items!r} must select elements")
    fields = [(f"mapping.fields.{name}", expr) for name, expr in mapping.fields.items()]
    fields = [(where, expr, _compiled_xpath(expr, namespaces, where)) for where, expr in fields]
    for number, item in enumerate(items, 1):
        yield [_xml_cell(_evaluate_xpath(compiled, item, where, expr, number)) for where, expr, compiled in fields]


def _compiled_xpath(expression: str, namespaces: dict | None, where: str) -> etree.XPath:
    try:
        return etree.XPath(expression, namespaces=namespaces, smart_strings=False)
    except etree.XPathError as error:
        raise DocumentRefused(f"{where}: {expression!r} is not a usable XPath expression ({_xpath_message(error)})") from None


def _evaluate_xpath(compiled, node, where: str, expression: str, item: int | None = None):
    try:
        return compiled(node)
    except etree.XPathError as error:
        on = f" on item {item}" if item is not None else ""
        raise DocumentRefused(f"{where} ({expression!r}) failed{on}: {_xpath_message(error)}") from None


def _xml_cell(value) -> str:
    if isinstance(value, list):
        if not value:
            return ""
        value = value[0]
    if isinstance(value, etree._Element):
        return "".join(value.itertext()).strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip()
    return str(value).strip()


def _number(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return ""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _json_rows(body: bytes, mapping: JsonMapping):
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        raise DocumentRefused("the JSON document is not UTF-8, UTF-16 or UTF-32 text") from None
    except json.JSONDecodeError as error:
        raise DocumentRefused(f"the JSON document is malformed: {error.msg} (line {error.lineno}, column {error.colno})") from None
    except RecursionError:
        raise DocumentRefused("the JSON document is nested too deeply") from None
    items = _search(_compiled_jmespath(mapping.items, "mapping.items"), document, "mapping.items", mapping.items)
    if items is None:
        raise DocumentRefused(f"the items expression {mapping.items!r} found no items in the document")
    if not isinstance(items, list):
        raise DocumentRefused(f"the items expression {mapping.items!r} must select a list (it selected {_json_kind(items)})")
    fields = [(f"mapping.fields.{name}", expr) for name, expr in mapping.fields.items()]
    fields = [(where, expr, _compiled_jmespath(expr, where)) for where, expr in fields]
    for number, item in enumerate(items, 1):
        yield [_json_cell(_search(compiled, item, where, expr, number)) for where, expr, compiled in fields]


def _compiled_jmespath(expression: str, where: str):
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as error:
        raise DocumentRefused(f"{where}: {expression!r} is not a valid JMESPath expression ({_jmespath_message(error)})") from None


def _search(compiled, data, where: str, expression: str, item: int | None = None):
    try:
        return compiled.search(data)
    except jmespath.exceptions.JMESPathError as error:
        on = f" on item {item}" if item is not None else ""
        raise DocumentRefused(f"{where} ({expression!r}) failed{on}: {_jmespath_message(error)}") from None
    except RecursionError:
        raise DocumentRefused("the JSON document is nested too deeply") from None


def _json_kind(value) -> str:
    return {dict: "an object", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(type(value), "a value")


def _json_cell(value) -> str:
    if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], (list, dict)):
        value = value[0]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, (int, str)):
        return str(value).strip()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
