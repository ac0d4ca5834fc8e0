"""Live transcription against a real `harken serve`: the official openai client's realtime
connection in both dialects (GA and beta), its SSE stream=True call, and a raw WebSocket client
sending malformed events, wrong formats, oversized frames, abrupt disconnects and more streams
than the server takes. Every event the server sends is checked against the openai package's own
pydantic event types.

    HARKEN_URL=http://127.0.0.1:PORT HARKEN_PCM24=… HARKEN_ULAW8=… HARKEN_AUDIO=… python test_realtime.py
"""
import asyncio
import base64
import json
import os
import sys
import urllib.request

import websockets
from openai import OpenAI
from pydantic import TypeAdapter
from openai.types.realtime import RealtimeServerEvent
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.audio import TranscriptionStreamEvent

URL = os.environ["HARKEN_URL"]
WS = URL.replace("http://", "ws://")
PCM24 = open(os.environ["HARKEN_PCM24"], "rb").read()  # numbers_16k.wav at 24 kHz, s16le
ULAW8 = open(os.environ["HARKEN_ULAW8"], "rb").read()  # the same at 8 kHz, G.711 µ-law
AUDIO = os.environ["HARKEN_AUDIO"]
EXPECT = "tuesday"
failures = 0


def check(name, cond, detail=""):
    global failures
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))
    failures += 0 if cond else 1


def silence(seconds, rate, width=2):
    return b"\x00" * int(seconds * rate) * width


