"""Our page on the Dask dashboard: the W-tilde block map of the run the scheduler is serving.

Kept as one module (about 500 lines, 150 of them the page's HTML and JavaScript in ``_PAGE``): it is the routes
module that distributed imports by name on the scheduler (``routes``, :data:`ROUTE_MODULES`), and the state it
reads (block states, fit progress), the JSON and the page that draws that JSON change together, one field at a
time; split, each such change would touch three modules. What is shared lives elsewhere already: the block
states in :mod:`wtilde_dask.blockstate` (with the PNG block map), the fit's image route in :mod:`wtilde_dask.fit.view`.

Served by the scheduler's own web server (the one behind the Dask dashboard, port 8787 by default):

* ``/wtilde/blocks`` — an HTML page drawing the upper triangle of blocks coloured done / running /
  pending / failed, with counts, rate and ETA; it refreshes itself every second;
* ``/wtilde/blocks.json`` — the same state as JSON (for scripts and tests);
* an entry "W-tilde Block Map" in the Dask dashboard's "More..." menu (when installed at run time);
* beside the block map, the live fit view: for every lens-model fit of the store (``wtilde fit`` /
  :func:`wtilde_dask.fit.run.run_fit`), its state, likelihood evaluations, evaluation rate, log Z so far
  (+- error), the best log likelihood and point so far, and the source reconstruction at that point
  (``/wtilde/fit/reconstruction.png?name=NAME``, drawn on the scheduler in a thread from the store's JAX
  likelihood, redrawn when the best point changes); the same as JSON under ``fits`` in ``blocks.json``.

Where the state comes from (read at each request, on the scheduler):

* the scheduler metadata ``"wtilde"`` that :func:`wtilde_dask.compute.compute` publishes with
  ``client.set_metadata("wtilde", {...})`` (store path, n_blocks_side, done, failed, rate, ETA, method);
* the store's ledger (the truth for "done"), when the scheduler can read the store path;
* the fits: :class:`wtilde_dask.store.fit.FitRecord` progress of every fit in the store named by the scheduler
  metadata ``"wtilde_fit"`` (``{"store": path}``, published by :func:`publish_fit`) or else by ``"wtilde"``;
* the states of the tasks whose keys are ``w_tilde-block-(bi,bj)-RUN`` (RUN: the published ``key_token``): processing -> running,
  memory (finished, not yet in the ledger) -> running, erred -> failed, the rest pending.
  "done" is never taken from task states, so the page never runs ahead of the ledger.

Two ways to switch it on:

1. at run time, on any scheduler (local, SLURM, a remote address): :func:`install` ``(client)``
   — :func:`wtilde_dask.cluster.cluster_client` does this for you and prints the page's link;
2. through Dask's config before a scheduler starts: add ``"wtilde_dask.dashboard"`` and
   ``"wtilde_dask.fit.view"`` (:data:`ROUTE_MODULES`) to ``distributed.scheduler.http.routes`` (each has the
   ``routes`` list distributed expects),
   e.g. ``with dask.config.set({"distributed.scheduler.http.routes": with_routes()}): LocalCluster()``.
"""

from __future__ import annotations

import json
import threading
import time as _time

import numpy as np

from distributed.http.utils import RequestHandler

from wtilde_dask.blockstate import (
    BLOCK_COLOURS,
    BLOCK_KEY_RE,
    DONE,
    FAILED,
    LOWER,
    PENDING,
    RUNNING,
    block_counts,
    block_states,
    block_title,
)

__all__ = ["PAGE_PATH", "JSON_PATH", "FIT_IMAGE_PATH", "routes", "install", "page_link", "with_routes",
           "scheduler_block_state", "scheduler_fit_state", "fit_progress_rows", "publish_fit"]

PAGE_PATH = "wtilde/blocks"
JSON_PATH = "wtilde/blocks.json"
FIT_IMAGE_PATH = "wtilde/fit/reconstruction.png"
METADATA_KEY = "wtilde"
FIT_METADATA_KEY = "wtilde_fit"
_STATE_CHARS = {LOWER: ".", PENDING: "p", DONE: "d", RUNNING: "r", FAILED: "f"}
# a finished task ("memory") is in flight until the orchestrator writes it to the ledger: shown running,
# so that "done" on the page never runs ahead of the ledger
_TASK_STATE = {"processing": RUNNING, "memory": RUNNING, "erred": FAILED}

