"""A stand-in for Twilio's REST API, the part the summary SMS uses: ``POST
/2010-04-01/Accounts/{AccountSid}/Messages.json`` (form ``To``, ``From``, ``Body``; HTTP basic
auth with the account SID and auth token), answered as Twilio documents it: ``201`` with the
Message resource as JSON, errors as ``{"code", "message", "more_info", "status"}``."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def _error(status: int, code: int, message: str) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status)


@dataclass
class TwilioApi:
    account_sid: str
    auth_token: str
    #: Status codes to answer the next requests with (then 201).
    faults: list[int] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/2010-04-01/Accounts/{sid}/Messages.json", self._create, methods=["POST"])
            ]
        )

    async def _create(self, request: Request) -> JSONResponse:
        self.attempts += 1
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return _error(401, 20003, "Authentication Error - invalid username")
        if request.path_params["sid"] != self.account_sid:
            return _error(404, 20404, "The requested resource was not found")
        form = dict(parse_qsl((await request.body()).decode()))
        if not form.get("To") or not form.get("From") or not form.get("Body"):
            return _error(400, 21604, "A 'To', 'From' and 'Body' are required")
        if self.faults:
            status = self.faults.pop(0)
            return _error(status, 20500, "Internal Server Error")
        self.messages.append(form)
        now = format_datetime(datetime.now(timezone.utc))
        sid = "SM" + uuid.uuid4().hex
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": form["Body"],
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form["From"],
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
            },
            "to": form["To"],
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        return JSONResponse(resource, status_code=201)
