#!/usr/bin/env python3
"""Verify one captured event delivery with the Standard Webhooks reference package.

Issue 12: a receiver using any Standard Webhooks library must verify our deliveries unchanged, so
the tests check them with the specification authors' Python package (pinned in
infra/python/requirements.txt), not only with our own code.

Reads on stdin a JSON object {"secret": "whsec_...", "headers": {name: value}, "body": "..."} and
exits 0 when `Webhook(secret).verify(body, headers)` passes, 1 (with the reason on stderr) when it
does not, 2 when the input is not that object.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook


def main() -> int:
    try:
        captured = json.load(sys.stdin)
        secret, headers, body = captured["secret"], captured["headers"], captured["body"]
    except (ValueError, KeyError, TypeError) as e:
        print(f"bad input: {e}", file=sys.stderr)
        return 2
    try:
        Webhook(secret).verify(body, headers)
    except Exception as e:  # the package raises its own error, or a decoding error
        print(f"verification failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