# ledger reads are cached for a short time: the page polls every second, possibly from several browsers
_LEDGER_CACHE: dict[str, tuple[float, np.ndarray | None]] = {}
_LEDGER_TTL_S = 0.5
_LOCK = threading.Lock()


def _read_ledger(store_path: str) -> np.ndarray | None:
    now = _time.monotonic()
    with _LOCK:
        hit = _LEDGER_CACHE.get(store_path)
        if hit is not None and now - hit[0] < _LEDGER_TTL_S:
            return hit[1]
    try:
        from wtilde_dask.store import WTildeStore

        ledger = np.asarray(WTildeStore.open(store_path).ledger())
    except Exception:  # noqa: BLE001 - the store may be elsewhere (remote scheduler) or being created
        ledger = None
    with _LOCK:
        _LEDGER_CACHE[store_path] = (now, ledger)
    return ledger


def scheduler_block_state(scheduler) -> dict:
    """The block map of the run on ``scheduler`` (a distributed.Scheduler) as a JSON-able dict.

    Keys: ``active`` (False when no run has published metadata), ``n_blocks_side``, ``states`` (one
    string per block row, characters ``d`` done, ``r`` running, ``p`` pending, ``f`` failed, ``.``
    below the diagonal), ``counts`` {done, running, pending, failed, total}, ``ledger_read`` (whether
    done came from the store's ledger), ``metadata`` (what compute published), ``title``, ``tasks``
    (number of block tasks the scheduler knows), ``time`` (unix seconds).
    """
    metadata = scheduler.get_metadata([METADATA_KEY], default=None)
    token = metadata.get("key_token") if isinstance(metadata, dict) else None
    running, failed = [], []
    n_tasks = 0
    for key, ts in list(scheduler.tasks.items()):
        match = BLOCK_KEY_RE.match(key) if isinstance(key, str) else None
        if match is None or (token and match.group(3) and match.group(3) != token):
            continue  # not a block task, or a block task of another store's run
        n_tasks += 1
        code = _TASK_STATE.get(ts.state)
        block = (int(match.group(1)), int(match.group(2)))
        if code == RUNNING:
            running.append(block)
        elif code == FAILED:
            failed.append(block)
    out: dict = {"active": metadata is not None, "metadata": metadata, "tasks": n_tasks, "time": _time.time()}
    if not isinstance(metadata, dict):
        out.update(n_blocks_side=0, states=[], counts=block_counts(np.zeros((0, 0))), ledger_read=False, title="no run yet")
        return out
    ledger = _read_ledger(str(metadata["store"])) if metadata.get("store") else None
    nb = int(metadata.get("n_blocks_side") or (ledger.shape[0] if ledger is not None else 0))
    if ledger is not None and ledger.shape != (nb, nb):
        ledger = None
    states = block_states(ledger, n_blocks_side=nb, running=running, failed=failed)
    counts = block_counts(states)
    if ledger is None:  # positions of finished blocks unknown: take the published counts
        published = int(metadata.get("done", 0)) + int(metadata.get("skipped", 0))
        counts["done"] = max(counts["done"], published)
        counts["failed"] = max(counts["failed"], int(metadata.get("failed", 0)))
        counts["pending"] = max(counts["total"] - counts["done"] - counts["running"] - counts["failed"], 0)
    eta = metadata.get("eta_s")
    rate = metadata.get("rate_blocks_per_s")
    out.update(
        n_blocks_side=nb,
        states=["".join(_STATE_CHARS[int(c)] for c in row) for row in states],
        counts=counts,
        ledger_read=ledger is not None,
        title=block_title(counts, eta, rate),
    )
    return out


# ----------------------------------------------------------------------------------------------
# The live fit view
# ----------------------------------------------------------------------------------------------
FIT_FIELDS = ("state", "n_evaluations", "evaluations_per_second", "log_evidence", "log_evidence_error",
              "max_log_likelihood", "best", "updated")


