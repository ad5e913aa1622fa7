// tempora's web UI: a small page application over Temporal's HTTP API on this same port.
// Pages are built here from the API's JSON; nothing is fetched from anywhere else.
'use strict';

const $main = document.getElementById('main');
const $top = document.getElementById('top');
let timers = []; // polling of the current page, stopped when the page changes

// ---------------------------------------------------------------------------- helpers

function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
const enc = encodeURIComponent;

class ApiError extends Error {
  constructor(message, code, status) { super(message); this.code = code; this.status = status; }
}

// With authentication on, the API key (or JWT) the user signed in with, for this tab only.
const KEY = 'tempora.apiKey';
function credentials() {
  const key = sessionStorage.getItem(KEY);
  return key ? { authorization: `Bearer ${key}` } : {};
}

async function api(path, { method = 'GET', body } = {}) {
  const response = await fetch('/api/v1' + path, {
    method,
    headers: { ...credentials(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(json.message || response.statusText, json.code, response.status);
  return json;
}

function b64decode(s) {
  try {
    const bytes = Uint8Array.from(atob(s || ''), (c) => c.charCodeAt(0));
    return new TextDecoder().decode(bytes);
  } catch (e) { return null; }
}
function b64encode(s) {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  bytes.forEach((b) => { bin += String.fromCharCode(b); });
  return btoa(bin);
}

// One payload as a JS value where it can be read (json/plain), else a description.
function decodePayload(p) {
  if (!p) return null;
  const encoding = b64decode(p.metadata?.encoding);
  if (encoding === 'binary/null') return null;
  if (encoding === 'json/plain' || encoding === 'json/protobuf') {
    const text = b64decode(p.data);
    try { return JSON.parse(text); } catch (e) { return text; }
  }
  return { encoding, data: p.data || '' };
}
function decodePayloads(ps) {
  return (ps?.payloads || []).map(decodePayload);
}
function jsonPayloads(values) {
  return { payloads: values.map((v) => ({ metadata: { encoding: b64encode('json/plain') }, data: b64encode(JSON.stringify(v)) })) };
}
function pretty(v) {
  return `<pre class="json">${esc(JSON.stringify(v, null, 2))}</pre>`;
}

function time(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? esc(t) : d.toISOString().replace('T', ' ').replace('Z', ' UTC');
}
function millis(t) { return t ? new Date(t).getTime() : NaN; }
function duration(ms) {
  if (!isFinite(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)} m ${Math.round((ms % 60000) / 1000)} s`;
  return `${Math.floor(ms / 3600000)} h ${Math.round((ms % 3600000) / 60000)} m`;
}
const STATUS_NAMES = {
  RUNNING: 'Running', COMPLETED: 'Completed', FAILED: 'Failed', CANCELED: 'Canceled',
  TERMINATED: 'Terminated', CONTINUED_AS_NEW: 'ContinuedAsNew', TIMED_OUT: 'TimedOut',
};
// `WORKFLOW_EXECUTION_STATUS_TIMED_OUT` (or already `TimedOut`) → `TimedOut`, as queries spell it.
function statusName(s) {
  const key = String(s || '').replace('WORKFLOW_EXECUTION_STATUS_', '');
  return STATUS_NAMES[key] || String(s || '');
}
function badge(status) {
  const name = statusName(status);
  return `<span class="badge s-${esc(name.toLowerCase())}">${esc(name)}</span>`;
}
function eventName(t) {
  return String(t || '').replace('EVENT_TYPE_', '').toLowerCase().replace(/(^|_)\w/g, (c) => c.replace('_', '').toUpperCase());
}
// The attributes object of an event (the one `...EventAttributes` key).
function attrs(e) {
  const key = Object.keys(e).find((k) => k.endsWith('EventAttributes'));
  return key ? e[key] : {};
}

function link(href, text, cls = '') {
  return `<a href="${esc(href)}" data-link class="${cls}">${esc(text)}</a>`;
}
function go(href) {
  history.pushState(null, '', href);
  route();
}
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-link]');
  if (a && !e.ctrlKey && !e.metaKey && !e.shiftKey) {
    e.preventDefault();
    go(a.getAttribute('href'));
  }
});
window.addEventListener('popstate', route);

function flash(message, kind = 'ok') {
  const el = document.createElement('div');
  el.className = `flash ${kind}`;
  el.textContent = message;
  document.body.appendChild(el);
  setTimeout(() => el.remove(), 4000);
}
function showError(e) {
  flash(e.message || String(e), 'error');
}
function every(ms, fn) {
  const id = setInterval(fn, ms);
  timers.push(id);
}

// ---------------------------------------------------------------------------- layout

let namespaces = null;
async function header(ns) {
  if (!namespaces) {
    try {
      namespaces = (await api('/namespaces')).namespaces?.map((n) => n.namespaceInfo.name) || ['default'];
    } catch (e) {
      if (e.status === 401) throw e;
      namespaces = [ns];
    }
  }
  const nav = [
    ['Workflows', `/namespaces/${enc(ns)}/workflows`],
    ['Schedules', `/namespaces/${enc(ns)}/schedules`],
    ['Overview', `/namespaces/${enc(ns)}/overview`],
  ];
  $top.innerHTML = `
    <a href="/namespaces/${enc(ns)}/workflows" data-link class="brand">tempora</a>
    <nav>${nav.map(([t, h]) => link(h, t, location.pathname.startsWith(h) ? 'active' : '')).join('')}</nav>
    <label class="ns">Namespace
      <select id="ns-picker">${namespaces.map((n) => `<option ${n === ns ? 'selected' : ''}>${esc(n)}</option>`).join('')}</select>
    </label>`;
  document.getElementById('ns-picker').onchange = (e) => go(`/namespaces/${enc(e.target.value)}/workflows`);
}

async function route() {
  timers.forEach(clearInterval);
  timers = [];
  const parts = location.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] !== 'namespaces' || parts.length < 2) {
      history.replaceState(null, '', '/namespaces/default/workflows');
      return route();
    }
    const ns = parts[1];
    await header(ns);
    const [, , section, id, run] = parts;
    if (section === 'workflows' && id) return await workflowPage(ns, id, run);
    if (section === 'schedules' && id) return await schedulePage(ns, id);
    if (section === 'schedules') return await schedulesPage(ns);
    if (section === 'task-queues' && id) return await taskQueuePage(ns, id);
    if (section === 'overview') return await overviewPage(ns);
    return await workflowsPage(ns);
  } catch (e) {
    if (e.status === 401) return signIn(e.message);
    $main.innerHTML = `<div class="error-box">${esc(e.message)}</div>`;
  }
}

// The server asks for credentials: take an API key (or JWT) and try again with it.
function signIn(message) {
  namespaces = null;
  $top.innerHTML = '<span class="brand">tempora</span>';
  $main.innerHTML = `
    <h1>Sign in</h1>
    <p class="muted">${esc(message)}</p>
    <form id="sign-in" class="query">
      <input id="api-key" type="password" placeholder="API key or JWT" autocomplete="off" size="60">
      <button type="submit">Sign in</button>
    </form>`;
  document.getElementById('sign-in').onsubmit = (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById('api-key').value.trim());
    route();
  };
}

// ---------------------------------------------------------------------------- workflow list

const STATUSES = ['Running', 'Completed', 'Failed', 'Canceled', 'Terminated', 'ContinuedAsNew', 'TimedOut'];

async function workflowsPage(ns) {
  const params = new URLSearchParams(location.search);
  const query = params.get('query') || '';
  $main.innerHTML = `
    <h1>Workflows</h1>
    <form id="query-form" class="query">
      <input id="query" name="query" placeholder="WorkflowType = 'x' AND ExecutionStatus = 'Running'" value="${esc(query)}">
      <button>Filter</button>
      <button type="button" id="clear">Clear</button>
    </form>
    <div id="counts" class="counts"></div>
    <div class="batch">
      <button id="batch-cancel" disabled>Cancel selected</button>
      <button id="batch-terminate" disabled class="danger">Terminate selected</button>
      <span id="batch-note" class="muted"></span>
    </div>
    <table class="list" id="workflows">
      <thead><tr><th><input type="checkbox" id="all"></th><th>Status</th><th>Workflow ID</th><th>Run ID</th><th>Type</th><th>Start</th><th>End</th></tr></thead>
      <tbody></tbody>
    </table>
    <div class="pager"><button id="more" hidden>Next page</button></div>`;
  document.getElementById('query-form').onsubmit = (e) => {
    e.preventDefault();
    const q = document.getElementById('query').value.trim();
    go(`/namespaces/${enc(ns)}/workflows${q ? `?query=${enc(q)}` : ''}`);
  };
  document.getElementById('clear').onclick = () => go(`/namespaces/${enc(ns)}/workflows`);

  const counts = async () => {
    const groupBy = `${query ? `${query} ` : ''}GROUP BY ExecutionStatus`;
    try {
      const r = await api(`/namespaces/${enc(ns)}/workflow-count?query=${enc(groupBy)}`);
      const byStatus = {};
      for (const g of r.groups || []) byStatus[decodePayload(g.groupValues?.[0])] = Number(g.count);
      document.getElementById('counts').innerHTML = `<span class="count total">All <b>${Number(r.count || 0)}</b></span>` +
        STATUSES.map((s) => `<a data-link class="count" href="/namespaces/${enc(ns)}/workflows?query=${enc(`${query ? `(${query}) AND ` : ''}ExecutionStatus = '${s}'`)}">${badge(s)} <b>${byStatus[s] || 0}</b></a>`).join('');
    } catch (e) {
      document.getElementById('counts').innerHTML = `<div class="error-box">${esc(e.message)}</div>`;
    }
  };

  const tbody = document.querySelector('#workflows tbody');
  const more = document.getElementById('more');
  let token = '';
  const page = async () => {
    const r = await api(`/namespaces/${enc(ns)}/workflows?pageSize=50&query=${enc(query)}${token ? `&nextPageToken=${enc(token)}` : ''}`);
    const rows = (r.executions || []).map((w) => {
      const wid = w.execution.workflowId;
      const rid = w.execution.runId;
      return `<tr>
        <td><input type="checkbox" class="pick" data-wid="${esc(wid)}" data-rid="${esc(rid)}"></td>
        <td>${badge(w.status)}</td>
        <td>${link(`/namespaces/${enc(ns)}/workflows/${enc(wid)}/${enc(rid)}`, wid)}</td>
        <td class="mono">${esc(rid)}</td>
        <td>${esc(w.type?.name)}</td>
        <td>${time(w.startTime)}</td>
        <td>${time(w.closeTime)}</td></tr>`;
    });
    tbody.insertAdjacentHTML('beforeend', rows.join(''));
    if (!tbody.children.length) tbody.innerHTML = '<tr><td colspan="7" class="muted">No workflows</td></tr>';
    token = r.nextPageToken || '';
    more.hidden = !token;
  };
  more.onclick = () => page().catch(showError);
  await Promise.all([page(), counts()]);

  const picked = () => [...document.querySelectorAll('.pick:checked')].map((c) => ({ workflowId: c.dataset.wid, runId: c.dataset.rid }));
  const update = () => {
    const n = picked().length;
    document.getElementById('batch-cancel').disabled = !n;
    document.getElementById('batch-terminate').disabled = !n;
    document.getElementById('batch-note').textContent = n ? `${n} selected` : '';
  };
  tbody.onchange = update;
  document.getElementById('all').onchange = (e) => {
    document.querySelectorAll('.pick').forEach((c) => { c.checked = e.target.checked; });
    update();
  };
  const batch = async (kind) => {
    const executions = picked();
    if (!confirm(`${kind === 'terminate' ? 'Terminate' : 'Cancel'} ${executions.length} workflow(s)?`)) return;
    const jobId = `ui-${kind}-${Date.now()}`;
    const body = { namespace: ns, jobId, reason: `${kind} from the tempora UI`, executions };
    if (kind === 'terminate') body.terminationOperation = {};
    else body.cancellationOperation = {};
    try {
      await api(`/namespaces/${enc(ns)}/batch-operations/${enc(jobId)}`, { method: 'POST', body });
      flash(`Batch ${jobId} started`);
      setTimeout(route, 1000);
    } catch (e) { showError(e); }
  };
  document.getElementById('batch-cancel').onclick = () => batch('cancel');
  document.getElementById('batch-terminate').onclick = () => batch('terminate');
}

// ---------------------------------------------------------------------------- workflow detail

async function allHistory(ns, wid, rid) {
  let events = [];
  let token = '';
  do {
    const r = await api(`/namespaces/${enc(ns)}/workflows/${enc(wid)}/history?execution.runId=${enc(rid)}&maximumPageSize=1000${token ? `&nextPageToken=${enc(token)}` : ''}`);
    events = events.concat(r.history?.events || []);
    token = r.nextPageToken || '';
  } while (token);
  return events;
}

async function workflowPage(ns, wid, rid) {
  const path = `/namespaces/${enc(ns)}/workflows/${enc(wid)}`;
  const describe = await api(`${path}${rid ? `?execution.runId=${enc(rid)}` : ''}`);
  const info = describe.workflowExecutionInfo;
  rid = info.execution.runId;
  const state = { view: new URLSearchParams(location.search).get('view') || 'timeline', order: 'asc', events: [] };
  $main.innerHTML = `
    <h1>${esc(wid)} ${badge(info.status)}</h1>
    <div class="actions" id="actions"></div>
    <div id="summary"></div>
    <section><h2>Input and result</h2><div id="io" class="io"></div></section>
    <section id="pending"></section>
    <section>
      <h2>History <span class="muted" id="event-count"></span></h2>
      <div class="tabs">
        ${['timeline', 'compact', 'events', 'json'].map((v) => `<button data-view="${v}" class="${v === state.view ? 'active' : ''}">${v[0].toUpperCase() + v.slice(1)}</button>`).join('')}
        <button id="order">Descending</button>
      </div>
      <div id="history"></div>
    </section>
    <section><h2>Queries</h2><div id="queries"></div></section>`;

  const render = () => {
    const events = state.order === 'asc' ? state.events : [...state.events].reverse();
    document.getElementById('event-count').textContent = `${state.events.length} events`;
    const el = document.getElementById('history');
    if (state.view === 'timeline') el.innerHTML = timeline(state.events, info);
    else if (state.view === 'compact') el.innerHTML = compact(events);
    else if (state.view === 'json') el.innerHTML = pretty(events);
    else el.innerHTML = eventTable(events);
  };
  document.querySelectorAll('.tabs [data-view]').forEach((b) => {
    b.onclick = () => {
      state.view = b.dataset.view;
      // Kept in the address, so a reload (or the refresh after an action) shows the same view.
      history.replaceState(null, '', `${location.pathname}?view=${state.view}`);
      document.querySelectorAll('.tabs [data-view]').forEach((x) => x.classList.toggle('active', x === b));
      render();
    };
  });
  document.getElementById('order').onclick = (e) => {
    state.order = state.order === 'asc' ? 'desc' : 'asc';
    e.target.textContent = state.order === 'asc' ? 'Descending' : 'Ascending';
    render();
  };

  const refresh = async () => {
    const [d, events] = await Promise.all([
      api(`${path}?execution.runId=${enc(rid)}`),
      allHistory(ns, wid, rid),
    ]);
    const changed = events.length !== state.events.length || d.workflowExecutionInfo.status !== info.status;
    Object.assign(info, d.workflowExecutionInfo);
    state.events = events;
    summary(ns, d, events);
    pending(ns, d);
    io(events);
    if (changed) render();
    document.querySelector('h1').innerHTML = `${esc(wid)} ${badge(info.status)}`;
    return info.status === 'WORKFLOW_EXECUTION_STATUS_RUNNING';
  };
  const running = await refresh();
  actions(ns, wid, rid, info);
  queries(ns, wid, rid, running);
  if (running) {
    let busy = false;
    every(1000, async () => {
      if (busy) return;
      busy = true;
      try {
        if (!(await refresh())) {
          timers.forEach(clearInterval);
          actions(ns, wid, rid, info);
        }
      } catch (e) { /* keep the last view */ } finally { busy = false; }
    });
  }
}

function summary(ns, d, events) {
  const info = d.workflowExecutionInfo;
  const start = millis(info.startTime);
  const end = info.closeTime ? millis(info.closeTime) : Date.now();
  const rows = [
    ['Workflow type', esc(info.type?.name)],
    ['Run ID', `<span class="mono">${esc(info.execution.runId)}</span>`],
    ['Task queue', link(`/namespaces/${enc(ns)}/task-queues/${enc(info.taskQueue)}`, info.taskQueue)],
    ['Start', time(info.startTime)],
    ['End', time(info.closeTime)],
    ['Duration', duration(end - start)],
    ['History', `${Number(info.historyLength || events.length)} events, ${Number(info.historySizeBytes || 0)} bytes`],
  ];
  if (info.parentExecution) rows.push(['Parent', link(`/namespaces/${enc(ns)}/workflows/${enc(info.parentExecution.workflowId)}/${enc(info.parentExecution.runId)}`, info.parentExecution.workflowId)]);
  if (info.searchAttributes?.indexedFields) {
    const sa = Object.entries(info.searchAttributes.indexedFields).map(([k, v]) => `${esc(k)} = ${esc(JSON.stringify(decodePayload(v)))}`).join('<br>');
    if (sa) rows.push(['Search attributes', sa]);
  }
  if (info.memo?.fields) {
    const memo = Object.entries(info.memo.fields).map(([k, v]) => `${esc(k)} = ${esc(JSON.stringify(decodePayload(v)))}`).join('<br>');
    if (memo) rows.push(['Memo', memo]);
  }
  document.getElementById('summary').innerHTML = `<table class="kv">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function failureText(f) {
  if (!f) return '';
  let s = f.message || '';
  if (f.cause) s += `\ncaused by: ${failureText(f.cause)}`;
  return s;
}

function io(events) {
  const first = events[0] ? attrs(events[0]) : {};
  const last = events.length ? events[events.length - 1] : null;
  const a = last ? attrs(last) : {};
  let outcome = '<span class="muted">Running</span>';
  if (last?.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED') outcome = pretty(decodePayloads(a.result));
  else if (last?.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_FAILED') outcome = `<pre class="failure">${esc(failureText(a.failure))}</pre>`;
  else if (last?.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED') outcome = `<pre class="failure">Terminated: ${esc(a.reason)}</pre>`;
  else if (last?.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT') outcome = '<pre class="failure">Timed out</pre>';
  else if (last?.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED') outcome = '<pre class="failure">Canceled</pre>';
  else if (last?.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW') outcome = `<span>Continued as new: ${esc(a.newExecutionRunId)}</span>`;
  document.getElementById('io').innerHTML = `<div><h3>Input</h3>${pretty(decodePayloads(first.input))}</div><div><h3>Result</h3><div id="result">${outcome}</div></div>`;
}

function pending(ns, d) {
  const activities = d.pendingActivities || [];
  const children = d.pendingChildren || [];
  let html = '';
  if (activities.length) {
    html += `<h2>Pending activities</h2><table class="list" id="pending-activities"><thead><tr><th>Activity</th><th>Type</th><th>State</th><th>Attempt</th><th>Last failure</th><th>Heartbeat</th><th>Next attempt</th></tr></thead><tbody>` +
      activities.map((a) => `<tr><td>${esc(a.activityId)}</td><td>${esc(a.activityType?.name)}</td>
        <td>${esc(String(a.state || '').replace('PENDING_ACTIVITY_STATE_', ''))}${a.paused ? ' (paused)' : ''}</td>
        <td>${esc(a.attempt)}${a.maximumAttempts ? ` / ${esc(a.maximumAttempts)}` : ''}</td>
        <td><pre class="failure">${esc(failureText(a.lastFailure))}</pre></td>
        <td>${a.heartbeatDetails ? esc(JSON.stringify(decodePayloads(a.heartbeatDetails))) : ''} ${time(a.lastHeartbeatTime)}</td>
        <td>${time(a.nextAttemptScheduleTime)}</td></tr>`).join('') + '</tbody></table>';
  }
  if (children.length) {
    html += `<h2>Pending children</h2><table class="list"><thead><tr><th>Workflow ID</th><th>Type</th></tr></thead><tbody>` +
      children.map((c) => `<tr><td>${link(`/namespaces/${enc(ns)}/workflows/${enc(c.workflowId)}/${enc(c.runId)}`, c.workflowId)}</td><td>${esc(c.workflowTypeName)}</td></tr>`).join('') + '</tbody></table>';
  }
  document.getElementById('pending').innerHTML = html;
}

// Activities, timers and children as bars over the run's time.
function timeline(events, info) {
  if (!events.length) return '<p class="muted">No events</p>';
  const t0 = millis(events[0].eventTime);
  const tEnd = Math.max(info.closeTime ? millis(info.closeTime) : Date.now(), millis(events[events.length - 1].eventTime), t0 + 1);
  const rows = [];
  const byId = {};
  for (const e of events) {
    const a = attrs(e);
    const t = millis(e.eventTime);
    const id = Number(e.eventId);
    switch (e.eventType) {
      case 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED':
        byId[id] = { kind: 'activity', label: `${a.activityType?.name} (${a.activityId})`, start: t, end: null, state: 'running' };
        rows.push(byId[id]);
        break;
      case 'EVENT_TYPE_ACTIVITY_TASK_COMPLETED':
      case 'EVENT_TYPE_ACTIVITY_TASK_FAILED':
      case 'EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT':
      case 'EVENT_TYPE_ACTIVITY_TASK_CANCELED': {
        const row = byId[Number(a.scheduledEventId)];
        if (row) { row.end = t; row.state = eventName(e.eventType).replace('ActivityTask', '').toLowerCase(); }
        break;
      }
      case 'EVENT_TYPE_TIMER_STARTED':
        byId[`timer-${a.timerId}`] = { kind: 'timer', label: `Timer ${a.timerId} (${a.startToFireTimeout || ''})`, start: t, end: null, state: 'running' };
        rows.push(byId[`timer-${a.timerId}`]);
        break;
      case 'EVENT_TYPE_TIMER_FIRED':
      case 'EVENT_TYPE_TIMER_CANCELED': {
        const row = byId[`timer-${a.timerId}`];
        if (row) { row.end = t; row.state = e.eventType.endsWith('FIRED') ? 'completed' : 'canceled'; }
        break;
      }
      case 'EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED':
        byId[id] = { kind: 'child', label: `Child ${a.workflowType?.name} (${a.workflowId})`, start: t, end: null, state: 'running' };
        rows.push(byId[id]);
        break;
      case 'EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED':
      case 'EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED':
      case 'EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED':
      case 'EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED':
      case 'EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT': {
        const row = byId[Number(a.initiatedEventId)];
        if (row) { row.end = t; row.state = e.eventType.endsWith('COMPLETED') ? 'completed' : 'failed'; }
        break;
      }
      case 'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED':
        rows.push({ kind: 'signal', label: `Signal ${a.signalName}`, start: t, end: t, state: 'completed' });
        break;
      default:
    }
  }
  const width = 1000;
  const rowHeight = 22;
  const x = (t) => 220 + ((t - t0) / (tEnd - t0)) * (width - 230);
  const bars = [{ kind: 'workflow', label: info.type?.name || 'workflow', start: t0, end: info.closeTime ? millis(info.closeTime) : null, state: info.closeTime ? 'completed' : 'running' }, ...rows]
    .map((r, i) => {
      const end = r.end ?? tEnd;
      const y = 20 + i * rowHeight;
      const w = Math.max(3, x(end) - x(r.start));
      return `<g class="bar ${esc(r.kind)} ${esc(r.state)}"><text x="4" y="${y + 14}">${esc(r.label).slice(0, 40)}</text>
        <rect x="${x(r.start)}" y="${y + 3}" width="${w}" height="${rowHeight - 8}" rx="3"><title>${esc(r.label)}: ${duration(end - r.start)} (${esc(r.state)})</title></rect></g>`;
    });
  const height = 30 + bars.length * rowHeight;
  return `<svg class="timeline" viewBox="0 0 ${width} ${height}" width="100%"><text x="220" y="12" class="axis">${time(events[0].eventTime)}</text><text x="${width - 10}" y="12" text-anchor="end" class="axis">+${duration(tEnd - t0)}</text>${bars.join('')}</svg>`;
}

function eventSummary(e) {
  const a = attrs(e);
  if (a.activityType) return `${a.activityType.name} ${a.activityId || ''}`;
  if (a.signalName) return `${a.signalName} ${JSON.stringify(decodePayloads(a.input))}`;
  if (a.timerId) return `timer ${a.timerId} ${a.startToFireTimeout || ''}`;
  if (a.result) return JSON.stringify(decodePayloads(a.result));
  if (a.failure) return failureText(a.failure);
  if (a.reason) return a.reason;
  if (a.workflowType) return a.workflowType.name;
  return '';
}

function compact(events) {
  return `<ol class="compact">${events.map((e) => `<li><span class="eid">${esc(e.eventId)}</span> <b>${esc(eventName(e.eventType))}</b> <span class="muted">${esc(eventSummary(e)).slice(0, 200)}</span></li>`).join('')}</ol>`;
}

function eventTable(events) {
  return `<table class="list events"><thead><tr><th>#</th><th>Time</th><th>Event</th><th>Details</th></tr></thead><tbody>${events.map((e) => `<tr><td>${esc(e.eventId)}</td><td>${time(e.eventTime)}</td><td>${esc(eventName(e.eventType))}</td><td><details><summary>${esc(eventSummary(e)).slice(0, 120) || 'attributes'}</summary>${pretty(attrs(e))}</details></td></tr>`).join('')}</tbody></table>`;
}

function actions(ns, wid, rid, info) {
  const running = info.status === 'WORKFLOW_EXECUTION_STATUS_RUNNING';
  const path = `/namespaces/${enc(ns)}/workflows/${enc(wid)}`;
  const el = document.getElementById('actions');
  el.innerHTML = `
    ${running ? `<button id="signal">Signal</button><button id="update">Update</button><button id="cancel">Cancel</button><button id="terminate" class="danger">Terminate</button>` : ''}
    <button id="reset">Reset</button>`;
  const execution = { workflowId: wid, runId: rid };
  const ask = (what, fallback = '') => prompt(what, fallback);
  const input = (text) => {
    if (text === null || text.trim() === '') return undefined;
    return jsonPayloads([JSON.parse(text)]);
  };
  const act = async (fn, done) => {
    try { await fn(); flash(done); setTimeout(route, 300); } catch (e) { showError(e); }
  };
  if (running) {
    document.getElementById('signal').onclick = () => {
      const name = ask('Signal name');
      if (!name) return;
      const args = ask('Signal input (JSON, empty for none)', '');
      act(() => api(`${path}/signal/${enc(name)}`, { method: 'POST', body: { workflowExecution: execution, signalName: name, input: input(args), identity: 'tempora-ui' } }), `Signal ${name} sent`);
    };
    document.getElementById('update').onclick = () => {
      const name = ask('Update name');
      if (!name) return;
      const args = ask('Update input (JSON, empty for none)', '');
      act(async () => {
        const r = await api(`${path}/update/${enc(name)}`, { method: 'POST', body: {
          workflowExecution: execution,
          request: { meta: { updateId: `ui-${Date.now()}`, identity: 'tempora-ui' }, input: { name, args: input(args) } },
          waitPolicy: { lifecycleStage: 'UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED' },
        } });
        const outcome = r.outcome?.success ? JSON.stringify(decodePayloads(r.outcome.success)) : failureText(r.outcome?.failure);
        alert(`Update ${name}: ${outcome}`);
      }, `Update ${name} done`);
    };
    document.getElementById('cancel').onclick = () => {
      if (!confirm(`Cancel ${wid}?`)) return;
      act(() => api(`${path}/cancel`, { method: 'POST', body: { workflowExecution: execution, identity: 'tempora-ui', requestId: `ui-${Date.now()}` } }), 'Cancellation requested');
    };
    document.getElementById('terminate').onclick = () => {
      const reason = ask(`Terminate ${wid}? Reason:`, 'terminated from the tempora UI');
      if (reason === null) return;
      act(() => api(`${path}/terminate`, { method: 'POST', body: { workflowExecution: execution, reason, identity: 'tempora-ui' } }), 'Terminated');
    };
  }
  document.getElementById('reset').onclick = () => {
    const to = ask('Reset to: "first" (first workflow task), "last" (last completed workflow task) or an event id of a WorkflowTaskCompleted event', 'last');
    if (!to) return;
    act(async () => {
      const events = await allHistory(ns, wid, rid);
      const completed = events.filter((e) => e.eventType === 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED').map((e) => Number(e.eventId));
      let id = Number(to);
      if (to === 'first') id = completed[0];
      if (to === 'last') id = completed[completed.length - 1];
      if (!id) throw new Error('no completed workflow task to reset to');
      if (!confirm(`Reset ${wid} to event ${id}?`)) return;
      const r = await api(`${path}/reset`, { method: 'POST', body: {
        workflowExecution: execution, reason: 'reset from the tempora UI', workflowTaskFinishEventId: String(id), requestId: `ui-${Date.now()}`,
      } });
      go(`${path}/${enc(r.runId)}`);
    }, 'Reset');
  };
}

async function queries(ns, wid, rid, running) {
  const el = document.getElementById('queries');
  const path = `/namespaces/${enc(ns)}/workflows/${enc(wid)}`;
  const run = async (type, args) => {
    const body = { execution: { workflowId: wid, runId: rid }, query: { queryType: type } };
    if (args !== undefined) body.query.queryArgs = args;
    const r = await api(`${path}/query/${enc(type)}`, { method: 'POST', body });
    if (r.queryRejected) return { rejected: r.queryRejected.status };
    const values = decodePayloads(r.queryResult);
    return values.length === 1 ? values[0] : values;
  };
  if (!running) {
    el.innerHTML = '<p class="muted">Queries need a running workflow and a worker.</p>';
    return;
  }
  el.innerHTML = `<div class="query-row"><button id="stack">Call stack</button><select id="query-type"><option>__stack_trace</option></select><input id="query-args" placeholder="arguments (JSON)"><button id="run-query">Run query</button></div><div id="query-result"></div>`;
  const show = (v) => { document.getElementById('query-result').innerHTML = typeof v === 'string' ? `<pre class="stack">${esc(v)}</pre>` : pretty(v); };
  document.getElementById('stack').onclick = () => run('__stack_trace').then(show).catch((e) => show(`error: ${e.message}`));
  document.getElementById('run-query').onclick = () => {
    const type = document.getElementById('query-type').value;
    const text = document.getElementById('query-args').value.trim();
    run(type, text ? jsonPayloads([JSON.parse(text)]) : undefined).then(show).catch((e) => show(`error: ${e.message}`));
  };
  // The workflow's own queries, if its SDK answers the metadata query.
  run('__temporal_workflow_metadata').then((meta) => {
    const names = (meta?.definition?.queryDefinitions || []).map((q) => q.name).filter((n) => !n.startsWith('__'));
    const select = document.getElementById('query-type');
    names.forEach((n) => select.insertAdjacentHTML('beforeend', `<option>${esc(n)}</option>`));
  }).catch(() => {});
}

// ---------------------------------------------------------------------------- schedules

async function schedulesPage(ns) {
  const r = await api(`/namespaces/${enc(ns)}/schedules?maximumPageSize=100`);
  const rows = (r.schedules || []).map((s) => {
    const info = s.info || {};
    return `<tr><td>${link(`/namespaces/${enc(ns)}/schedules/${enc(s.scheduleId)}`, s.scheduleId)}</td>
      <td>${info.paused ? '<span class="badge s-paused">Paused</span>' : '<span class="badge s-running">Active</span>'}</td>
      <td>${esc(info.workflowType?.name)}</td>
      <td>${(info.futureActionTimes || []).slice(0, 1).map(time).join('')}</td>
      <td>${(info.recentActions || []).slice(-1).map((a) => time(a.actualTime)).join('')}</td></tr>`;
  });
  $main.innerHTML = `<h1>Schedules</h1><table class="list" id="schedules"><thead><tr><th>Schedule ID</th><th>State</th><th>Workflow type</th><th>Next run</th><th>Last run</th></tr></thead><tbody>${rows.join('') || '<tr><td colspan="5" class="muted">No schedules</td></tr>'}</tbody></table>`;
}

async function schedulePage(ns, id) {
  const path = `/namespaces/${enc(ns)}/schedules/${enc(id)}`;
  const d = await api(path);
  const s = d.schedule || {};
  const info = d.info || {};
  const paused = !!s.state?.paused;
  const action = s.action?.startWorkflow || {};
  $main.innerHTML = `
    <h1>${esc(id)} ${paused ? '<span class="badge s-paused">Paused</span>' : '<span class="badge s-running">Active</span>'}</h1>
    <div class="actions">
      <button id="pause">${paused ? 'Unpause' : 'Pause'}</button>
      <button id="trigger">Trigger now</button>
      <button id="backfill">Backfill</button>
      <button id="delete" class="danger">Delete</button>
    </div>
    <table class="kv">
      <tr><th>Workflow</th><td>${esc(action.workflowType?.name)} on ${esc(action.taskQueue?.name)} (id ${esc(action.workflowId)})</td></tr>
      <tr><th>Spec</th><td>${pretty(s.spec || {})}</td></tr>
      <tr><th>Notes</th><td>${esc(s.state?.notes)}</td></tr>
      <tr><th>Actions taken</th><td>${Number(info.actionCount || 0)}</td></tr>
      <tr><th>Next runs</th><td>${(info.futureActionTimes || []).map(time).join('<br>')}</td></tr>
      <tr><th>Recent runs</th><td>${(info.recentActions || []).map((a) => `${time(a.actualTime)} ${a.startWorkflowResult ? link(`/namespaces/${enc(ns)}/workflows/${enc(a.startWorkflowResult.workflowId)}/${enc(a.startWorkflowResult.runId)}`, a.startWorkflowResult.workflowId) : ''}`).join('<br>')}</td></tr>
      <tr><th>Running</th><td>${(info.runningWorkflows || []).map((w) => link(`/namespaces/${enc(ns)}/workflows/${enc(w.workflowId)}/${enc(w.runId)}`, w.workflowId)).join('<br>')}</td></tr>
    </table>`;
  const patch = (p, done) => api(`${path}/patch`, { method: 'POST', body: { patch: p, identity: 'tempora-ui', requestId: `ui-${Date.now()}` } })
    .then(() => { flash(done); route(); }).catch(showError);
  document.getElementById('pause').onclick = () => {
    const note = prompt(paused ? 'Unpause: note' : 'Pause: note', paused ? 'unpaused from the tempora UI' : 'paused from the tempora UI');
    if (note === null) return;
    patch(paused ? { unpause: note } : { pause: note }, paused ? 'Unpaused' : 'Paused');
  };
  document.getElementById('trigger').onclick = () => patch({ triggerImmediately: {} }, 'Triggered');
  document.getElementById('backfill').onclick = () => {
    const from = prompt('Backfill from (RFC 3339)', new Date(Date.now() - 3600000).toISOString());
    if (!from) return;
    const to = prompt('Backfill to (RFC 3339)', new Date().toISOString());
    if (!to) return;
    patch({ backfillRequest: [{ startTime: from, endTime: to }] }, 'Backfill requested');
  };
  document.getElementById('delete').onclick = () => {
    if (!confirm(`Delete schedule ${id}?`)) return;
    api(path, { method: 'DELETE' }).then(() => { flash('Deleted'); go(`/namespaces/${enc(ns)}/schedules`); }).catch(showError);
  };
}

// ---------------------------------------------------------------------------- task queues

async function taskQueuePage(ns, name) {
  const get = (type) => api(`/namespaces/${enc(ns)}/task-queues/${enc(name)}?taskQueueType=${type}&reportStats=true`);
  const [workflow, activity] = await Promise.all([get('TASK_QUEUE_TYPE_WORKFLOW'), get('TASK_QUEUE_TYPE_ACTIVITY')]);
  const section = (title, d) => {
    const pollers = d.pollers || [];
    const stats = d.stats || {};
    return `<h2>${title}</h2>
      <p>Backlog: <b>${Number(stats.approximateBacklogCount || 0)}</b> task(s)${stats.approximateBacklogAge ? `, oldest ${esc(stats.approximateBacklogAge)}` : ''}</p>
      <table class="list pollers"><thead><tr><th>Poller identity</th><th>Last access</th><th>Rate per second</th></tr></thead><tbody>
      ${pollers.map((p) => `<tr><td>${esc(p.identity)}</td><td>${time(p.lastAccessTime)}</td><td>${esc(p.ratePerSecond ?? '')}</td></tr>`).join('') || '<tr><td colspan="3" class="muted">No pollers</td></tr>'}
      </tbody></table>`;
  };
  $main.innerHTML = `<h1>Task queue ${esc(name)}</h1>${section('Workflow tasks', workflow)}${section('Activity tasks', activity)}`;
}

// ---------------------------------------------------------------------------- overview

async function overviewPage(ns) {
  $main.innerHTML = '<h1>Overview</h1><div id="overview"><p class="muted">Loading…</p></div>';
  const draw = async () => {
    const r = await fetch(`/ui/overview?namespace=${enc(ns)}`, { headers: credentials() }).then((x) => x.json());
    const chart = (title, series, unit) => {
      const width = 600;
      const height = 140;
      const max = Math.max(1, ...series.flatMap((s) => s.values));
      const lines = series.map((s) => {
        const pts = s.values.map((v, i) => `${(i / Math.max(1, s.values.length - 1)) * (width - 40) + 30},${height - 20 - (v / max) * (height - 40)}`).join(' ');
        return `<polyline class="line ${esc(s.name)}" points="${pts}"><title>${esc(s.name)}</title></polyline>`;
      }).join('');
      const legend = series.map((s) => `<span class="legend ${esc(s.name)}">${esc(s.name)} (${s.values.reduce((a, b) => a + b, 0)}${unit === 'ms' ? '' : ' total'})</span>`).join(' ');
      return `<div class="chart"><h2>${title}</h2><svg viewBox="0 0 ${width} ${height}" width="100%"><text x="2" y="14" class="axis">${max}${unit}</text><text x="2" y="${height - 22}" class="axis">0</text>${lines}<text x="30" y="${height - 4}" class="axis">-${r.minutes} min</text><text x="${width - 10}" y="${height - 4}" text-anchor="end" class="axis">now</text></svg><div>${legend}</div></div>`;
    };
    document.getElementById('overview').innerHTML =
      chart('Workflows per minute', [
        { name: 'started', values: r.started },
        { name: 'completed', values: r.completed },
        { name: 'failed', values: r.failed },
      ], '') +
      chart('Task schedule-to-start latency, p50 per minute', [
        { name: 'workflow-task', values: r.workflowTaskLatencyMs },
        { name: 'activity-task', values: r.activityTaskLatencyMs },
      ], 'ms');
  };
  await draw();
  every(5000, () => draw().catch(() => {}));
}

route();
