"""The HTML page: a prediction form generated from the contract's feature fields.

Self-contained (inline CSS and JS, no CDN) so it works offline and behind strict networks.
Every contract-derived string is escaped here; the script writes answers with textContent only.
"""

from __future__ import annotations

import json
from html import escape

from mlops.web.fields import Field, FormSpec
from mlops.web.models import MAX_BATCH_ROWS

_STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f6f9;
color:#1d2733}
header{background:#1f3a5f;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:1.4rem}
header p{margin:4px 0 0;opacity:.85;font-size:.9rem}
main{max-width:920px;margin:24px auto;padding:0 16px;display:grid;gap:20px;
grid-template-columns:minmax(0,3fr) minmax(0,2fr)}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:20px}
h2{margin:0 0 12px;font-size:1.1rem}
h2.later{margin-top:20px}
.field{margin-bottom:12px}
label{display:block;font-weight:600;font-size:.9rem;margin-bottom:4px}
.req{color:#b3261e}
.hint{font-weight:400;color:#5b6573;font-size:.8rem}
input,select{width:100%;padding:7px 9px;border:1px solid #b8c0cc;border-radius:5px;font-size:.95rem}
input[aria-invalid=true],select[aria-invalid=true]{border-color:#b3261e;background:#fff5f5}
.error{color:#b3261e;font-size:.8rem;min-height:1em;margin-top:2px}
button{background:#1f3a5f;color:#fff;border:0;border-radius:5px;padding:10px 18px;font-size:1rem;
cursor:pointer}
button:disabled{opacity:.6}
#result .value{font-size:2rem;font-weight:700;margin:8px 0}
dl{display:grid;grid-template-columns:auto 1fr;gap:4px 12px;font-size:.85rem;margin:0}
dt{color:#5b6573}
dd{margin:0;word-break:break-all}
#message{padding:8px 10px;border-radius:5px;font-size:.9rem;display:none}
#message.bad{display:block;background:#fdecea;color:#8c1d18}
footer{text-align:center;font-size:.8rem;color:#5b6573;margin:16px}
@media (max-width:700px){main{grid-template-columns:1fr}}
"""

# Reads field metadata from data attributes so the script never interpolates contract text.
_SCRIPT = r"""
(function () {
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const form = document.getElementById("predict-form");
  const msg = document.getElementById("message");
  const out = document.getElementById("result");
  function show(id, text) { document.getElementById(id).textContent = text == null ? "—" : text; }
  function clearErrors() {
    msg.className = ""; msg.textContent = "";
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const el of form.querySelectorAll(".error")) el.textContent = "";
  }
  function fail(text) { msg.className = "bad"; msg.textContent = text; }
  function row() {
    const data = {};
    for (const el of form.querySelectorAll("[data-type]")) {
      const raw = el.value.trim();
      const type = el.dataset.type;
      if (raw === "") { data[el.name] = null; continue; }
      if (type === "int" || type === "float") data[el.name] = Number(raw);
      else if (type === "bool") data[el.name] = raw === "true";
      else data[el.name] = raw;
    }
    return data;
  }
  function fmt(value) {
    if (typeof value !== "number") return String(value);
    return value.toLocaleString(undefined, {maximumFractionDigits: 2});
  }
  async function loadModel() {
    try {
      const res = await fetch(cfg.base + "/model", {headers: {accept: "application/json"}});
      const body = await res.json();
      if (res.ok) {
        show("model-version", body.version);
        show("model-trained", body.trained_at || (body.registered_at &&
          "registered " + body.registered_at));
        show("model-run", body.run_id);
      } else { show("model-version", "unavailable: " + (body.message || res.status)); }
    } catch (e) { show("model-version", "unavailable"); }
  }
  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    clearErrors();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const res = await fetch(cfg.base + "/predictions", {
        method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(row())
      });
      let body = {};
      try { body = await res.json(); } catch (e) { body = {message: "unreadable answer"}; }
      if (res.ok) {
        out.hidden = false;
        show("prediction", fmt(body.predictions[0]));
        const probs = body.probabilities ? JSON.stringify(body.probabilities[0]) : null;
        show("probability", probs);
        for (const id of ["probability", "probability-label"]) {
          document.getElementById(id).hidden = probs === null;
        }
        show("result-version", body.model.version); show("result-trained", body.model.trained_at);
        show("result-run", body.model.run_id);
      } else if (res.status === 422 && body.errors) {
        fail("Please correct the highlighted fields (" + body.message + ").");
        for (const err of body.errors) {
          const input = err.field ? form.elements.namedItem(err.field) : null;
          const slot = err.field ? document.getElementById("error-" + err.field) : null;
          if (input && slot) {
            input.setAttribute("aria-invalid", "true"); slot.textContent = err.message;
          }
          else { msg.textContent += " " + (err.field ? err.field + ": " : "") + err.message; }
        }
      } else {
        fail((body.message || "The request failed") + " (HTTP " + res.status + ")");
      }
    } catch (e) {
      fail("The API cannot be reached: " + e);
    } finally { button.disabled = false; }
  });
  loadModel();
})();
"""


def _fmt(number: float) -> str:
    return f"{number:g}"


def _input(field: Field) -> str:
    name = escape(field.name)
    common = f'id="f-{name}" name="{name}" data-type="{field.type}"'
    if field.required:
        common += " required"
    if field.allowed or field.type == "bool":
        options = list(field.allowed) if field.allowed else ["true", "false"]
        blank = "" if field.required else "(not given)"
        items = [f'<option value="">{escape(blank or "choose…")}</option>']
        items += [f'<option value="{escape(o)}">{escape(o)}</option>' for o in options]
        return f"<select {common}>{''.join(items)}</select>"
    if field.type in ("int", "float"):
        attrs = ' step="1"' if field.type == "int" else ' step="any"'
        if field.minimum is not None:
            attrs += f' min="{_fmt(field.minimum)}"'
        if field.maximum is not None:
            attrs += f' max="{_fmt(field.maximum)}"'
        return f'<input type="number" inputmode="decimal" {common}{attrs}>'
    if field.type == "datetime":
        return f'<input type="date" {common}>'
    return f'<input type="text" {common}>'


def _hint(field: Field) -> str:
    parts = [field.type]
    if field.minimum is not None or field.maximum is not None:
        low = _fmt(field.minimum) if field.minimum is not None else "…"
        high = _fmt(field.maximum) if field.maximum is not None else "…"
        parts.append(f"{low} to {high}")
    if field.description:
        parts.append(field.description)
    return escape(", ".join(parts))


def _field_block(field: Field) -> str:
    name = escape(field.name)
    star = ' <span class="req" title="required">*</span>' if field.required else ""
    return (
        f'<div class="field"><label for="f-{name}">{name}{star} '
        f'<span class="hint">{_hint(field)}</span></label>{_input(field)}'
        f'<div class="error" id="error-{name}" role="alert"></div></div>'
    )


def render_page(spec: FormSpec, base_path: str) -> str:
    """The complete HTML page; ``base_path`` is the API stage prefix (``/dev``) or empty."""
    config = json.dumps({"base": base_path, "maxRows": MAX_BATCH_ROWS}).replace("</", "<\\/")
    title = escape(f"Predict {spec.target} — {spec.dataset}")
    fields = "".join(_field_block(field) for field in spec.fields)
    docs = escape(f"{base_path}/docs")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{_STYLE}</style></head>
<body>
<header><h1>{title}</h1>
<p>A {escape(spec.task)} model trained by the serverless MLOps pipeline.
Fields marked <span>*</span> are required.</p></header>
<main>
<section><h2>Features</h2>
<form id="predict-form" novalidate>{fields}
<div id="message" role="status"></div>
<button type="submit">Predict</button></form></section>
<section><h2>Prediction</h2>
<div id="result" hidden><div class="value" id="prediction"></div>
<dl><dt id="probability-label">probabilities</dt><dd id="probability"></dd>
<dt>model version</dt><dd id="result-version"></dd>
<dt>trained at</dt><dd id="result-trained"></dd>
<dt>training run</dt><dd id="result-run"></dd></dl></div>
<h2 class="later">Serving model</h2>
<dl id="model"><dt>version</dt><dd id="model-version">…</dd>
<dt>trained at</dt><dd id="model-trained">…</dd>
<dt>training run</dt><dd id="model-run">…</dd></dl></section>
</main>
<footer>JSON API: POST {escape(base_path)}/predictions · <a href="{docs}">API docs</a></footer>
<script type="application/json" id="config">{config}</script>
<script>{_SCRIPT}</script>
</body></html>"""
