// Harken's page: pick, drop or record audio; send it to the OpenAI-compatible route; show the
// transcript with word highlighting in time with playback. No framework and no build step: the
// server embeds this file as it is.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem('harken-api-key') || '',
  result: null,
  baseName: 'transcript',
  words: [], // [{start, end, el}]
  current: -1,
  recorder: null,
  poll: null,
  mediaUrl: null,
};

function authHeaders() {
  return state.key ? { Authorization: `Bearer ${state.key}` } : {};
}

function setStatus(text, fraction) {
  $('status').textContent = text;
  const bar = $('progress');
  if (fraction === undefined) {
    bar.hidden = true;
  } else {
    bar.hidden = false;
    if (fraction === null) bar.removeAttribute('value'); // indeterminate
    else bar.value = Math.max(0, Math.min(1, fraction));
  }
}

function showError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = !message;
}

function askKey() {
  $('key-panel').hidden = false;
  $('key').focus();
}

// The server's error body is OpenAI's: {"error": {"message", "code", ...}}.
function errorMessage(status, bodyText) {
  try {
    const body = JSON.parse(bodyText);
    if (body && body.error && body.error.message) return `${body.error.message} (HTTP ${status})`;
  } catch (_) { /* not JSON */ }
  return `The server answered HTTP ${status}${bodyText ? `: ${bodyText.slice(0, 300)}` : ''}`;
}

async function loadModels() {
  try {
    const r = await fetch('/v1/models', { headers: authHeaders() });
    if (r.status === 401) { askKey(); return; }
    if (!r.ok) return;
    const body = await r.json();
    const select = $('model');
    select.replaceChildren(...body.data.map((m) => new Option(m.id, m.id)));
  } catch (_) { /* the page still works with the default model name */ }
}

function requestId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `ui-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function fmtClock(s) {
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, '0')}`;
}

function startPolling(id) {
  stopPolling();
  const started = performance.now();
  state.poll = setInterval(async () => {
    const elapsed = ((performance.now() - started) / 1000).toFixed(0);
    try {
      const r = await fetch(`/v1/progress/${id}`, { headers: authHeaders() });
      if (!r.ok || state.poll === null) return;
      const p = await r.json();
      if (p.state === 'queued') setStatus(`Waiting for a free worker… (${elapsed} s)`, null);
      else if (p.total_s > 0) {
        setStatus(`Transcribing: ${fmtClock(p.done_s)} of ${fmtClock(p.total_s)} (${elapsed} s)`,
          p.done_s / p.total_s);
      }
    } catch (_) { /* the final response reports errors */ }
  }, 500);
}

function stopPolling() {
  if (state.poll !== null) clearInterval(state.poll);
  state.poll = null;
}

function transcribe(blob, name) {
  showError('');
  $('result').hidden = true;
  state.baseName = (name || 'audio').replace(/\.[^.]*$/, '') || 'audio';
  if (state.mediaUrl) URL.revokeObjectURL(state.mediaUrl);
  state.mediaUrl = URL.createObjectURL(blob);
  $('player').src = state.mediaUrl;

  const form = new FormData();
  form.append('file', blob, name);
  form.append('model', $('model').value || 'whisper-1');
  form.append('response_format', 'verbose_json');
  form.append('timestamp_granularities[]', 'segment');
  if ($('words').checked) form.append('timestamp_granularities[]', 'word');
  if ($('language').value) form.append('language', $('language').value);
  const hot = $('hotwords').value.trim();
  if (hot) form.append('hotwords', hot);
  const route = $('task').value === 'translate' ? 'translations' : 'transcriptions';

  const id = requestId();
  const xhr = new XMLHttpRequest();
  xhr.open('POST', `/v1/audio/${route}`);
  xhr.setRequestHeader('x-request-id', id);
  if (state.key) xhr.setRequestHeader('Authorization', `Bearer ${state.key}`);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) setStatus(`Uploading ${name}…`, e.loaded / e.total);
  };
  xhr.upload.onload = () => {
    setStatus('Transcribing…', null);
    startPolling(id);
  };
  xhr.onload = () => {
    stopPolling();
    if (xhr.status === 200) {
      let result;
      try { result = JSON.parse(xhr.responseText); } catch (e) {
        setStatus('Failed.');
        showError(`The server's answer is not JSON: ${e.message}`);
        return;
      }
      show(result);
      return;
    }
    setStatus('Failed.');
    showError(errorMessage(xhr.status, xhr.responseText));
    if (xhr.status === 401) askKey();
  };
  xhr.onerror = () => {
    stopPolling();
    setStatus('Failed.');
    showError('Could not reach the server (network error).');
  };
  setStatus(`Uploading ${name}…`, 0);
  xhr.send(form);
}

// Words join with a space unless they begin with punctuation (Whisper splits "7.30" as "7", ".30").
function joinsWithoutSpace(word) {
  return /^[.,!?;:%)\]'’]/.test(word);
}

