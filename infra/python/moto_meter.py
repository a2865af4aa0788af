"""A meter in moto: one JSON line per AWS request, with DynamoDB's capacity by its published rules.

Issue 13 §5 asks to re-measure the cost model's inputs rather than count them by reading code
(docs/cost.md). `moto_server_serialized.py` calls `install()`; it does something only when the
environment variable MOTO_METER_FILE names a file: then every request moto handles appends one
line to it. With the variable unset nothing is patched and moto runs as before.

A line: {"service", "action", "caller" (the request's access key id, so a bench can leave its own
reads out), "status", ...}; DynamoDB lines add "table", "wru", "rru" and "index_wru" ({index: WRU});
SQS lines add "queue" (its name), "requests" (billed 64 KB chunks) and, for ReceiveMessage,
"messages".

The capacity rules, from the DynamoDB Developer Guide:
- item size ("DynamoDB item sizes and formats", CapacityUnitCalculations.html): the sum over
  attributes of the UTF-8 name length plus the value's size: strings their UTF-8 bytes, numbers
  1 byte per two significant digits plus 1, binary the raw bytes, null and Boolean 1 byte, List and
  Map 3 bytes plus their elements plus 1 byte per element (a Map element counts its name too);
- writes ("DynamoDB read and write operations", read-write-operations.html): 1 WRU per 1 KB of the
  larger of the item before and after the write, at least 1; a write whose condition fails still
  consumes it (the item is unchanged: its size);
- transactions ("Amazon DynamoDB Transactions: How it works", transaction-apis.html, "Capacity
  management"): two underlying writes per item, ConditionCheck included; the index updates a
  transaction causes propagate after it completes and are counted as ordinary index writes;
- reads: GetItem ceil(size / 4 KB) of the whole item (projections do not reduce it), half for an
  eventually consistent read, 1 (or 0.5) for an item that does not exist; BatchGetItem per item;
  Query and Scan once per request over the sum of the sizes of the items read (before a filter),
  rounded up to 4 KB, at least one unit; TransactGetItems twice per item;
- global secondary indexes ("Global secondary indexes", GSI.html, "Provisioned throughput
  considerations" → writes): no write when the item is in the index neither before nor after; one
  put when it enters, one delete when it leaves, two (delete and put) when an index key value
  changes, one when only projected attributes change; each at ceil(projected entry size / 1 KB).

Requests are metered inside the serializing lock of `moto_server_serialized.py` (passed to
`install`), so the items read before and after a write are that write's.
"""

import base64
import json
import math
import os
import threading
import time
from decimal import Decimal, InvalidOperation

METER_FILE_ENV = "MOTO_METER_FILE"
KB = 1024
READ_UNIT_BYTES = 4 * KB
SQS_CHUNK_BYTES = 64 * KB


# ---- item sizes ("DynamoDB item sizes and formats") ----


def _utf8_len(text):
    return len(text.encode("utf-8"))