def chunks(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


def run_client(conn, session_update, audio, adapter, manual_commit=False, skip=()):
    """Sends the audio in 100 ms pieces, collects events until the transcript is completed.
    Events whose type is in `skip` are not validated against the client's types."""
    session_update()
    for c in chunks(audio, 4800):
        conn.input_audio_buffer.append(audio=base64.b64encode(c).decode())
    if manual_commit:
        conn.input_audio_buffer.commit()
    events = []
    for event in conn:
        events.append(event)
        if event.type not in skip:
            adapter.validate_python(event.to_dict())  # the client's own types, strictly
        if event.type == "conversation.item.input_audio_transcription.completed" or event.type == "error":
            break
    return events


def summary(events):
    types = [e.type for e in events]
    deltas = "".join(getattr(e, "delta", "") for e in events if e.type.endswith("transcription.delta"))
    done = [e for e in events if e.type.endswith("transcription.completed")]
    return types, deltas, done


def test_ga():
    client = OpenAI(base_url=URL + "/v1", api_key=os.environ.get("HARKEN_KEY", "sk-test"), max_retries=0)
    adapter = TypeAdapter(RealtimeServerEvent)
    with client.realtime.connect(model="whisper-1", extra_query={"intent": "transcription"}) as conn:
        audio = silence(0.6, 24000) + PCM24 + silence(1.5, 24000)
        events = run_client(conn, lambda: conn.session.update(session={
            "type": "transcription",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                "transcription": {"model": "whisper-1", "language": "en"},
                                "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                                   "prefix_padding_ms": 300, "silence_duration_ms": 500}}},
        }), audio, adapter)
    types, deltas, done = summary(events)
    check("GA: session.created then session.updated", types[:2] == ["session.created", "session.updated"], types[:3])
    for t in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed"):
        check(f"GA: {t}", t in types, types)
    check("GA: completed transcript", done and EXPECT in done[0].transcript.lower(), done)
    check("GA: deltas add up to the transcript", done and deltas.strip() == done[0].transcript.strip(), (deltas, done))
    check("GA: usage carries the audio duration", done and done[0].usage and done[0].usage.type == "duration"
          and 2.5 < done[0].usage.seconds < 6, done and done[0].usage)


def test_beta_ulaw_manual_commit():
    # The beta connection always picks wss:// from base_url; websocket_base_url is how a client
    # points it at a plain-HTTP server.
    client = OpenAI(base_url=URL + "/v1", websocket_base_url=WS + "/v1",
                    api_key=os.environ.get("HARKEN_KEY", "sk-test"), max_retries=0)
    adapter = TypeAdapter(BetaServerEvent)
    with client.beta.realtime.connect(model="whisper-1") as conn:
        events = run_client(conn, lambda: conn.transcription_session.update(session={
            "input_audio_format": "g711_ulaw",
            "input_audio_transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": None,
        }), ULAW8, adapter, manual_commit=True,
            # The beta SDK's union has no transcription_session.created, and its session type
            # requires the ephemeral client_secret that only the REST call mints: not validated.
            skip=("transcription_session.created", "transcription_session.updated"))
    types, deltas, done = summary(events)
    check("beta: transcription_session.created/updated",
          types[:2] == ["transcription_session.created", "transcription_session.updated"], types[:3])
    check("beta: no VAD events with turn_detection null", "input_audio_buffer.speech_started" not in types, types)
    check("beta: committed by the client", "input_audio_buffer.committed" in types, types)
    check("beta: G.711 µ-law transcript", done and EXPECT in done[0].transcript.lower(), done)


def test_sse():
    client = OpenAI(base_url=URL + "/v1", api_key=os.environ.get("HARKEN_KEY", "sk-test"), max_retries=0)
    adapter = TypeAdapter(TranscriptionStreamEvent)
    with open(AUDIO, "rb") as f:
        stream = client.audio.transcriptions.create(model="whisper-1", file=f, stream=True)
        events = list(stream)
    for e in events:
        adapter.validate_python(e.to_dict())
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    check("SSE: at least one delta, then done", deltas and len(done) == 1 and events[-1].type == "transcript.text.done",
          [e.type for e in events])
    check("SSE: done carries the whole text (not empty)", done and EXPECT in done[0].text.lower(), done)
    check("SSE: deltas join to the done text", done and "".join(deltas).strip() == done[0].text.strip(), (deltas, done))


async def raw(path="/v1/realtime", headers=None):
    return await websockets.connect(WS + path, additional_headers=headers or {}, max_size=None)


async def expect_error(ws, code):
    while True:
        ev = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if ev["type"] == "error":
            return ev["error"]["code"] == code, ev


async def test_hostile():
    auth = {"Authorization": "Bearer " + os.environ.get("HARKEN_KEY", "sk-test")}
    ws = await raw(headers=auth)
    created = json.loads(await ws.recv())
    check("raw: session.created first", created["type"] == "session.created", created)
    cases = [
        ("not JSON", "{nope", "invalid_json"),
        ("JSON that is not an object", "[1,2]", "invalid_json"),
        ("no type", json.dumps({"event_id": "e1"}), "missing_type"),
        ("unknown type", json.dumps({"type": "response.create"}), "unknown_event"),
        ("append without audio", json.dumps({"type": "input_audio_buffer.append"}), "missing_audio"),
        ("audio not base64", json.dumps({"type": "input_audio_buffer.append", "audio": "***"}), "invalid_audio"),
        ("unsupported format", json.dumps({"type": "session.update", "session": {"type": "transcription",
            "audio": {"input": {"format": {"type": "audio/mp3"}}}}}), "invalid_value"),
        ("conversation session", json.dumps({"type": "session.update", "session": {"type": "realtime"}}), "invalid_value"),
        ("beta event on GA", json.dumps({"type": "transcription_session.update", "session": {}}), "wrong_dialect"),
    ]
    for name, msg, code in cases:
        await ws.send(msg)
        ok, ev = await expect_error(ws, code)
        check(f"raw: {name} -> error {code}", ok, ev)
    # The connection survives all of that and still transcribes.
    await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription",
        "audio": {"input": {"turn_detection": None, "transcription": {"language": "en"}}}}}))
    for c in chunks(PCM24, 48000):
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(c).decode()}))
    await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
    text = None
    while text is None:
        ev = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if ev["type"] == "conversation.item.input_audio_transcription.completed":
            text = ev["transcript"]
    check("raw: still transcribes after bad events", EXPECT in text.lower(), text)
    # An oversized frame closes the connection with 1009, not the server.
    try:
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (17 << 20)}))
        await asyncio.wait_for(ws.recv(), 10)
        closed = False
    except websockets.ConnectionClosed as e:
        closed = e.rcvd is not None and e.rcvd.code == 1009
    check("raw: 17 MiB event -> close 1009", closed)
    # Abrupt disconnects mid-stream, with audio queued.
    for _ in range(3):
        w = await raw(headers=auth)
        await w.recv()
        for c in chunks(PCM24, 9600):
            await w.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(c).decode()}))
        w.transport.abort() if hasattr(w, "transport") else await w.close()
    # More streams than the server takes: the extra ones get a clean refusal.
    conns = await asyncio.gather(*[raw(headers=auth) for _ in range(10)], return_exceptions=True)
    firsts = await asyncio.gather(*[c.recv() for c in conns if not isinstance(c, Exception)], return_exceptions=True)
    kinds = [json.loads(f)["type"] if isinstance(f, str) else "exc" for f in firsts]
    refused = [json.loads(f) for f in firsts if isinstance(f, str) and json.loads(f)["type"] == "error"]
    check("raw: 10 streams at once: some accepted, the rest refused with too_many_streams",
          kinds.count("session.created") >= 1 and refused and all(r["error"]["code"] == "too_many_streams" for r in refused)
          and kinds.count("session.created") + len(refused) == 10, kinds)
    for c in conns:
        if not isinstance(c, Exception):
            await c.close()
    await ws.close()
    # Plain mode: binary PCM in, partial/final JSON out.
    p = await raw("/v1/listen?rate=24000&language=en", headers=auth)
    for c in chunks(silence(0.5, 24000) + PCM24 + silence(1.5, 24000), 4800):
        await p.send(c)
    final = None
    while final is None:
        ev = json.loads(await asyncio.wait_for(p.recv(), 30))
        if ev["type"] == "final":
            final = ev
    check("plain: binary PCM frames -> final", EXPECT in final["text"].lower(), final)
    await p.close()
    # Nothing leaked: every session is gone.
    for _ in range(50):
        metrics = urllib.request.urlopen(URL + "/metrics").read().decode()
        active = [l for l in metrics.splitlines() if l.startswith("harken_streams_active ")]
        if active and float(active[0].split()[1]) == 0:
            break
        await asyncio.sleep(0.2)
    check("no stream left open after the clients went", active and float(active[0].split()[1]) == 0, active)


def test_auth():
    try:
        asyncio.run(_no_key())
        check("realtime without the key is refused", False, "connected")
    except websockets.InvalidStatus as e:
        check("realtime without the key is refused (401)", e.response.status_code == 401, e)


async def _no_key():
    w = await raw()
    await w.close()


if __name__ == "__main__":
    if "--auth" in sys.argv:
        test_auth()
        test_ga()
    else:
        test_ga()
        test_beta_ulaw_manual_commit()
        test_sse()
        asyncio.run(test_hostile())
    sys.exit(1 if failures else 0)