def fit_progress_rows(store_path) -> list[dict]:
    """One dict per fit of the store at ``store_path``: ``name`` and :data:`FIT_FIELDS` of its
    :class:`~wtilde_dask.store.fit.FitRecord` progress (missing ones None); [] without fits or store."""
    try:
        from wtilde_dask.store.fit import FitRecord, fit_names

        names = fit_names(store_path)
    except Exception:  # noqa: BLE001 - the store may be elsewhere (remote scheduler) or being created
        return []
    rows = []
    for name in names:
        try:
            progress = FitRecord(store_path, name).progress()
        except Exception:  # noqa: BLE001 - a fit being created or deleted right now
            continue
        rows.append({"name": name, **{k: progress.get(k) for k in FIT_FIELDS}})
    return rows


def _fit_store(scheduler) -> str | None:
    for key in (FIT_METADATA_KEY, METADATA_KEY):
        md = scheduler.get_metadata([key], default=None)
        if isinstance(md, dict) and md.get("store"):
            return str(md["store"])
    return None


def scheduler_fit_state(scheduler) -> dict:
    """{"store": path or None, "fits": [fit_progress_rows]} of the store the scheduler's metadata names."""
    store = _fit_store(scheduler)
    return {"store": store, "fits": fit_progress_rows(store) if store else []}


def publish_fit(client, store_path, name: str = "default") -> None:
    """Name the store (and fit) whose fits the page shows: scheduler metadata ``"wtilde_fit"``."""
    client.set_metadata(FIT_METADATA_KEY, {"store": str(store_path), "name": str(name)})


def _fmt(value, spec: str, missing: str = "–") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return missing
    return format(v, spec) if np.isfinite(v) else missing


def fit_table_html(fit_state: dict) -> str:
    """The fit view's table (HTML) of :func:`scheduler_fit_state`, as the page's script draws it."""
    import html

    fits = fit_state.get("fits") or []
    if not fits:
        return '<p class="nofit">No lens-model fit in this store yet.</p>'
    head = ("<tr><th>fit</th><th>state</th><th>evaluations</th><th>rate (1/s)</th><th>log Z so far</th>"
            "<th>best log L</th><th>best point</th></tr>")
    body = []
    for f in fits:
        best = f.get("best") or {}
        point = ", ".join(f"{html.escape(str(k))} = {_fmt(v, '.4f')}" for k, v in best.items()) if isinstance(best, dict) else ""
        log_z = _fmt(f.get("log_evidence"), ".3f")
        if log_z != "–" and f.get("log_evidence_error") is not None:
            log_z += " ± " + _fmt(f.get("log_evidence_error"), ".3f")
        n = f.get("n_evaluations")
        body.append(f'<tr data-fit="{html.escape(f["name"])}"><td>{html.escape(f["name"])}</td>'
                    f'<td>{html.escape(str(f.get("state") or "–"))}</td>'
                    f'<td class="evaluations">{int(n) if n is not None else "–"}</td>'
                    f'<td>{_fmt(f.get("evaluations_per_second"), ".2f")}</td><td>{log_z}</td>'
                    f'<td>{_fmt(f.get("max_log_likelihood"), ".3f")}</td><td>{point}</td></tr>')
    return f'<table class="fits">{head}{"".join(body)}</table>'


def _jsonable(obj):
    """Plain JSON values (NaN and infinities become null, which browsers' JSON.parse accepts)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)


class BlockMapJSON(RequestHandler):
    """GET /wtilde/blocks.json"""

    def get(self):
        state = scheduler_block_state(self.server)
        state["fit"] = scheduler_fit_state(self.server)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(_jsonable(state), allow_nan=False))


class BlockMapPage(RequestHandler):
    """GET /wtilde/blocks: the self-refreshing block-map page."""

    def get(self):
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        fit_state = scheduler_fit_state(self.server)
        self.write(_PAGE.replace("__COLOURS__", json.dumps(BLOCK_COLOURS))
                   .replace("__FIT_TABLE__", fit_table_html(fit_state)))


#: what ``distributed.scheduler.http.routes`` expects of a module: (path, handler class, kwargs)
routes: list[tuple] = [
    (PAGE_PATH, BlockMapPage, {}),
    (JSON_PATH, BlockMapJSON, {}),
]

#: the modules whose ``routes`` make up the page: the fit view's image and this one (block map, fit table)
#: (:mod:`wtilde_dask.fit.view`, above the fits in the layers); distributed imports each by name on the scheduler,
#: as it does for the ``distributed.scheduler.http.routes`` config
ROUTE_MODULES = ["wtilde_dask.fit.view", __name__]


def with_routes(modules: list[str] | None = None) -> list[str]:
    """The scheduler's HTTP route modules plus this one (for ``dask.config.set`` before a scheduler starts)."""
    import dask

    modules = list(modules if modules is not None else dask.config.get("distributed.scheduler.http.routes"))
    modules += [m for m in ROUTE_MODULES if m not in modules]
    return modules


