"""Unit tests of moto_meter's size and capacity rules against the DynamoDB Developer Guide's own
statements and worked examples (each test names the page), and of the meter on a real moto.

Run: `make test-python` (part of `make test`), or `.venv/bin/python -m unittest discover -s
infra/python -p 'test_*.py'`.
"""

import json
import os
import tempfile
import unittest

import moto_meter as m

TABLE_KEYS = ["pk", "sk"]
DUE_KEYS = ["due_shard", "due_at"]


def s(text):
    return {"S": text}


def n(text):
    return {"N": text}


class ItemSizes(unittest.TestCase):
    """"DynamoDB item sizes and formats" (developerguide/CapacityUnitCalculations.html)."""

    def test_a_string_is_its_name_plus_its_utf8_bytes(self):
        # "(number of UTF-8-encoded bytes of attribute name) + (number of UTF-8-encoded bytes)"
        self.assertEqual(m.item_size({"name": s("abc")}), 4 + 3)
        self.assertEqual(m.item_size({"name": s("é")}), 4 + 2)

    def test_a_number_is_one_byte_per_two_significant_digits_plus_one(self):
        # "Leading and trailing zeroes are trimmed ... (1 byte per two significant digits) + (1 byte)"
        self.assertEqual(m.number_size("1"), 2)
        self.assertEqual(m.number_size("12"), 2)
        self.assertEqual(m.number_size("123"), 3)
        self.assertEqual(m.number_size("1000"), 2)
        self.assertEqual(m.number_size("0.0012"), 2)
        self.assertEqual(m.number_size("1764547200000"), 5)
        self.assertEqual(m.number_size("9" * 38), 20)
        self.assertEqual(m.item_size({"at": n("123")}), 2 + 3)

    def test_binary_counts_its_raw_bytes_not_its_base64(self):
        # "the value's raw byte length is used for calculating size"
        self.assertEqual(m.item_size({"b": {"B": "AAECAwQ="}}), 1 + 5)

    def test_null_and_boolean_are_one_byte(self):
        self.assertEqual(m.item_size({"ok": {"BOOL": True}, "no": {"NULL": True}}), 2 + 1 + 2 + 1)

    def test_a_list_or_map_is_three_bytes_plus_one_per_element(self):
        # "An attribute of type List or Map requires 3 bytes of overhead, regardless of its
        # contents"; "The size of an empty List or Map is (... name) + (3 bytes)"; "Each List or
        # Map element also requires 1 byte of overhead."
        self.assertEqual(m.item_size({"l": {"L": []}}), 1 + 3)
        self.assertEqual(m.item_size({"l": {"L": [s("ab"), n("1")]}}), 1 + 3 + (1 + 2) + (1 + 2))
        self.assertEqual(m.item_size({"m": {"M": {"k": s("ab")}}}), 1 + 3 + (1 + 1 + 2))

    def test_no_item_is_zero_bytes(self):
        self.assertEqual(m.item_size(None), 0)


