"""The I/O shell: settings, the FastAPI app and its routes, per-call sessions (speech, listening,
brains), the TTS / speech-to-text / LLM / ConversationRelay clients, replicas and drain.

Endpoints (``create_app`` in :mod:`hotline.server.app`, routes in :mod:`hotline.server.routes`):

    POST /voice                    Twilio voice webhook (X-Twilio-Signature over the public URL and
                                   every form field; 403 otherwise) -> TwiML <Connect><Stream
                                   url="wss://HOST/media-stream"> with CallSid, From, a per-call token
    POST /debug-websocket-voice    the same, for a call that says one fixed sentence and hangs up
    POST /stream-ended             signed: the <Connect action> when a media stream ends -> <Hangup/>
                                   if hotline ended the call, else a new <Connect><Stream> (resume)
    POST /stream-status            signed: <Stream statusCallback> events, counted and logged
    WS   /media-stream             signed upgrade (wss:// URL, no params) checked before accept; the
                                   per-call token is checked on ``start``; messages capped at 64 KiB
    GET  /health, /health/streaming   open, no secrets (503 "draining" after SIGTERM)
    GET  /metrics                  Prometheus text (own registry per app)
    GET  /logs, /logs/streaming    admin: recent log records (redacted; audio path only)
    GET  /calls                    admin: live calls
    POST /calls/{CallSid}/say      admin: {"text", "interrupt": false} -> 202
    GET  /calls/{CallSid}/transcript   admin: what was said (live, else from the call's record)
    POST /calls/{CallSid}/hangup   admin -> 202
    GET  /history                  admin: call records, newest first, paged, filtered
    GET  /history/{CallSid}        admin: one call's whole record (turns, latency, summary)
    DELETE /callers/{number}       admin: forget a caller (their records and memory)
    GET  /console, /console/sign-in, /console/live.json, /console/live/events
    POST /console/sign-in, /console/sign-out   the owner's console (hotline.server.console):
                                   a session cookie from the admin token; CSRF-checked actions
    POST /console/calls/{CallSid}/say, /console/calls/{CallSid}/hangup   console: say, hang up
    GET  /console/calls/{CallSid}, /console/calls/{CallSid}/timeline, /console/calls/{CallSid}/data
    GET  /console/health, /console/health.json, /console/static/{name}
    GET  /console/history          console: ended calls from the records
    POST /console/history, /console/history/export   console: filtered, exported (CSV, JSON)

Admin endpoints need ``Authorization: Bearer $HOTLINE_ADMIN_TOKEN`` (401 otherwise, compared in
constant time); with no admin token configured they answer 503 "admin disabled" in every mode.
"""
