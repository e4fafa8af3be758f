"""The owner told of each call: a signed webhook and an SMS.

Webhook (``HOTLINE_NOTIFY_URL``): ``POST {"type": "call.ended", "id": <event id>, "call":
<the record>}`` as JSON, ``X-Hotline-Signature: sha256=<hex HMAC-SHA256 of the raw body keyed
with HOTLINE_NOTIFY_SECRET>``, ``X-Hotline-Event-Id`` (the same id on every retry: the receiver
deduplicates on it). Anything but a 2xx (or no answer) is retried with exponential backoff, up to
``attempts`` times: delivered at least once unless the receiver is down for all of them.

SMS (``HOTLINE_OWNER_NUMBER``): the summary through Twilio's Messages API with the official
``twilio`` client (``client.messages.create(to=, from_=, body=)``), run in a thread (the client
is synchronous), retried like the webhook. Neither logs a number, a summary or a transcript.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from typing import Any

import httpx

from hotline.records.model import CallRecord

__all__ = ["SmsNotifier", "WebhookNotifier", "sign"]

log = logging.getLogger("hotline.records")

SMS_CHARS = 1200


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hotline-Signature`` of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _Retrying:
    """Tasks that deliver one notification each, with retries; closed at shutdown."""

    def __init__(self, attempts: int, backoff: float) -> None:
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.delivered = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, name: str, record: CallRecord) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(record), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, record: CallRecord) -> None:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                await self._once(record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "records: %s for call %s failed (attempt %d of %d: %s)",
                    self.what,
                    record.call_sid,
                    attempt,
                    self.attempts,
                    _reason(exc),
                )
                if attempt < self.attempts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 60.0)
                continue
            self.delivered += 1
            return
        self.failed += 1

    what = "notification"

    async def _once(self, record: CallRecord) -> None:
        raise NotImplementedError

    async def flush(self, timeout: float) -> None:
        """Wait for deliveries in flight (up to ``timeout``), then cancel the rest."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return f"HTTP {status}"
    return type(exc).__name__


class WebhookNotifier(_Retrying):
    """POSTs ``call.ended`` events to ``url``, signed with ``secret``."""

    what = "the call.ended webhook"

    def __init__(
        self,
        url: str,
        secret: str | None,
        *,
        attempts: int = 6,
        backoff: float = 1.0,
        timeout: float = 10.0,
        verify: Any = True,
    ) -> None:
        super().__init__(attempts, backoff)
        self.url = url
        self.secret = secret
        self._client = httpx.AsyncClient(timeout=timeout, verify=verify)
        self._ids: dict[str, str] = {}

    def notify(self, record: CallRecord) -> None:
        self._spawn("hotline-webhook", record)

    def body(self, record: CallRecord, event_id: str) -> bytes:
        event = {"type": "call.ended", "id": event_id, "call": record.as_dict()}
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()

    async def _deliver(self, record: CallRecord) -> None:
        self._ids[record.call_sid] = f"evt_{uuid.uuid4().hex}"
        try:
            await super()._deliver(record)
        finally:
            self._ids.pop(record.call_sid, None)

    async def _once(self, record: CallRecord) -> None:
        event_id = self._ids[record.call_sid]
        body = self.body(record, event_id)
        headers = {"content-type": "application/json", "x-hotline-event-id": event_id}
        if self.secret:
            headers["x-hotline-signature"] = sign(self.secret, body)
        response = await self._client.post(self.url, content=body, headers=headers)
        response.raise_for_status()

    async def aclose(self, timeout: float = 5.0) -> None:
        await self.flush(timeout)
        await self._client.aclose()


class SmsNotifier(_Retrying):
    """Texts each call's summary to ``owner`` from ``sender`` (Twilio's Messages API).

    Args:
        client: a ``twilio.rest.Client``.
    """

    what = "the summary SMS"

    def __init__(
        self, client: Any, owner: str, sender: str, *, attempts: int = 4, backoff: float = 2.0
    ) -> None:
        super().__init__(attempts, backoff)
        self.client = client
        self.owner = owner
        self.sender = sender

    def notify(self, record: CallRecord) -> None:
        self._spawn("hotline-sms", record)

    def text(self, record: CallRecord) -> str:
        when = record.item()["started_at"][:16].replace("T", " ")
        body = f"hotline call {when} UTC from {record.caller_masked or 'unknown'}: {record.summary or ''}"
        return body[:SMS_CHARS]

    async def _once(self, record: CallRecord) -> None:
        body = self.text(record)
        await asyncio.to_thread(
            self.client.messages.create, to=self.owner, from_=self.sender, body=body
        )

    async def aclose(self, timeout: float = 5.0) -> None:
        await self.flush(timeout)