def number_size(text):
    """Bytes of a number: 1 per two significant digits (leading and trailing zeros trimmed) + 1."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return 1 + math.ceil(len(text) / 2)
    digits = value.as_tuple().digits
    significant = "".join(str(d) for d in digits).strip("0")
    return math.ceil(len(significant) / 2) + 1


def _binary_len(value):
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    try:
        return len(base64.b64decode(value, validate=False))
    except (ValueError, TypeError):
        return len(value)


def value_size(value):
    """Bytes of one attribute value in the wire format ({"S": "x"}, {"M": {...}}, ...)."""
    (kind, raw), = value.items()
    if kind == "S":
        return _utf8_len(raw)
    if kind == "N":
        return number_size(raw)
    if kind == "B":
        return _binary_len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(_utf8_len(s) for s in raw)
    if kind == "NS":
        return sum(number_size(n) for n in raw)
    if kind == "BS":
        return sum(_binary_len(b) for b in raw)
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in raw)
    if kind == "M":
        return 3 + sum(1 + _utf8_len(name) + value_size(v) for name, v in raw.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item):
    """Bytes of an item (attribute name → wire value); 0 for no item."""
    if not item:
        return 0
    return sum(_utf8_len(name) + value_size(value) for name, value in item.items())


# ---- capacity units ----


def write_units(size_before, size_after):
    """WRU of one (non-transactional) write: 1 per KB of the larger item, at least 1."""
    return max(1, math.ceil(max(size_before, size_after) / KB))


def read_units(size, consistent):
    """RRU of one read of `size` bytes (an item, or a Query/Scan page's sum)."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return units if consistent else units / 2


def projected(item, table_keys, index_keys, projection):
    """The index entry of `item`: None when an index key attribute is missing (sparse index)."""
    if not item or any(k not in item for k in index_keys):
        return None
    kind = (projection or {}).get("ProjectionType", "ALL")
    if kind == "ALL":
        return dict(item)
    names = set(table_keys) | set(index_keys)
    if kind == "INCLUDE":
        names |= set((projection or {}).get("NonKeyAttributes", []))
    return {k: v for k, v in item.items() if k in names}


def index_write_units(before, after, table_keys, index_keys, projection):
    """WRU an index spends for one table write that turns `before` into `after` (items or None)."""
    old = projected(before, table_keys, index_keys, projection)
    new = projected(after, table_keys, index_keys, projection)
    if old is None and new is None:
        return 0
    if old is None:
        return write_units(0, item_size(new))
    if new is None:
        return write_units(item_size(old), 0)
    if any(old[k] != new[k] for k in index_keys):
        return write_units(item_size(old), 0) + write_units(0, item_size(new))
    if old != new:
        return write_units(item_size(old), item_size(new))
    return 0


def sqs_chunks(payload_bytes):
    """Billed SQS requests for one request carrying `payload_bytes`: one per 64 KB chunk."""
    return max(1, math.ceil(payload_bytes / SQS_CHUNK_BYTES))


# ---- the meter (only when MOTO_METER_FILE is set) ----


class _Meter:
    def __init__(self, path):
        self._file = open(path, "a", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, line):
        line["t"] = round(time.time(), 3)
        text = json.dumps(line, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(text)


def _caller(handler):
    auth = handler.headers.get("Authorization") or handler.headers.get("authorization") or ""
    marker = "Credential="
    start = auth.find(marker)
    if start < 0:
        return ""
    return auth[start + len(marker):].split("/", 1)[0]


def _key_names(table):
    return [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])


def _current(table, key):
    """The stored item (wire format) with the key `key`, or None."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = key.get(table.hash_key_attr)
    if hash_value is None:
        return None
    range_value = key.get(table.range_key_attr) if table.range_key_attr else None
    try:
        item = table.get_item(
            DynamoType(hash_value), DynamoType(range_value) if range_value else None
        )
    except Exception:  # noqa: BLE001 - a key the table rejects: the request fails on its own
        return None
    return item.to_json()["Attributes"] if item is not None else None


def _kind(table, key):
    """The item's kind: its partition key up to the first '#' (OPTIN, PAGE, ERASED, ...), no more
    of it (the rest names people)."""
    value = (key or {}).get(table.hash_key_attr) or {}
    text = value.get("S") if isinstance(value, dict) else None
    return text.split("#", 1)[0] if isinstance(text, str) else "?"


def _write_targets(action, body):
    """(table, key or item, factor) of each item a write request names."""
    if action in ("PutItem", "UpdateItem", "DeleteItem"):
        return [(body.get("TableName"), body.get("Key") or body.get("Item") or {}, 1)]
    if action == "TransactWriteItems":
        targets = []
        for entry in body.get("TransactItems", []):
            (_, op), = entry.items()
            targets.append((op.get("TableName"), op.get("Key") or op.get("Item") or {}, 2))
        return targets
    if action == "BatchWriteItem":
        targets = []
        for table, requests in body.get("RequestItems", {}).items():
            for request in requests:
                (_, op), = request.items()
                targets.append((table, op.get("Key") or op.get("Item") or {}, 1))
        return targets
    return []


def _index_specs(table):
    return [
        (index.name, [k["AttributeName"] for k in index.schema], index.projection)
        for index in (table.global_indexes or [])
    ]


# The items the current Query/Scan read (requests are serialized: one at a time).
_reads = {"items": None}


def _patch_reads():
    """Query and Scan record the items they read before filters and projections."""
    import inspect

    from moto.dynamodb.models.table import Table

    def unfiltered(real, cleared):
        signature = inspect.signature(real)

        def read(self, *args, **kwargs):
            result = real(self, *args, **kwargs)
            if _reads["items"] is not None:
                bound = signature.bind(self, *args, **kwargs)
                for name in cleared:
                    if name in signature.parameters:
                        bound.arguments[name] = None
                items, _, _ = real(*bound.args, **bound.kwargs)
                _reads["items"].extend(items)
            return result

        return read

    Table.query = unfiltered(Table.query, ["filter_expression", "projection_expressions"])
    Table.scan = unfiltered(Table.scan, ["filter_expression", "projection_expression"])


def _dynamodb_line(handler, action, body, run):
    """Run the request (`run`) and return its meter line."""
    backend = handler.dynamodb_backend
    targets = []
    for table_name, key, factor in _write_targets(action, body):
        table = backend.tables.get(table_name)
        if table is None:
            continue
        key = {k: key[k] for k in _key_names(table) if k in key}
        targets.append((table, key, factor, _current(table, key)))
    reads_before = []
    if action == "GetItem":
        table = backend.tables.get(body.get("TableName"))
        if table is not None:
            key = body.get("Key", {})
            reads_before.append((table, key, _current(table, key)))
    elif action in ("BatchGetItem", "TransactGetItems"):
        pairs = []
        if action == "BatchGetItem":
            for name, spec in body.get("RequestItems", {}).items():
                pairs.extend((name, key) for key in spec.get("Keys", []))
        else:
            pairs = [
                (e["Get"].get("TableName"), e["Get"].get("Key", {}))
                for e in body.get("TransactItems", [])
                if "Get" in e
            ]
        for name, key in pairs:
            table = backend.tables.get(name)
            if table is not None:
                reads_before.append((table, key, _current(table, key)))
    if action in ("Query", "Scan"):
        _reads["items"] = []
    try:
        status, headers, response = run()
    finally:
        scanned, _reads["items"] = _reads["items"], None
    line = {"status": status, "wru": 0, "rru": 0, "index_wru": {}}
    tables = {t.name for t, *_ in targets} | {t.name for t, *_ in reads_before}
    if body.get("TableName"):
        tables.add(body["TableName"])
    line["table"] = ",".join(sorted(tables))
    kinds = {_kind(t, k) for t, k, *_ in targets} | {_kind(t, k) for t, k, _ in reads_before}
    if action == "Query":
        values = body.get("ExpressionAttributeValues") or {}
        kinds |= {v["S"].split("#", 1)[0] for v in values.values() if "S" in v and "#" in v["S"]}
    if kinds:
        line["kinds"] = "+".join(sorted(kinds))
    for table, key, factor, before in targets:
        after = _current(table, key) if status == 200 else before
        line["wru"] += factor * write_units(item_size(before), item_size(after))
        for name, index_keys, projection in _index_specs(table):
            units = index_write_units(
                before, after, _key_names(table), index_keys, projection
            )
            if units:
                line["index_wru"][name] = line["index_wru"].get(name, 0) + units
    consistent = bool(body.get("ConsistentRead"))
    if action == "GetItem":
        line["rru"] = sum(read_units(item_size(item), consistent) for *_, item in reads_before)
    elif action == "BatchGetItem":
        line["rru"] = sum(
            read_units(item_size(item), bool(_spec_consistent(body, table.name)))
            for table, _, item in reads_before
        )
    elif action == "TransactGetItems":
        line["rru"] = sum(2 * read_units(item_size(item), True) for *_, item in reads_before)
    elif action in ("Query", "Scan"):
        size = sum(item_size(i.to_json()["Attributes"]) for i in scanned or [])
        line["rru"] = read_units(size, consistent)
        line["items"] = len(scanned or [])
        if body.get("IndexName"):
            line["index"] = body["IndexName"]
    return line, (status, headers, response)


def _spec_consistent(body, table_name):
    return body.get("RequestItems", {}).get(table_name, {}).get("ConsistentRead", False)


def _sqs_details(handler, action, response_body):
    """Billed requests (64 KB chunks of the payload) and, for receives, the messages returned."""
    details = {}
    try:
        request = json.loads(handler.body or "{}") if handler.body else {}
    except (ValueError, TypeError):
        request = {}
    queue_url = request.get("QueueUrl") or ""
    if queue_url:
        details["queue"] = queue_url.rstrip("/").rsplit("/", 1)[-1]
    if action == "SendMessage":
        payload = _utf8_len(request.get("MessageBody", "") or "")
        details["requests"] = sqs_chunks(payload)
    elif action == "SendMessageBatch":
        payload = sum(
            _utf8_len(e.get("MessageBody", "") or "") for e in request.get("Entries", [])
        )
        details["requests"] = sqs_chunks(payload)
        details["messages"] = len(request.get("Entries", []))
    else:
        details["requests"] = 1
    if action == "ReceiveMessage":
        try:
            details["messages"] = len(json.loads(response_body or "{}").get("Messages", []))
        except (ValueError, TypeError, AttributeError):
            details["messages"] = 0
    return details


def install(dynamodb_lock):
    """Meter every request into MOTO_METER_FILE; nothing when the variable is unset."""
    path = os.environ.get(METER_FILE_ENV)
    if not path:
        return False
    from moto.core.responses import BaseResponse
    from moto.dynamodb.responses import DynamoHandler

    meter = _Meter(path)
    _patch_reads()
    dynamodb_call = DynamoHandler.call_action

    def metered_dynamodb(self):
        with dynamodb_lock:
            action = self._get_action()
            try:
                body = json.loads(self.body or "{}")
            except (ValueError, TypeError):
                body = {}
            line, result = _dynamodb_line(self, action, body, lambda: dynamodb_call(self))
        line.update(service="dynamodb", action=action, caller=_caller(self))
        meter.record(line)
        return result

    DynamoHandler.call_action = metered_dynamodb
    generic_call = BaseResponse.call_action

    def metered(self):
        result = generic_call(self)
        if isinstance(self, DynamoHandler):
            return result  # metered above, with its capacity
        try:
            action = self._get_action()
            service = self.service_name or type(self).__name__
            line = {"service": service, "action": action, "caller": _caller(self)}
            line["status"] = result[0]
            if service == "sqs":
                line.update(_sqs_details(self, action, result[2]))
            meter.record(line)
        except Exception as error:  # noqa: BLE001 - the meter never fails a request
            meter.record({"service": "meter", "action": "error", "error": str(error)})
        return result

    BaseResponse.call_action = metered
    return True