class Capacity(unittest.TestCase):
    """"DynamoDB read and write operations" (developerguide/read-write-operations.html)."""

    def test_a_3500_byte_item_reads_like_4_kb(self):
        # "reading a 3,500-byte item consumes the same throughput as reading a 4 KB item"
        self.assertEqual(m.read_units(3500, consistent=True), 1)
        self.assertEqual(m.read_units(4096, consistent=True), 1)

    def test_an_8_kb_item_is_two_strong_one_eventual(self):
        # "if your item size is 8 KB, you require 2 read units to sustain one strongly consistent
        # read, 1 read unit if you choose eventually consistent reads"
        self.assertEqual(m.read_units(8 * 1024, consistent=True), 2)
        self.assertEqual(m.read_units(8 * 1024, consistent=False), 1)

    def test_getitem_of_10_kb_rounds_to_12_kb(self):
        # "If you read a 10 KB item, DynamoDB rounds the item size to 12 KB."
        self.assertEqual(m.read_units(10 * 1024, consistent=True), 3)

    def test_batchgetitem_rounds_each_item_1_5_and_6_5_kb_is_12_kb(self):
        # "if BatchGetItem reads a 1.5 KB item and a 6.5 KB item, DynamoDB calculates the size as
        # 12 KB (4 KB + 8 KB), not 8 KB (1.5 KB + 6.5 KB)"
        per_item = m.read_units(1536, True) + m.read_units(6656, True)
        self.assertEqual(per_item, 3)
        self.assertEqual(m.read_units(1536 + 6656, True), 2)  # what a Query of the two would be

    def test_a_read_of_nothing_still_costs_one_unit(self):
        self.assertEqual(m.read_units(0, consistent=True), 1)
        self.assertEqual(m.read_units(0, consistent=False), 0.5)

    def test_writes_are_per_kb_of_the_larger_of_before_and_after(self):
        # "One write request unit represents one write for an item up to 1 KB in size"; UpdateItem
        # "consumes ... the larger of the pre-update and post-update item sizes"
        self.assertEqual(m.write_units(0, 200), 1)
        self.assertEqual(m.write_units(0, 1024), 1)
        self.assertEqual(m.write_units(0, 1025), 2)
        self.assertEqual(m.write_units(1500, 300), 2)
        self.assertEqual(m.write_units(0, 0), 1)

    def test_sqs_bills_one_request_per_64_kb_chunk(self):
        # aws.amazon.com/sqs/pricing: "Each 64 KB chunk of a payload is billed as 1 request"
        self.assertEqual(m.sqs_chunks(300), 1)
        self.assertEqual(m.sqs_chunks(64 * 1024), 1)
        self.assertEqual(m.sqs_chunks(64 * 1024 + 1), 2)


class IndexWrites(unittest.TestCase):
    """"Global secondary indexes", provisioned throughput considerations → "Write capacity units"
    (developerguide/GSI.html#GSI.ThroughputConsiderations.Writes)."""

    base = {"pk": s("p#1"), "sk": s("o#1"), "state": s("RECEIVED")}
    due = dict(base, due_shard=n("3"), due_at=n("1764547200000"))

    def units(self, before, after, projection=None):
        return m.index_write_units(
            before, after, TABLE_KEYS, DUE_KEYS, projection or {"ProjectionType": "ALL"}
        )

    def test_a_new_item_with_the_index_keys_is_one_put(self):
        # "If you write a new item to the table that defines an indexed attribute ... one write
        # operation is required to put the item into the index."
        self.assertEqual(self.units(None, self.due), 1)

    def test_an_update_that_defines_the_index_keys_is_one_put(self):
        # "... or you update an existing item to define a previously undefined indexed attribute"
        self.assertEqual(self.units(self.base, self.due), 1)

    def test_an_index_key_change_is_two_writes(self):
        # "If an update to the table changes the value of an indexed key attribute (from A to B),
        # two writes are required, one to delete the previous item from the index and another
        # write to put the new item into the index."
        moved = dict(self.due, due_at=n("1764547300000"))
        self.assertEqual(self.units(self.due, moved), 2)

    def test_removing_an_index_key_is_one_delete(self):
        # "If an item was present in the index, but a write to the table caused the indexed
        # attribute to be deleted, one write is required to delete the old item projection"
        self.assertEqual(self.units(self.due, self.base), 1)
        self.assertEqual(self.units(self.due, None), 1)

    def test_an_item_outside_the_index_before_and_after_costs_nothing(self):
        # "If an item is not present in the index before or after the item is updated, there is
        # no additional write cost for the index."
        self.assertEqual(self.units(self.base, dict(self.base, state=s("SENT"))), 0)
        self.assertEqual(self.units(None, self.base), 0)

    def test_a_projected_attribute_change_is_one_write_and_others_none(self):
        # "If an update to the table only changes the value of projected attributes in the index
        # key schema, but does not change the value of any indexed key attribute, one write is
        # required to update the values of the projected attributes into the index."
        sent = dict(self.due, state=s("SENDING"))
        self.assertEqual(self.units(self.due, sent), 1)
        keys_only = {"ProjectionType": "KEYS_ONLY"}
        self.assertEqual(self.units(self.due, sent, keys_only), 0)
        include = {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["state"]}
        self.assertEqual(self.units(self.due, sent, include), 1)

    def test_the_index_write_is_sized_by_the_projected_entry(self):
        big = dict(self.due, text=s("x" * 1900))
        self.assertEqual(self.units(None, big), 2)
        self.assertEqual(self.units(None, big, {"ProjectionType": "KEYS_ONLY"}), 1)