def _install_on_scheduler(dask_scheduler=None, prefix: str = "/") -> bool:
    """Add our routes to a running scheduler's web server (idempotent). Runs on the scheduler."""
    from distributed.http.utils import get_handlers

    app = getattr(dask_scheduler, "http_application", None)
    if app is None:
        return False
    if getattr(dask_scheduler, "_wtilde_dashboard_installed", False):
        return True
    # already there through the config key?
    probe_paths = {str(getattr(rule.matcher, "regex", None) and rule.matcher.regex.pattern) for rule in _all_rules(app)}
    if not any(PAGE_PATH in p for p in probe_paths):
        handlers = get_handlers(server=dask_scheduler, modules=ROUTE_MODULES, prefix=prefix)
        app.add_handlers(r".*$", handlers)
    _add_menu_link(dask_scheduler)
    dask_scheduler._wtilde_dashboard_installed = True
    return True


MENU_ENTRY = {"url": PAGE_PATH, "name": "W-tilde Block Map"}


def _add_menu_link(dask_scheduler) -> bool:
    """Put our page into the Dask dashboard's "More..." menu (best effort: bokeh-internal structures).

    The bokeh pages share one ``template_variables["plots"]`` list (url, name); pages rendered after
    this call show the entry. Returns whether an entry is there.
    """
    found = False
    try:
        for app in getattr(dask_scheduler.http_application, "applications", []):
            for context in getattr(app, "_applications", {}).values():
                for handler in getattr(context.application, "handlers", []):
                    func = getattr(handler, "_func", None)
                    extra = func.args[1] if func is not None and len(getattr(func, "args", ())) > 1 else None
                    plots = extra.get("plots") if isinstance(extra, dict) else None
                    if isinstance(plots, list):
                        if not any(isinstance(p, dict) and p.get("url") == PAGE_PATH for p in plots):
                            plots.insert(0, dict(MENU_ENTRY))
                        found = True
    except Exception:  # noqa: BLE001 - the page works without the menu entry
        return False
    return found


def _all_rules(app):
    """The tornado rules of ``app`` one level deep (enough to see the routes a scheduler started with)."""
    rules = []
    for router in (app.default_router, app.wildcard_router):
        for rule in getattr(router, "rules", []):
            rules.append(rule)
            rules.extend(getattr(rule.target, "rules", None) or [])
    return rules


def page_link(client) -> str:
    """Full URL of the block-map page next to ``client.dashboard_link`` ('' without a dashboard)."""
    link = getattr(client, "dashboard_link", "") or ""
    if not link:
        return ""
    base = link.rsplit("/status", 1)[0] if "/status" in link else link.rstrip("/")
    return f"{base}/{PAGE_PATH}"


def install(client, *, prefix: str = "/") -> str:
    """Serve the block-map page on ``client``'s scheduler; return its URL ('' when the scheduler has no
    web server). Safe to call more than once, and on a scheduler that already has the route module."""
    try:
        ok = client.run_on_scheduler(_install_on_scheduler, prefix=prefix)
    except Exception:  # noqa: BLE001 - a scheduler refusing run_on_scheduler still runs the job
        return ""
    return page_link(client) if ok else ""


_PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>W-tilde block map</title>
<style>
 body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 16px 24px; color: #222; }
 h1 { font-size: 20px; margin: 0 0 4px 0; }
 #title { font-size: 15px; margin: 4px 0 8px 0; }
 #meta { font-size: 12px; color: #666; margin-bottom: 10px; }
 table.counts { border-collapse: collapse; margin-bottom: 12px; font-size: 14px; }
 table.counts td { padding: 2px 10px 2px 0; }
 .swatch { display: inline-block; width: 12px; height: 12px; margin-right: 6px; vertical-align: -1px; }
 #map { }
 a { color: #1f77b4; }
 #panes { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
 #fitview { flex: 1 1 360px; min-width: 320px; max-width: 720px; }
 #fitview h2 { font-size: 17px; margin: 0 0 6px 0; }
 table.fits { border-collapse: collapse; font-size: 13px; margin-bottom: 8px; }
 table.fits th, table.fits td { border-bottom: 1px solid #ddd; padding: 3px 8px 3px 0; text-align: left; vertical-align: top; }
 #fit-image { max-width: 520px; border: 1px solid #eee; }
</style>
</head>
<body>
<h1>W-tilde block map</h1>
<div id="title">waiting for the scheduler…</div>
<table class="counts">
 <tr><td><span class="swatch" id="sw-done"></span>done</td><td id="count-done">0</td>
     <td><span class="swatch" id="sw-running"></span>running</td><td id="count-running">0</td>
     <td><span class="swatch" id="sw-pending"></span>pending</td><td id="count-pending">0</td>
     <td><span class="swatch" id="sw-failed"></span>failed</td><td id="count-failed">0</td>
     <td>total</td><td id="count-total">0</td>
     <td>ETA</td><td id="eta">?</td></tr>
</table>
<div id="meta"></div>
<div id="panes">
<svg id="map" width="640" height="640" xmlns="http://www.w3.org/2000/svg"></svg>
<div id="fitview"><h2>Lens-model fits</h2>
<div id="fit-store"></div>
<div id="fit-table">__FIT_TABLE__</div>
<img id="fit-image" alt="" style="display:none">
</div>
</div>
<p style="font-size:12px;color:#666">Upper triangle of W-tilde blocks (bi &le; bj; W is symmetric). Done comes from the
store's ledger; running / failed from the scheduler's task states (<code>w_tilde-block-(bi,bj)-RUN</code>).
Fits: each fit's progress in the store (<code>wtilde fit</code>); the image is the source reconstruction at the best
point so far. Refreshes every second. <a href="blocks.json">JSON</a> · <a href="../status">Dask status</a></p>
<script>
const COLOURS = __COLOURS__;
const CODE = {d: "done", r: "running", p: "pending", f: "failed"};
for (const k of ["done", "running", "pending", "failed"]) {
  document.getElementById("sw-" + k).style.background = COLOURS[k];
}
function fmtEta(s) {
  if (s === null || s === undefined || !isFinite(s) || s < 0) return "?";
  s = Math.round(s);
  if (s >= 3600) return Math.floor(s / 3600) + " h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + " min";
  if (s >= 60) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
  return s + " s";
}
function draw(state) {
  document.body.dataset.updated = String(state.time);
  document.getElementById("title").textContent = state.active ? state.title : "No W-tilde run has published progress to this scheduler yet.";
  for (const k of ["done", "running", "pending", "failed", "total"]) {
    document.getElementById("count-" + k).textContent = state.counts[k];
  }
  const md = state.metadata || {};
  const done = state.counts.done, total = state.counts.total;
  document.getElementById("eta").textContent = (total && done >= total) ? "complete" : fmtEta(md.eta_s);
  document.getElementById("meta").textContent = state.active
    ? ("store " + md.store + " · method " + md.method + " · " + state.n_blocks_side + "×" + state.n_blocks_side +
       " blocks · " + state.tasks + " block tasks on the scheduler · done from " + (state.ledger_read ? "the ledger" : "published counts"))
    : "";
  const svg = document.getElementById("map");
  const nb = state.n_blocks_side;
  svg.style.display = nb ? "" : "none";  // no block map yet (e.g. a fit on a finished store): the fit view alone
  const key = nb + ":" + state.states.join("|");
  if (svg.dataset.key === key) return;  // nothing changed: keep the drawing (large maps redraw only on change)
  svg.dataset.key = key;
  const pad = 34, size = 640 - pad, cell = nb ? size / nb : size, gap = nb <= 64 ? 1 : 0;
  const step = Math.max(1, Math.ceil(nb / 10));
  let parts = [];
  for (let k = 0; k < nb; k += step) {  // block indices along the top (bj) and the left (bi)
    const c = pad + (k + 0.5) * cell;
    parts.push('<text x="' + c + '" y="' + (pad - 8) + '" font-size="11" text-anchor="middle" fill="#444">' + k + '</text>');
    parts.push('<text x="' + (pad - 6) + '" y="' + (c + 4) + '" font-size="11" text-anchor="end" fill="#444">' + k + '</text>');
  }
  if (nb) {
    parts.push('<text x="' + (pad + size / 2) + '" y="10" font-size="11" text-anchor="middle" fill="#666">block column bj</text>');
    parts.push('<text x="10" y="' + (pad + size / 2) + '" font-size="11" text-anchor="middle" fill="#666" transform="rotate(-90 10 ' + (pad + size / 2) + ')">block row bi</text>');
  }
  for (let i = 0; i < nb; i++) {
    const row = state.states[i];
    for (let j = i; j < nb; j++) {
      const name = CODE[row[j]];
      parts.push('<rect x="' + (pad + j * cell) + '" y="' + (pad + i * cell) + '" width="' + Math.max(cell - gap, 0.5) +
                 '" height="' + Math.max(cell - gap, 0.5) + '" fill="' + COLOURS[name] + '" class="block ' + name +
                 '" data-bi="' + i + '" data-bj="' + j + '"><title>(' + i + ',' + j + ') ' + name + '</title></rect>');
    }
  }
  svg.innerHTML = parts.join("");
}
function fmt(v, d) { return (v === null || v === undefined || !isFinite(v)) ? "–" : Number(v).toFixed(d); }
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c])); }
let fitImageKey = "";
function drawFits(fit) {
  if (!fit) return;
  document.getElementById("fit-store").textContent = fit.store ? ("store " + fit.store) : "";
  const fits = fit.fits || [];
  if (!fits.length) {
    document.getElementById("fit-table").innerHTML = '<p class="nofit">No lens-model fit in this store yet.</p>';
    document.getElementById("fit-image").style.display = "none";
    return;
  }
  let rows = ["<tr><th>fit</th><th>state</th><th>evaluations</th><th>rate (1/s)</th><th>log Z so far</th><th>best log L</th><th>best point</th></tr>"];
  for (const f of fits) {
    const best = f.best ? Object.entries(f.best).map(([k, v]) => esc(k) + " = " + fmt(v, 4)).join(", ") : "";
    let logz = fmt(f.log_evidence, 3);
    if (logz !== "–" && f.log_evidence_error !== null && f.log_evidence_error !== undefined) logz += " ± " + fmt(f.log_evidence_error, 3);
    rows.push('<tr data-fit="' + esc(f.name) + '"><td>' + esc(f.name) + "</td><td>" + esc(f.state || "–") + '</td><td class="evaluations">' +
              (f.n_evaluations === null || f.n_evaluations === undefined ? "–" : f.n_evaluations) + "</td><td>" + fmt(f.evaluations_per_second, 2) +
              "</td><td>" + logz + "</td><td>" + fmt(f.max_log_likelihood, 3) + "</td><td>" + best + "</td></tr>");
  }
  document.getElementById("fit-table").innerHTML = '<table class="fits">' + rows.join("") + "</table>";
  const shown = fits.find(f => f.state === "running") || fits[fits.length - 1];
  const key = shown.name + ":" + JSON.stringify(shown.best) + ":" + shown.max_log_likelihood;
  const img = document.getElementById("fit-image");
  if (shown.best && key !== fitImageKey) {
    fitImageKey = key;
    img.onload = () => { img.style.display = ""; };
    img.src = "fit/reconstruction.png?name=" + encodeURIComponent(shown.name) + "&t=" + Date.now();
    img.alt = "best-so-far reconstruction of fit " + shown.name;
  }
}
async function refresh() {
  try {
    const r = await fetch("blocks.json", {cache: "no-store"});
    if (r.ok) { const state = await r.json(); draw(state); drawFits(state.fit); }
  } catch (e) {
    document.getElementById("title").textContent = "scheduler not reachable (" + e + ")";
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""
