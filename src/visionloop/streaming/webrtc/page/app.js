// visionloop browser camera: WebRTC to the gateway, detections back on the "detections" data channel.
"use strict";
const $ = (id) => document.getElementById(id);
const vl = (window.vl = { messages: [], latencies: [], serverLatencies: [], pc: null, dc: null, error: null });
let markTimer = null;
let stream = null;

$("token").value = localStorage.getItem("visionloop-token") || "";

function setStatus(text) { $("status").textContent = text; }
function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function listDevices() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    for (const d of devices.filter((d) => d.kind === "videoinput")) {
      const option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || `camera ${$("device").length}`;
      $("device").appendChild(option);
    }
  } catch (e) { /* no media devices: the upload still works */ }
}

function iceGathered(pc) {
  // aiortc does not trickle ICE: send the offer once gathering is complete.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

function onMessage(event) {
  const message = JSON.parse(event.data);
  if (message.type !== "detections") return;
  const now = Date.now();
  vl.messages.push({ at: now, ...message });
  if (message.mark) vl.latencies.push(now - message.mark);
  vl.serverLatencies.push(message.server_latency_ms);
  const recent = vl.messages.filter((m) => m.at > now - 2000).length / 2;
  $("fps").textContent = recent.toFixed(1);
  $("latency").textContent = median(vl.latencies.slice(-50)) ?? "–";
  $("server").textContent = (median(vl.serverLatencies.slice(-50)) ?? 0).toFixed(1);
  $("model").textContent = message.model_version;
  const list = $("detections");
  const item = document.createElement("li");
  item.textContent = message.boxes.length
    ? message.boxes.map((b) => `${b.class_name ?? b.class_id} ${b.confidence.toFixed(2)}`).join(", ")
    : "nothing";
  list.prepend(item);
  while (list.children.length > 30) list.lastChild.remove();
}

async function start() {
  const token = $("token").value.trim();
  localStorage.setItem("visionloop-token", token);
  $("start").disabled = true;
  setStatus("asking for the camera…");
  try {
    const deviceId = $("device").value;
    const video = deviceId ? { deviceId: { exact: deviceId } } : { width: 640, height: 480, frameRate: 15 };
    stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
    $("local").srcObject = stream;
    const config = await (await fetch("/v1/webrtc/config")).json();
    const pc = (vl.pc = new RTCPeerConnection({ iceServers: config.iceServers }));
    const dc = (vl.dc = pc.createDataChannel("detections"));
    dc.onmessage = onMessage;
    dc.onopen = () => {
      // A mark every 200 ms; the server echoes it with the next frame it processes: camera -> detections time.
      markTimer = setInterval(() => dc.readyState === "open" && dc.send(JSON.stringify({ type: "mark", t: Date.now() })), 200);
    };
    pc.ontrack = (event) => { $("annotated").srcObject = event.streams[0] || new MediaStream([event.track]); };
    pc.onconnectionstatechange = () => setStatus(pc.connectionState);
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    await pc.setLocalDescription(await pc.createOffer());
    setStatus("connecting…");
    await iceGathered(pc);
    const response = await fetch("/v1/webrtc/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
    });
    if (!response.ok) throw new Error(`${response.status}: ${(await response.json()).detail}`);
    await pc.setRemoteDescription(await response.json());
    $("stop").disabled = false;
  } catch (error) {
    vl.error = String(error);
    setStatus(`error: ${error.message || error}`);
    stop();
  }
}

function stop() {
  clearInterval(markTimer);
  if (vl.pc) vl.pc.close();
  if (stream) stream.getTracks().forEach((t) => t.stop());
  vl.pc = vl.dc = stream = null;
  $("start").disabled = false;
  $("stop").disabled = true;
  if (!vl.error) setStatus("stopped");
}

async function upload() {
  const file = $("file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("image", file);
  const response = await fetch("/v1/detect", {
    method: "POST", body: form, headers: { Authorization: `Bearer ${$("token").value.trim()}` },
  });
  $("upload-result").textContent = JSON.stringify(await response.json(), null, 2);
}

$("start").onclick = start;
$("stop").onclick = stop;
$("send").onclick = upload;
listDevices();
