#!/usr/bin/env bash
# `make demo`: one simulated phone call through hotline, offline, on this machine.
#
# Starts `hotline serve` on a free loopback port with a fresh random Twilio auth token and admin
# token (the embedded local voice speaks: eSpeak NG over ElevenLabs' own protocol; the embedded
# local ear listens: pocketsphinx behind Scribe's realtime protocol), then places a signed
# simulated Twilio call: it hears the greeting, asks a question aloud (the ear transcribes it, the
# script brain answers with the intent's line), presses 1, hears the answer, talks over it, and
# hangs up. Prints what the caller lived through, the spoken turn's voice-to-voice split and the
# server's own figures, then the call's record and summary as GET /history/{CallSid} serves them
# (records in a SQLite file of this run), writes what the caller heard to caller.wav, stops the
# server. Exits non-zero if anything failed.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${HOTLINE_DEMO_OUT:-caller.wav}
QUESTION=${HOTLINE_DEMO_QUESTION:-Tell me about the new album}
[ -x "$BIN/python" ] || { echo "demo: $BIN/python not found; run 'make build' first" >&2; exit 1; }
# `python -m hotline` runs the hotline this checkout's environment imports (PYTHONPATH honoured).
HOTLINE=("$BIN/python" -m hotline)

PORT=$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TWILIO_AUTH_TOKEN=$("$BIN/python" -c 'import secrets; print(secrets.token_hex(16))')
HOTLINE_ADMIN_TOKEN=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(24))')
BASE="http://127.0.0.1:$PORT"
LOG=$(mktemp -t hotline-demo-server.XXXXXX)
RECORDS=$(mktemp -d -t hotline-demo-records.XXXXXX)
REPORT=$(mktemp -t hotline-demo-call.XXXXXX)
SERVER_PID=""

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -INT "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ]; then
    echo "demo: FAILED (exit $rc). Server log: $LOG" >&2
    tail -n 30 "$LOG" >&2 || true
  else
    rm -f "$LOG"
  fi
  rm -f "$REPORT"
  rm -rf "$RECORDS"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== hotline demo: server on $BASE (local voice and local ear, random tokens for this run)"
# The demo is offline: the embedded local voice speaks and the local ear listens even if an
# ElevenLabs or Deepgram key is set; the script brain answers.
env -u ELEVENLABS_API_KEY -u DEEPGRAM_API_KEY \
  TWILIO_AUTH_TOKEN="$TWILIO_AUTH_TOKEN" HOTLINE_ADMIN_TOKEN="$HOTLINE_ADMIN_TOKEN" \
  HOTLINE_PUBLIC_URL="$BASE" HOTLINE_STT=local HOTLINE_BRAIN=script \
  HOTLINE_DATABASE_URL="sqlite:///$RECORDS/records.sqlite3" \
  "${HOTLINE[@]}" serve --host 127.0.0.1 --port "$PORT" >"$LOG" 2>&1 &
SERVER_PID=$!

"$BIN/python" - "$BASE" "$SERVER_PID" <<'PY' || exit 1
import os, sys, time
import httpx

base, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        if httpx.get(base + "/health", timeout=1).status_code == 200:
            sys.exit(0)
    except httpx.HTTPError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("demo: server exited during start-up")
    time.sleep(0.1)
sys.exit("demo: server not healthy after 20 s")
PY

echo "== calling: hear the greeting, ask \"$QUESTION\" aloud, press 1, talk over the answer, hang up"
CALL_RC=0
TWILIO_AUTH_TOKEN="$TWILIO_AUTH_TOKEN" HOTLINE_ADMIN_TOKEN="$HOTLINE_ADMIN_TOKEN" \
  "${HOTLINE[@]}" call --url "$BASE" --speak "$QUESTION" --digits 1 \
  --barge-in-after-answer 2.0 --hangup-after-barge-in 2.5 --max-seconds 90 \
  --out "$OUT" --report-json "$REPORT" || CALL_RC=$?

echo "== report"
HOTLINE_ADMIN_TOKEN="$HOTLINE_ADMIN_TOKEN" "$BIN/python" - "$BASE" "$REPORT" <<'PY'
import json, os, sys
import httpx
from prometheus_client.parser import text_string_to_metric_families

base, report_path = sys.argv[1], sys.argv[2]
rep = json.load(open(report_path))
health = httpx.get(base + "/health/streaming", timeout=5).json()
families = {f.name: f for f in text_string_to_metric_families(httpx.get(base + "/metrics", timeout=5).text)}

def hist(name):
    fam = families.get(name)
    if fam is None:
        return None, None, 0
    total = count = 0.0
    buckets = []
    for s in fam.samples:
        if s.name.endswith("_sum"):
            total += s.value
        elif s.name.endswith("_count"):
            count += s.value
        elif s.name.endswith("_bucket"):
            buckets.append((float(s.labels["le"]), s.value))
    if not count:
        return None, None, 0
    p50 = next((le for le, c in sorted(buckets) if c >= count / 2), None)
    return total / count, p50, int(count)

def counter(name):
    fam = families.get(name)
    return sum(s.value for s in fam.samples if s.name.endswith("_total")) if fam else 0

def fmt_ms(v):
    return "-" if v is None else f"{v:.0f} ms"

ttfa = rep.get("time_to_first_audio_ms")
bridge_mean, bridge_p50, bridge_n = hist("hotline_bridge_overhead_seconds")
tts_mean, _, _ = hist("hotline_tts_first_chunk_seconds")
conv_mean, _, conv_n = hist("hotline_conversion_seconds")
print(f"  output format          {health.get('output_format')} from the {health.get('voice')} voice")
print(f"  time to first audio    {fmt_ms(ttfa)} (caller side: `start` sent -> first media)")
if tts_mean is not None:
    print(f"    voice's first chunk  {tts_mean * 1000:.0f} ms mean (server side)")
