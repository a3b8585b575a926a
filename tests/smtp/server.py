"""A real SMTP server for medbook's tests, on aiosmtpd (PyPI, pinned in requirements.txt).

Listens on 127.0.0.1 on a free port and prints {"port": N} as its first line; then one JSON line per
event: {"accepted": {...}} for each message taken (envelope, headers, decoded body), {"rejected": rcpt} for
each recipient refused. A recipient whose local part starts with "bounce" is refused with 550 (a
permanent failure); one starting with "later" with 451 (a transient one). Exits when standard input closes.
"""

import asyncio
import email
import email.policy
import json
import sys
import threading
import time

from aiosmtpd.smtp import SMTP


def emit(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("bounce"):
            emit({"rejected": address, "code": 550})
            return "550 5.1.1 no such mailbox"
        if local.startswith("later"):
            emit({"rejected": address, "code": 451})
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        emit(
            {
                "accepted": {
                    "mailFrom": envelope.mail_from,
                    "rcptTos": envelope.rcpt_tos,
                    "headers": {k.lower(): str(v) for k, v in message.items()},
                    # The body as the reader sees it (quoted-printable and soft line breaks decoded).
                    "body": message.get_content(),
                    "receivedAt": time.time(),
                }
            }
        )
        return "250 2.0.0 accepted"


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler()), "127.0.0.1", 0)
    emit({"port": server.sockets[0].getsockname()[1]})
    closed = loop.create_future()

    def watch_stdin():
        sys.stdin.read()
        loop.call_soon_threadsafe(closed.set_result, None)

    threading.Thread(target=watch_stdin, daemon=True).start()
    await closed
    server.close()


asyncio.run(main())