function show(result) {
  state.result = result;
  const transcript = $('transcript');
  transcript.replaceChildren();
  state.words = [];
  state.current = -1;
  const words = Array.isArray(result.words) ? result.words : [];
  if (words.length > 0) {
    words.forEach((w, i) => {
      const text = String(w.word).trim();
      if (i > 0 && !joinsWithoutSpace(text)) transcript.append(' ');
      const span = document.createElement('span');
      span.className = 'w';
      span.textContent = text;
      span.dataset.start = w.start;
      span.dataset.end = w.end;
      span.addEventListener('click', () => seek(w.start));
      transcript.append(span);
      state.words.push({ start: Number(w.start), end: Number(w.end), el: span });
    });
  } else {
    transcript.textContent = (result.text || '').trim();
  }
  const language = result.language ? `Language: ${result.language}` : '';
  const duration = typeof result.duration === 'number' ? `Duration: ${fmtClock(result.duration)}` : '';
  const n = (result.segments || []).length;
  const count = `${n} segment${n === 1 ? "" : "s"}`;
  $('meta').textContent = [language, duration, count].filter(Boolean).join(' · ');

  const list = $('segments');
  list.replaceChildren(...(result.segments || []).map((seg) => {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = `${fmtClock(seg.start)}–${fmtClock(seg.end)}`;
    button.setAttribute('aria-label', `Play from ${fmtClock(seg.start)}`);
    button.addEventListener('click', () => seek(seg.start));
    li.append(button, document.createTextNode(String(seg.text).trim()));
    return li;
  }));
  $('result').hidden = false;
  const secs = typeof result.duration === 'number' ? ` ${result.duration.toFixed(1)} s of audio` : '';
  setStatus(`Done:${secs} transcribed.`);
}

function seek(t) {
  const player = $('player');
  player.currentTime = Number(t) + 0.001;
  player.play().catch(() => { /* autoplay refused: the position is still set */ });
  highlight(Number(t) + 0.001);
}

// The word being spoken at time `t`: the last word that starts at or before `t`, while it lasts.
function wordAt(t) {
  const w = state.words;
  let lo = 0;
  let hi = w.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (w[mid].start <= t) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found >= 0 && t < w[found].end + 0.05 ? found : -1;
}

function highlight(t) {
  const i = wordAt(t);
  if (i === state.current) return;
  if (state.current >= 0) state.words[state.current].el.classList.remove('current');
  if (i >= 0) state.words[i].el.classList.add('current');
  state.current = i;
}

function tick() {
  const player = $('player');
  highlight(player.currentTime);
  if (!player.paused && !player.ended) requestAnimationFrame(tick);
}

function pad(n, width) { return String(n).padStart(width, '0'); }

function stamp(s, sep) {
  const ms = Math.round(s * 1000);
  return `${pad(Math.floor(ms / 3600000), 2)}:${pad(Math.floor(ms / 60000) % 60, 2)}:`
    + `${pad(Math.floor(ms / 1000) % 60, 2)}${sep}${pad(ms % 1000, 3)}`;
}

function render(format) {
  const r = state.result;
  const segs = r.segments || [];
  switch (format) {
    case 'txt': return [`${(r.text || '').trim()}\n`, 'text/plain'];
    case 'srt': return [segs.map((s, i) => `${i + 1}\n${stamp(s.start, ',')} --> ${stamp(s.end, ',')}\n${String(s.text).trim()}\n`).join('\n'), 'application/x-subrip'];
    case 'vtt': return [`WEBVTT\n\n${segs.map((s) => `${stamp(s.start, '.')} --> ${stamp(s.end, '.')}\n${String(s.text).trim()}\n`).join('\n')}`, 'text/vtt'];
    default: return [`${JSON.stringify(r, null, 2)}\n`, 'application/json'];
  }
}

function download(format) {
  if (!state.result) return;
  const [text, type] = render(format);
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = `${state.baseName}.${format}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

async function toggleRecording() {
  const button = $('record');
  if (state.recorder) { state.recorder.stop(); return; }
  showError('');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError('Recording needs a secure page: open Harken over HTTPS or on localhost.');
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    showError(`The microphone is not available: ${e.message}`);
    return;
  }
  // Chromium and Firefox record WebM/Opus, Safari MP4/AAC: the server decodes all of them.
  const types = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/mp4'];
  const mimeType = types.find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
  const chunks = [];
  const started = performance.now();
  const timer = setInterval(() => {
    $('rec-time').textContent = `Recording ${fmtClock((performance.now() - started) / 1000)}`;
  }, 200);
  recorder.ondataavailable = (e) => { if (e.data.size > 0) chunks.push(e.data); };
  recorder.onstop = () => {
    clearInterval(timer);
    stream.getTracks().forEach((t) => t.stop());
    state.recorder = null;
    button.textContent = 'Record from microphone';
    button.setAttribute('aria-pressed', 'false');
    $('rec-time').textContent = '';
    const type = recorder.mimeType || 'audio/webm';
    const ext = type.includes('ogg') ? 'ogg' : type.includes('mp4') ? 'm4a' : 'webm';
    transcribe(new Blob(chunks, { type }), `recording.${ext}`);
  };
  state.recorder = recorder;
  recorder.start(250);
  button.textContent = 'Stop and transcribe';
  button.setAttribute('aria-pressed', 'true');
  setStatus('Recording… press the button again to stop.');
}

function init() {
  $('file').addEventListener('change', (e) => {
    const f = e.target.files && e.target.files[0];
    if (f) transcribe(f, f.name);
    e.target.value = '';
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer.files && e.dataTransfer.files[0];
    if (f) transcribe(f, f.name);
  });
  $('record').addEventListener('click', toggleRecording);
  document.querySelectorAll('.downloads button').forEach((b) => {
    b.addEventListener('click', () => download(b.dataset.format));
  });
  const player = $('player');
  player.addEventListener('play', () => requestAnimationFrame(tick));
  player.addEventListener('seeked', () => highlight(player.currentTime));
  player.addEventListener('timeupdate', () => highlight(player.currentTime));
  $('key-panel').addEventListener('submit', (e) => {
    e.preventDefault();
    state.key = $('key').value.trim();
    sessionStorage.setItem('harken-api-key', state.key);
    $('key-panel').hidden = true;
    showError('');
    loadModels();
  });
  loadModels();
}

init();
