"""Test pages for the JavaScript client's browser tests: the waiting helpers and the classic-script page."""

from __future__ import annotations

__all__ = ["CLASSIC_PAGE", "HELPERS"]

# Waiting helpers of the test pages: until(predicate), nextEvent(ws, event), record(ws, ...events).
HELPERS = """
<script>
window.until = (predicate, ms = 5000) => new Promise((resolve, reject) => {
  const started = Date.now();
  const poll = () => {
    const value = predicate();
    if (value) resolve(value);
    else if (Date.now() - started > ms) reject(new Error("timed out waiting for " + predicate));
    else setTimeout(poll, 5);
  };
  poll();
});
window.nextEvent = (ws, event, ms = 5000) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("no " + event + " within " + ms + " ms")), ms);
  ws.once(event, (data) => { clearTimeout(timer); resolve(data); });
});
window.record = (ws, ...events) => {
  const log = [];
  for (const event of events) {
    ws.on(event, (data, frame) => log.push(event === "open" ? ["open"]
      : event === "close" ? ["close", data.code] : [event, data, frame && frame.seq]));
  }
  return log;
};
</script>
"""

CLASSIC_PAGE = f"""<!doctype html>
<meta charset="utf-8"><title>client.js</title>
<style>body {{ font: 16px sans-serif; margin: 2em; }} progress {{ width: 20em; }}</style>
<h1>client.js</h1>
<p><progress id="progress"></progress> <span id="label">waiting</span></p>
<p id="status">not started</p>
<script src="/static/tornado_websockets/client.js"></script>
<script src="/static/tornado_websockets/modules/progressbar.js"></script>
{HELPERS}
"""
