"""moto_server, with DynamoDB requests handled one at a time, and transactions at DynamoDB's cost.

DynamoDB applies each write to an item atomically: a conditional write's check and its update are
one step, so two concurrent claims of one opt-in cannot both succeed. moto's server is threaded and
its DynamoDB backend takes no lock, so two concurrent conditional writes can both pass their
condition. The tests exist to prove that the conditions enforce the invariants under concurrency;
this launcher gives moto DynamoDB's guarantee by serializing its DynamoDB requests (other services
keep moto's threading: SQS long polls must not block the server).

Transactions: to roll a failed `TransactWriteItems` back, moto deep-copies every table the
transaction names, once per item, before it starts — O(table size) per transaction. The product
records every opt-in and every PSID link in a transaction (with the erasure-marker check), so under
the soak's load (thousands of items) moto spent its time copying and fell far behind. DynamoDB's
cost does not grow with the table; here the rollback snapshot shares the table's items and copies
only the items the transaction names (the only ones it can change: a Put replaces, a Delete
removes, an Update changes its own item in place). Requests are serialized, so nothing else changes
the table between the snapshot and a rollback.

Metering: with MOTO_METER_FILE set, every request appends one JSON line there (service, action,
DynamoDB capacity by DynamoDB's rules: `moto_meter.py`); unset, nothing is patched.

Usage: the same arguments as moto_server (the local runner and the tests start it this way).
"""

import copy
import sys
import threading
from collections import defaultdict

import moto.dynamodb.models as dynamodb_models
import moto_meter
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_dynamodb = threading.RLock()
_call_action = DynamoHandler.call_action


def _serialized_call_action(self):
    with _dynamodb:
        return _call_action(self)


DynamoHandler.call_action = _serialized_call_action

_real_deepcopy = copy.deepcopy
# The items of the transaction being handled (requests are serialized: one at a time).
_transaction = {"items": None}


def _named_keys(table):
    """(hash, range) of every item of `table` the current transaction names."""
    keys = set()
    for entry in _transaction["items"] or []:
        _, op = next(iter(entry.items()))
        if op.get("TableName") != table.name:
            continue
        key = op.get("Key") or op.get("Item") or {}
        hash_value = key.get(table.hash_key_attr)
        if hash_value is None:
            continue
        range_value = key.get(table.range_key_attr) if table.range_key_attr else None
        keys.add(
            (
                DynamoType(hash_value),
                DynamoType(range_value) if range_value is not None else None,
            )
        )
    return keys


def _rollback_snapshot(table):
    snapshot = copy.copy(table)
    items = defaultdict(dict)
    if table.has_range_key:
        for hash_value, by_range in table.items.items():
            items[hash_value] = dict(by_range)
        for hash_value, range_value in _named_keys(table):
            item = table.items.get(hash_value, {}).get(range_value)
            if item is not None:
                items[hash_value][range_value] = _real_deepcopy(item)
    else:
        items.update(table.items)
        for hash_value, _ in _named_keys(table):
            if hash_value in table.items:
                items[hash_value] = _real_deepcopy(table.items[hash_value])
    snapshot.items = items
    return snapshot


class _CopyForTransactions:
    """`copy` as moto's DynamoDB backend sees it: tables copied for a rollback get a snapshot."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(obj, *args, **kwargs):
        if isinstance(obj, Table) and _transaction["items"] is not None:
            return _rollback_snapshot(obj)
        return _real_deepcopy(obj, *args, **kwargs)


dynamodb_models.copy = _CopyForTransactions()
_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_write_items_with_snapshots(self, transact_items):
    _transaction["items"] = transact_items
    try:
        return _transact_write_items(self, transact_items)
    finally:
        _transaction["items"] = None


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_with_snapshots

if __name__ == "__main__":
    moto_meter.install(_dynamodb)
    sys.exit(main())