class MeterOnMoto(unittest.TestCase):
    """The meter itself, on moto's in-process server app: a transaction with a ConditionCheck
    writes 2 + 2 WRU, a sparse index gains its item, a miss costs a read unit."""

    @classmethod
    def setUpClass(cls):
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        cls.dir = tempfile.TemporaryDirectory()
        cls.path = os.path.join(cls.dir.name, "meter.jsonl")
        os.environ[m.METER_FILE_ENV] = cls.path
        try:
            from moto.server import ThreadedMotoServer

            import moto_server_serialized as serialized
        except ImportError as error:  # pragma: no cover - the venv has moto
            raise unittest.SkipTest(f"moto is missing: {error}")
        if not m.install(serialized._dynamodb):
            raise AssertionError("the meter did not install")
        cls.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        cls.server.start()
        host, port = cls.server.get_host_and_port()
        import boto3

        cls.client = boto3.client(
            "dynamodb",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="meter-test",
            aws_secret_access_key="x",
        )

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        os.environ.pop(m.METER_FILE_ENV, None)
        cls.dir.cleanup()

    def lines(self):
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def test_a_transaction_with_a_condition_check_and_a_sparse_index(self):
        c = self.client
        c.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": a, "AttributeType": t}
                for a, t in [("pk", "S"), ("sk", "S"), ("due_shard", "N"), ("due_at", "N")]
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "due-index",
                    "KeySchema": [
                        {"AttributeName": "due_shard", "KeyType": "HASH"},
                        {"AttributeName": "due_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        c.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": dict(IndexWrites.due)}},
                {"ConditionCheck": {
                    "TableName": "t",
                    "Key": {"pk": s("erased#1"), "sk": s("erased")},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }},
            ]
        )
        c.update_item(
            TableName="t",
            Key={"pk": s("p#1"), "sk": s("o#1")},
            UpdateExpression="SET #s = :s REMOVE due_shard",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":s": s("SENT")},
        )
        c.get_item(TableName="t", Key={"pk": s("nobody"), "sk": s("o")})
        c.query(
            TableName="t",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": s("p#1")},
            ConsistentRead=True,
        )
        self.assertEqual(
            [line["action"] for line in self.lines() if line.get("service") == "dynamodb"],
            ["CreateTable", "TransactWriteItems", "UpdateItem", "GetItem", "Query"],
        )
        by_action = {}
        for line in self.lines():
            if line.get("service") == "dynamodb":
                by_action.setdefault(line["action"], []).append(line)
        transaction = by_action["TransactWriteItems"][0]
        self.assertEqual(transaction["wru"], 4, transaction)
        self.assertEqual(transaction["index_wru"], {"due-index": 1}, transaction)
        self.assertEqual(transaction["caller"], "meter-test")
        self.assertEqual(transaction["kinds"], "erased+p")
        update = by_action["UpdateItem"][0]
        self.assertEqual(update["wru"], 1, update)
        self.assertEqual(update["index_wru"], {"due-index": 1}, update)
        self.assertEqual(by_action["GetItem"][0]["rru"], 0.5)
        self.assertEqual(by_action["Query"][0]["rru"], 1)
        self.assertEqual(by_action["Query"][0]["items"], 1)


if __name__ == "__main__":
    unittest.main()