if bridge_mean is not None:
    print(f"    bridge overhead      {bridge_mean * 1e3:.3f} ms mean over {bridge_n} utterances"
          + (f" (p50 <= {bridge_p50 * 1e3:g} ms bucket)" if bridge_p50 is not None else ""))
print(f"  audio heard            {rep['audio_ms'] / 1000:.1f} s, {rep['speech_ms'] / 1000:.1f} s of it speech")
print(f"  underruns              {rep['underrun_ms']:.0f} ms (caller), {counter('hotline_underruns'):.0f} (server)")
clear = rep.get("first_clear_after_barge_in_ms")
print(f"  clears                 {rep['clears']}" + (f", {clear:.0f} ms after the caller started talking" if clear is not None else ""))
print(f"  barge-ins (server)     {counter('hotline_barge_ins'):.0f}")
if conv_mean is not None:
    print(f"  conversion             {conv_mean * 1e6:.0f} us per chunk (mean over {conv_n} chunks)")
print(f"  marks                  {rep['marks_received']} sent by hotline, {rep['marks_echoed']} echoed")
turn_ok = bool(rep.get("turns"))
for t in rep.get("turns") or []:
    from hotline.core.script import default_script

    script = default_script()
    print(f"  spoken question        {t['text']!r}, heard as {t.get('heard_as')!r}")
    reply = t.get("reply_text") or ""
    said = next((i.name for i in script.intents if i.say and i.say == reply), None)
    print(f"    answered with        " + (f"the {said!r} intent line ({len(reply)} chars)" if said else repr(reply[:60])))
    v2v = t.get("voice_to_voice_ms")
    print(f"    voice to voice       {fmt_ms(v2v)} caller side (end of speech -> first reply audio), "
          f"reply {t['reply_audio_ms'] / 1000:.1f} s heard")
    s = t.get("server")
    if s:
        print("    server split         caller's end of speech")
        print(f"                         -> final transcript     {s['silence'] + s['recogniser']:7.1f} ms"
              f"  (silence wait {s['silence']:.0f} + recogniser {s['recogniser']:.0f})")
        print(f"                         -> brain's first token  {s['dispatch'] + s['model']:7.1f} ms"
              f"  (dispatch {s['dispatch']:.2f} + brain {s['model']:.2f})")
        print(f"                         -> first text to TTS    {s['to_tts']:7.2f} ms")
        print(f"                         -> first TTS audio      {s['voice']:7.1f} ms  (the voice)")
        print(f"                         -> first frame out      {s['playout']:7.2f} ms")
        print(f"                         = {s['total']:.0f} ms; hotline's own share {s['hotline']:.2f} ms"
              " (dispatch + to TTS + playout)")
    turn_ok = turn_ok and said is not None and v2v is not None and bool(s)
print(f"  caller heard           {rep.get('out') or '-'}")
ok = rep.get("ok") and rep["clears"] >= 1 and rep["underrun_ms"] == 0 and turn_ok
if not turn_ok:
    rep.setdefault("errors", []).append("the spoken question was not answered with an intent line")
print("  result                 " + ("OK" if ok else "PROBLEM: " + ("; ".join(rep.get("errors") or []) or "see above")))
sys.exit(0 if ok else 1)
PY
REPORT_RC=$?

echo "== the call's record (GET /history/{CallSid})"
HOTLINE_ADMIN_TOKEN="$HOTLINE_ADMIN_TOKEN" "$BIN/python" - "$BASE" "$REPORT" <<'PY' || exit 1
import json, os, sys, time
import httpx

base, report_path = sys.argv[1], sys.argv[2]
sid = json.load(open(report_path))["call_sid"]
auth = {"Authorization": "Bearer " + os.environ["HOTLINE_ADMIN_TOKEN"]}
deadline = time.monotonic() + 20
while True:  # written off the call's path: a moment after the hang-up
    r = httpx.get(f"{base}/history/{sid}", headers=auth, timeout=5)
    if (r.status_code == 200 and r.json().get("summary")) or time.monotonic() > deadline:
        break
    time.sleep(0.2)
if r.status_code != 200 or not r.json().get("summary"):
    sys.exit(f"demo: no record of call {sid} ({r.status_code}: {r.text[:200]})")
rec = r.json()
listed = httpx.get(f"{base}/history", headers=auth, params={"limit": 5}, timeout=5).json()
print(f"  call                   {rec['call_sid']} from {rec['caller']}, {rec['duration_s']:.1f} s, "
      f"ended by {rec['ended_by']} ({rec['outcome']}); brain {rec['brain']}")
print(f"  started, ended         {rec['started_at']} .. {rec['ended_at']}")
print(f"  turns                  {len(rec['turns'])}; barge-ins {rec['barge_ins']}; "
      f"errors {sum(e['count'] for e in rec['errors'])}")
for turn in rec["turns"]:
    text = turn["text"] if len(turn["text"]) <= 70 else turn["text"][:69] + "…"
    lat = turn.get("latency_ms")
    extra = f"  [voice to voice {lat['sent']:.0f} ms]" if lat else ""
    extra += f"  [heard {turn['heard_ms'] / 1000:.1f} s of it]" if "heard_ms" in turn else ""
    print(f"    {turn['at']:6.1f} s  {turn['speaker']:<8} {text!r}{extra}")
print(f"  summary ({rec['summary_by']})          {rec['summary']}")
print(f"  /history               {len(listed['calls'])} call(s) in the records of this run")
PY
[ "$CALL_RC" -eq 0 ] || { echo "demo: the call failed (exit $CALL_RC)" >&2; exit "$CALL_RC"; }
exit "$REPORT_RC"
