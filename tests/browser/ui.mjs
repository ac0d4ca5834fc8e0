// The web page of `harken serve` in a real browser (Debian's Chromium, driven by playwright-core)
// against a real server with the tiny.en model: upload, word highlighting during playback,
// click-to-seek, progress on a long file, a fake microphone, the server's error message, the API
// key prompt, keyboard access, labels and a phone-width layout. Screenshots of each state go to
// the artifacts folder.
//
//   node tests/browser/ui.mjs <harken binary> <artifacts dir>
//
// The script starts each server in its own process group and kills the group on every exit path.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [harken, artifacts] = process.argv.slice(2);
if (!harken || !artifacts) {
  console.error('usage: node ui.mjs <harken binary> <artifacts dir>');
  process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });
const clip = path.join(root, 'testdata/audio/numbers_16k.wav'); // "Please call me at seven thirty on Tuesday."
const webm = path.join(root, 'testdata/audio/speech.webm'); // "The quick brown fox jumps over the lazy dog."

const servers = new Set();
function killAll() {
  for (const s of servers) {
    try { process.kill(-s.pid, 'SIGKILL'); } catch (_) { /* gone */ }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(1); });

async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  return port;
}

async function startServer(env = {}) {
  const port = await freePort();
  const log = fs.openSync(path.join(artifacts, `server-${port}.log`), 'w');
  const child = spawn(harken, ['serve', '--host', '127.0.0.1', '--port', String(port),
    '--model', 'tiny.en', '--workers', '1', '--threads', '2'], {
    env: { ...process.env, HARKEN_API_KEY: '', ...env },
    stdio: ['ignore', log, log],
    detached: true, // its own process group, killed as a whole
  });
  servers.add(child);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) throw new Error(`harken serve exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/ping`)).ok) return { url, child };
    } catch (_) { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('harken serve did not answer /ping');
}

async function stopServer({ child }) {
  process.kill(-child.pid, 'SIGTERM');
  const [code] = await once(child, 'exit');
  servers.delete(child);
  if (code !== 0) throw new Error(`harken serve exited with ${code} after SIGTERM`);
}

