"""moto_server, with DynamoDB requests handled one at a time.

DynamoDB applies each write to an item atomically: a conditional write's check and its update are
one step, so two concurrent claims of one opt-in cannot both succeed. moto's server is threaded and
its DynamoDB backend takes no lock, so two concurrent conditional writes can both pass their
condition. The tests exist to prove that the conditions enforce the invariants under concurrency;
this launcher gives moto DynamoDB's guarantee by serializing its DynamoDB requests (other services
keep moto's threading: SQS long polls must not block the server).

Usage: the same arguments as moto_server (the local runner and the tests start it this way).
"""

import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_dynamodb = threading.RLock()
_call_action = DynamoHandler.call_action


def _serialized_call_action(self):
    with _dynamodb:
        return _call_action(self)


DynamoHandler.call_action = _serialized_call_action

if __name__ == "__main__":
    sys.exit(main())
