"""The openai and boto3 clients, unchanged, against `harken serve` (see run.sh)."""
import os
import sys

import boto3
import openai

url = os.environ["HARKEN_URL"]
audio_path = os.environ["HARKEN_AUDIO"]
audio = open(audio_path, "rb").read()
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + (f": {detail}" if not cond else ""))
    if not cond:
        failures.append(name)


client = openai.OpenAI(base_url=url + "/v1", api_key=os.environ.get("HARKEN_KEY", "sk-test"), max_retries=0)

if "--auth" in sys.argv:
    # The server runs with HARKEN_API_KEY=$HARKEN_KEY: the right key passes, a wrong one (of the
    # same length, then a prefix of the right one) is refused.
    check("openai with key", [m.id for m in client.models.list().data] == ["whisper-1"])
    key = os.environ.get("HARKEN_KEY", "sk-test")
    for wrong in ("sk-wrong-c0ffee", key[:-1]):
        bad = openai.OpenAI(base_url=url + "/v1", api_key=wrong, max_retries=0)
        try:
            bad.models.list()
            check("openai wrong key", False, "no exception")
        except openai.AuthenticationError as e:
            check("openai wrong key", e.status_code == 401, e.status_code)
    bad = openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0)
    try:
        bad.models.list()
        check("openai wrong key", False, "no exception")
    except openai.AuthenticationError as e:
        check("openai wrong key", e.status_code == 401, e.status_code)
    sys.exit(1 if failures else 0)

t = client.audio.transcriptions.create(model="whisper-1", file=open(audio_path, "rb"), language="en")
check("openai json", "tuesday" in t.text.lower(), t.text)

for fmt in ("text", "srt", "vtt"):
    r = client.audio.transcriptions.create(model="whisper-1", file=open(audio_path, "rb"), response_format=fmt)
    check(f"openai {fmt}", isinstance(r, str) and "tuesday" in r.lower(), repr(r)[:200])

v = client.audio.transcriptions.create(
    model="whisper-1", file=open(audio_path, "rb"), response_format="verbose_json",
    timestamp_granularities=["word", "segment"])
check("openai verbose_json segments", len(v.segments or []) >= 1, v)
check("openai verbose_json words", len(v.words or []) >= 5, v)

models = client.models.list()
check("openai models", [m.id for m in models.data] == ["whisper-1"], models)

try:
    client.audio.transcriptions.create(model="whisper-1", file=("notes.wav", b"not audio at all" * 10, "audio/x-wav"))
    check("openai error status", False, "no exception")
except openai.APIStatusError as e:
    check("openai error status", e.status_code == 415, e.status_code)
    check("openai error shape", isinstance(e.body, dict) and e.body.get("code") == "unsupported_media", e.body)

sm = boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
r = sm.invoke_endpoint(EndpointName="harken-asr", Body=audio, ContentType="audio/wav", Accept="text/plain",
                       CustomAttributes="x=1")
body = r["Body"].read().decode()
check("boto3 invoke_endpoint", "tuesday" in body.lower(), body)
check("boto3 content type", r["ContentType"].startswith("text/plain"), r["ContentType"])

if failures:
    print(f"{len(failures)} client checks failed: {failures}")
    sys.exit(1)
print("all client checks passed")