let failures = 0;
async function check(name, fn) {
  const started = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// A WAV of `clip` repeated `n` times (16-bit mono PCM, canonical 44-byte header).
function repeatedWav(file, n) {
  const wav = fs.readFileSync(file);
  const dataAt = wav.indexOf('data') + 8;
  const pcm = wav.subarray(dataAt, dataAt + wav.readUInt32LE(dataAt - 4));
  const body = Buffer.concat(Array(n).fill(pcm));
  const head = Buffer.from(wav.subarray(0, 44));
  head.writeUInt32LE(36 + body.length, 4);
  head.write('data', 36);
  head.writeUInt32LE(body.length, 40);
  return Buffer.concat([head, body]);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${clip}`],
});

async function newPage(url, viewport = { width: 1000, height: 900 }) {
  const context = await browser.newContext({ viewport, permissions: ['microphone'] });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(url);
  return { page, context, consoleErrors };
}

async function waitForResult(page, timeout = 60_000) {
  await page.waitForFunction(() => !document.getElementById('result').hidden
    || !document.getElementById('error').hidden, null, { timeout });
  const error = await page.locator('#error').isVisible();
  assert(!error, `the page shows an error: ${await page.locator('#error').textContent()}`);
  return (await page.locator('#transcript').textContent()).trim();
}

const open = await startServer();
try {
  await check('page: labels, keyboard, offline assets, no console errors', async () => {
    const { page, context, consoleErrors } = await newPage(open.url);
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.reload();
    assert(requests.every((u) => u.startsWith(open.url)), `off-origin requests: ${requests}`);
    const unlabeled = await page.evaluate(() => [...document.querySelectorAll('input, select')]
      .filter((el) => el.labels === null || el.labels.length === 0).map((el) => el.id));
    assert(unlabeled.length === 0, `controls without a label: ${unlabeled}`);
    // Keyboard only: Tab reaches the file input, and Space opens the file chooser.
    let reached = false;
    for (let i = 0; i < 10 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement && document.activeElement.id === 'file');
    }
    assert(reached, 'Tab never reaches the file input');
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Space')]);
    await chooser.setFiles(clip);
    const text = await waitForResult(page);
    assert(/tuesday/i.test(text), `keyboard upload transcript: ${text}`);
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors}`);
    await context.close();
  });

  await check('upload a WAV: transcript, language, segments, highlighting follows playback', async () => {
    const { page, context } = await newPage(open.url);
    await page.screenshot({ path: path.join(artifacts, '1-empty.png'), fullPage: true });
    await page.setInputFiles('#file', clip);
    const text = await waitForResult(page);
    assert(/please call me/i.test(text) && /tuesday/i.test(text), `transcript: ${text}`);
    const meta = await page.locator('#meta').textContent();
    assert(/english/i.test(meta), `meta: ${meta}`);
    assert(await page.locator('#segments li').count() >= 1, 'no segments listed');
    const words = await page.evaluate(() => [...document.querySelectorAll('#transcript .w')]
      .map((w) => ({ text: w.textContent, start: Number(w.dataset.start), end: Number(w.dataset.end) })));
    assert(words.length >= 6, `only ${words.length} words`);
    // Seeking: the highlighted word is the one whose span holds the time.
    for (const w of words) {
      const mid = (w.start + w.end) / 2;
      await page.evaluate((t) => { const p = document.getElementById('player'); p.currentTime = t; }, mid);
      await page.waitForFunction((t) => {
        const c = document.querySelector('#transcript .w.current');
        return c && Number(c.dataset.start) <= t && t <= Number(c.dataset.end) + 0.05;
      }, mid, { timeout: 5_000 });
    }
    // Playback: sample the highlighted word against the player's clock while it plays.
    await page.evaluate(() => { const p = document.getElementById('player'); p.currentTime = 0; p.muted = true; return p.play(); });
    const samples = [];
    for (let i = 0; i < 40; i++) {
      const s = await page.evaluate(() => {
        const p = document.getElementById('player');
        const c = document.querySelector('#transcript .w.current');
        return { t: p.currentTime, word: c && c.textContent, start: c && Number(c.dataset.start), end: c && Number(c.dataset.end), ended: p.ended };
      });
      if (s.ended) break;
      samples.push(s);
      if (i === 8) await page.screenshot({ path: path.join(artifacts, '2-playing.png'), fullPage: true });
      await page.waitForTimeout(70);
    }
    const highlighted = samples.filter((s) => s.word);
    const distinct = new Set(highlighted.map((s) => s.start));
    assert(distinct.size >= 4, `only ${distinct.size} distinct words highlighted during playback`);
    // One frame of slack either side: the sample reads the clock after the page drew.
    const wrong = highlighted.filter((s) => s.t < s.start - 0.1 || s.t > s.end + 0.15);
    assert(wrong.length === 0, `highlight off the clock: ${JSON.stringify(wrong)}`);
    // Clicking a word seeks there.
    await page.evaluate(() => document.getElementById('player').pause());
    const target = words[words.length - 1];
    await page.locator('#transcript .w').last().click();
    const t = await page.evaluate(() => document.getElementById('player').currentTime);
    assert(Math.abs(t - target.start) < 0.3, `click on "${target.text}" (${target.start}) seeked to ${t}`);
    // Downloads: SRT and VTT from the segments.
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('button[data-format=srt]')]);
    const srt = fs.readFileSync(await dl.path(), 'utf8');
    assert(/^1\n00:00:00,000 --> 00:00:0\d,\d{3}\n.*Tuesday/s.test(srt), `srt: ${srt}`);
    assert(dl.suggestedFilename() === 'numbers_16k.srt', dl.suggestedFilename());
    await page.screenshot({ path: path.join(artifacts, '3-transcript.png'), fullPage: true });
    await context.close();
  });

  await check('upload a WebM/Opus file (a browser recording format)', async () => {
    const { page, context } = await newPage(open.url);
    await page.setInputFiles('#file', webm);
    const text = await waitForResult(page);
    assert(/quick brown fox/i.test(text), `transcript: ${text}`);
    await context.close();
  });

  await check('a long file shows transcription progress', async () => {
    const { page, context } = await newPage(open.url);
    await page.evaluate(() => {
      window.statusLog = [];
      new MutationObserver(() => window.statusLog.push(document.getElementById('status').textContent))
        .observe(document.getElementById('status'), { childList: true, characterData: true, subtree: true });
    });
    await page.setInputFiles('#file', { name: 'long.wav', mimeType: 'audio/wav', buffer: repeatedWav(clip, 15) });
    const text = await waitForResult(page, 180_000);
    const log = await page.evaluate(() => window.statusLog);
    assert((text.match(/tuesday/gi) || []).length >= 8, `long transcript: ${text.slice(0, 200)}`);
    assert(log.some((s) => /^Transcribing: \d+:\d+\.\d of 0:47\.\d/.test(s)), `no progress shown: ${JSON.stringify(log)}`);
    await context.close();
  });

  await check('record from the (fake) microphone', async () => {
    const { page, context } = await newPage(open.url);
    // Keep what the page uploads: the browser's own recording, saved as an artifact.
    await page.evaluate(() => {
      const send = window.transcribe;
      window.transcribe = (blob, name) => {
        blob.arrayBuffer().then((b) => { window.recorded = { name, type: blob.type, bytes: [...new Uint8Array(b)] }; });
        send(blob, name);
      };
    });
    await page.click('#record');
    await page.waitForSelector('#record[aria-pressed=true]', { timeout: 10_000 });
    await page.waitForTimeout(3_600);
    await page.screenshot({ path: path.join(artifacts, '4-recording.png'), fullPage: true });
    await page.click('#record');
    const text = await waitForResult(page);
    assert(/call/i.test(text) && /tuesday/i.test(text), `recorded transcript: ${text}`);
    const rec = await page.evaluate(() => window.recorded);
    assert(rec && rec.name === 'recording.webm' && rec.type.startsWith('audio/webm'), `recorded ${rec && rec.name} ${rec && rec.type}`);
    const bytes = Buffer.from(rec.bytes);
    assert(bytes.readUInt32BE(0) === 0x1a45dfa3, 'the recording is not EBML (WebM)');
    fs.writeFileSync(path.join(artifacts, 'recording.webm'), bytes);
    await page.screenshot({ path: path.join(artifacts, '5-recorded.png'), fullPage: true });
    await context.close();
  });

  await check('an invalid file shows the server\'s error message', async () => {
    const { page, context } = await newPage(open.url);
    await page.setInputFiles('#file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not audio at all\n'.repeat(50)) });
    await page.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
    const msg = await page.locator('#error').textContent();
    assert(msg.includes('not a supported audio file') && msg.includes('HTTP 415'), `error: ${msg}`);
    await page.screenshot({ path: path.join(artifacts, '6-error.png'), fullPage: true });
    await context.close();
  });

  await check('phone width: no horizontal scrolling, controls reachable', async () => {
    const { page, context } = await newPage(open.url, { width: 375, height: 812 });
    await page.setInputFiles('#file', clip);
    await waitForResult(page);
    await page.click('#options summary');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 0, `page is ${overflow}px wider than the screen`);
    await page.screenshot({ path: path.join(artifacts, '7-phone.png'), fullPage: true });
    await context.close();
  });
} finally {
  await stopServer(open);
}

const keyed = await startServer({ HARKEN_API_KEY: 'sk-browser-test' });
try {
  await check('HARKEN_API_KEY: the page asks for the key and then works', async () => {
    const { page, context } = await newPage(keyed.url);
    await page.waitForSelector('#key-panel:not([hidden])', { timeout: 10_000 });
    await page.screenshot({ path: path.join(artifacts, '8-api-key.png'), fullPage: true });
    await page.fill('#key', 'wrong-key');
    await page.click('#key-panel button');
    await page.setInputFiles('#file', clip);
    await page.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
    assert((await page.locator('#error').textContent()).includes('HTTP 401'), 'wrong key not refused');
    await page.fill('#key', 'sk-browser-test');
    await page.click('#key-panel button');
    await page.setInputFiles('#file', clip);
    const text = await waitForResult(page);
    assert(/tuesday/i.test(text), `transcript with key: ${text}`);
    await context.close();
  });
} finally {
  await stopServer(keyed);
}

await browser.close();
console.log(failures === 0 ? 'browser: all checks passed' : `browser: ${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
