// The server's web page: microphone or file -> FunASR's WebSocket protocol -> live and final text.
// Audio leaves the page as 16 kHz 16-bit PCM in ~100 ms messages, as FunASR's HTML5 client sends it.
"use strict";
const RATE = 16000;
const $ = (id) => document.getElementById(id);
let socket = null, capture = null, pending = [], liveText = "", finalText = "";

function status(text, error) { $("status").textContent = text; $("status").className = error ? "error" : ""; }
function mode() { return document.querySelector("input[name=mode]:checked").value; }
function ms(t) { const s = t / 1000; return `${Math.floor(s / 60)}:${(s % 60).toFixed(2).padStart(5, "0")}`; }

function showSentences(sents) {
  const table = $("sentences");
  for (const s of sents || []) {
    const row = table.insertRow();
    row.insertCell().textContent = `${ms(s.start)} – ${ms(s.end)}`;
    row.insertCell().textContent = s.text_seg.replace(/ /g, "") + s.punc;
  }
}

function onMessage(event) {
  const m = JSON.parse(event.data);
  if (m.mode === "online" || m.mode === "2pass-online") {
    if (m.mode === "online" && m.is_final) { finalText = liveText + m.text; $("final").textContent = finalText; }
    else { liveText += m.text; $("partial").textContent = liveText; }
  } else {  // offline or 2pass-offline: a finished segment replaces the live text
    finalText += m.text; $("final").textContent = finalText;
    liveText = ""; $("partial").textContent = "";
    showSentences(m.stamp_sents);
  }
  if (m.is_final) { status("done"); $("final").dataset.done = "1"; socket.close(); }
}

function open(onOpen) {
  liveText = ""; finalText = ""; pending = [];
  $("partial").textContent = ""; $("final").textContent = ""; $("sentences").innerHTML = "";
  delete $("final").dataset.done;
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
  socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    const config = { mode: mode(), chunk_size: [5, 10, 5], chunk_interval: 10, wav_name: "browser",
                     is_speaking: true, wav_format: "pcm", audio_fs: RATE, itn: false };
    if ($("hotwords").value.trim()) config.hotwords = $("hotwords").value.trim();
    socket.send(JSON.stringify(config));
    onOpen();
  };
  socket.onmessage = onMessage;
  socket.onclose = (e) => { if (e.code !== 1000 && e.code !== 1005) status(`closed ${e.code}: ${e.reason}`, true); };
  socket.onerror = () => status("connection error", true);
}

function toPcm16(floats) {
  const out = new Int16Array(floats.length);
  for (let i = 0; i < floats.length; i++) {
    out[i] = Math.max(-32768, Math.min(32767, Math.round(floats[i] * 32768)));
  }
  return out;
}

// Linear-interpolation resampler that keeps its position across blocks (microphone -> 16 kHz).
function makeResampler(from) {
  const step = from / RATE; let pos = 0, last = 0;
  return (block) => {
    const out = [];
    while (pos < block.length) {
      const i = Math.floor(pos), frac = pos - i;
      const a = i === 0 ? (frac === 0 ? block[0] : last) : block[i - 1];
      const b = block[i];
      out.push(i === 0 && frac === 0 ? a : a + (b - a) * frac);
      pos += step;
    }
    pos -= block.length; last = block[block.length - 1];
    return Float32Array.from(out);
  };
}

async function startMic() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false,
    noiseSuppression: false, autoGainControl: false } });
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  const processor = context.createScriptProcessor(4096, 1, 1);
  const resample = makeResampler(context.sampleRate);
  processor.onaudioprocess = (e) => {
    const pcm = toPcm16(resample(e.inputBuffer.getChannelData(0)));
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(pcm.buffer);
  };
  source.connect(processor); processor.connect(context.destination);
  capture = { stream, context, processor };
  status(`recording (${context.sampleRate} Hz -> ${RATE} Hz)`);
}

function stopMic() {
  if (!capture) return;
  capture.processor.disconnect(); capture.stream.getTracks().forEach((t) => t.stop()); capture.context.close();
  capture = null;
  if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify({ is_speaking: false })); status("finishing"); }
}

async function sendFile() {
  const file = $("file").files[0];
  if (!file) { status("pick a file first", true); return; }
  // An OfflineAudioContext at 16 kHz decodes (and if needed resamples) the file.
  const decoder = new OfflineAudioContext(1, RATE, RATE);
  const audio = await decoder.decodeAudioData(await file.arrayBuffer());
  const samples = audio.getChannelData(0);
  open(() => {
    status(`sending ${file.name} (${(samples.length / RATE).toFixed(2)} s)`);
    const piece = RATE / 10;
    for (let i = 0; i < samples.length; i += piece) socket.send(toPcm16(samples.subarray(i, i + piece)).buffer);
    socket.send(JSON.stringify({ is_speaking: false }));
  });
}

$("start").onclick = () => {
  $("start").disabled = true; $("stop").disabled = false;
  open(() => startMic().catch((e) => status(`microphone: ${e}`, true)));
};
$("stop").onclick = () => { $("start").disabled = false; $("stop").disabled = true; stopMic(); };
$("send_file").onclick = () => sendFile().catch((e) => status(`file: ${e}`, true));

fetch("/health").then((r) => r.json()).then((h) => {
  $("model").textContent = `model ${h.model}, ${h.sample_rate} Hz, modes: ${h.modes.join(", ")}` +
    (h.hotwords ? ", hotwords" : "") + (h.punctuation ? ", punctuation" : "");
  for (const input of document.querySelectorAll("input[name=mode]")) input.disabled = !h.modes.includes(input.value);
  const best = ["2pass", "online", "offline"].find((m) => h.modes.includes(m));
  document.querySelector(`input[name=mode][value="${best}"]`).checked = true;
});
