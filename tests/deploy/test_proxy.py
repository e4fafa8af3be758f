"""End to end through a real nginx reverse proxy in front of a real ``hotline serve``.

Every request reaches hotline from the proxy's address. A scanner's unsigned webhooks must
not cost a real, correctly signed Twilio webhook or media-stream upgrade anything: a valid
signature is checked before the failure limiter and always served; with
``HOTLINE_TRUSTED_PROXIES`` the limiter keys by the client named in ``X-Forwarded-For``.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from twilio.request_validator import RequestValidator

from hotline.loopback import free_port
from hotline.sim.caller import place_call
from hotline.sim.options import CallOptions
from tests.deploy.proxy import NGINX, nginx_proxy
from tests.support.spawn import hotline_serve

pytestmark = [
    pytest.mark.slow,  # real nginx and hotline processes: `make test-all`, not `make test`
    pytest.mark.skipif(
        NGINX is None, reason="nginx is not installed (apt-get install -y nginx; `make testdeps`)"
    ),
]

TOKEN = "deploy-twilio-token-0123456789abcdef"
FORM = {"CallSid": "CAscanner", "From": "+15555550199"}
SCANNER = "203.0.113.7"
OTHER = "198.51.100.9"


def _served_call(proxy: str) -> None:
    report = asyncio.run(
        place_call(CallOptions(url=proxy, auth_token=TOKEN, hangup_after_s=1.5, max_seconds=10))
    )
    assert report.webhook_status == 200, report.errors
    assert report.errors == [], report.errors
    assert report.media_frames > 0  # the upgrade was accepted and the greeting played


def _scan(client: httpx.Client, proxy: str, n: int, xff: str | None = None) -> list[int]:
    headers = {"X-Forwarded-For": xff} if xff else {}
    return [client.post(proxy + "/voice", data=FORM, headers=headers).status_code for _ in range(n)]


def _bad_upgrades(proxy: str, n: int) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    for _ in range(n):
        with pytest.raises(InvalidStatus) as info:
            connect(proxy.replace("http", "ws") + "/media-stream", open_timeout=5).close()
        assert info.value.response.status_code == 403


@pytest.mark.parametrize("trusted", [None, "127.0.0.1"])
def test_unsigned_flood_through_a_proxy_never_blocks_signed_twilio(trusted: str | None) -> None:
    proxy_port = free_port()
    public = f"http://127.0.0.1:{proxy_port}"  # signatures are over the proxy's URL
    env = {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "HOTLINE_PUBLIC_URL": public,
        "HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY": "0.05",
    }
    if trusted:
        env["HOTLINE_TRUSTED_PROXIES"] = trusted
    with (
        hotline_serve("--insecure-dev", **env) as served,
        nginx_proxy(served.port, proxy_port) as proxy,
        httpx.Client(timeout=10) as client,
    ):
        codes = _scan(client, proxy, 40, SCANNER if trusted else None)
        assert codes == [403] * 20 + [429] * 20  # the scanner is limited...
        _bad_upgrades(proxy, 5)  # ...its bad upgrades too, and they do not renew the block
        _served_call(proxy)  # ...but a signed webhook + signed upgrade through the proxy is served
        sig = RequestValidator(TOKEN).compute_signature(public + "/voice", FORM)
        r = client.post(proxy + "/voice", data=FORM, headers={"X-Twilio-Signature": sig})
        assert r.status_code == 200 and "<Stream" in r.text
        if trusted:
            # Keyed by the real client: another address is not blocked by the scanner's failures.
            assert _scan(client, proxy, 1, OTHER) == [403]
        else:
            # Everyone shares the proxy's address; still only invalid attempts are refused.
            assert _scan(client, proxy, 1) == [429]
    assert "Traceback" not in served.stderr
    assert TOKEN not in served.stderr
