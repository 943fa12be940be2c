/* tandem workspace: the reviewer inbox, the task view, item pages with feedback, the owner
 * dashboard, the registry and the audit trail. One file, no framework, no build step.
 *
 * Design notes. The page is one hash-routed view at a time (#/inbox, #/task/ID, ...); a view
 * is an async function that fills <main> and registers what must stop when the view is left
 * (the event stream, timers) and its keys. Every request goes through api(), which sends the
 * token kept in sessionStorage, turns error answers into ApiError with the server's own
 * message, and sends the person back to sign-in on a 401. Nothing from the server is ever
 * put into innerHTML: h() builds elements and text nodes. */
'use strict';

const S = {
  token: sessionStorage.getItem('tdm.token') || '',
  me: null,
  gen: 0,           /* bumped on each navigation: an older view's late answers are dropped */
  cleanup: [],      /* functions to call when the view is left */
  after: '',        /* the page asked for before signing in */
  keys: null,       /* the current view's key map: {key: {label, run}} */
};

/* ---- small helpers ------------------------------------------------------------------- */

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}
const SVGNS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}
function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}
function append(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : String(k));
  }
}
const $ = (sel, root = document) => root.querySelector(sel);
const main = () => document.getElementById('main');
const sleep = ms => new Promise(r => setTimeout(r, ms));
const enc = encodeURIComponent;

function pct(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return (x * 100).toFixed(digits) + '%';
}
function num(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return Number(x).toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
function time(iso, withDate) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const t = d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
  if (!withDate && new Date().toDateString() === d.toDateString()) return t;
  return d.toLocaleDateString('en-GB', { day: 'numeric', month: 'short' }) + ' ' + t;
}
function dur(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return seconds + ' s';
  const m = Math.round(seconds / 60);
  if (m < 60) return m + ' min';
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return hrs + ' h ' + (m % 60) + ' min';
  return Math.floor(hrs / 24) + ' d ' + (hrs % 24) + ' h';
}
/* A label that may break after its underscores (long intent names on a phone). */
function lab(v) {
  const parts = String(v).split('_');
  return h('span', { class: 'lab' }, parts.map((x, i) => i < parts.length - 1 ? [x + '_', h('wbr')] : x));
}
/* Who decided, short: "AI" for a model, the person's name for a person. */
function who(by) {
  if (!by) return '–';
  if (by.startsWith('model:')) return 'AI';
  return by.replace(/^person:/, '');
}
function clock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : (new Date().toDateString() === d.toDateString() ? '' : d.toLocaleDateString('en-GB', { day: 'numeric', month: 'short' }) + ' ') + d.toLocaleTimeString('en-GB');
}
function timeEl(iso) {
  return h('time', { datetime: iso || '', title: iso || '' }, time(iso));
}

/* Announces a message in the live region (and shows it as a toast for a few seconds). */
let statusTimer = 0;
function say(msg, ms = 6000) {
  const el = document.getElementById('status');
  el.textContent = '';
  clearTimeout(statusTimer);
  /* A fresh text node a tick later so that a repeated message is announced again. */
  setTimeout(() => { el.textContent = msg; }, 30);
  statusTimer = setTimeout(() => { el.textContent = ''; }, ms);
}

/* ---- the API ------------------------------------------------------------------------- */

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

async function api(method, path, body, opts = {}) {
  const headers = { Authorization: 'Bearer ' + (opts.token || S.token), Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'The server did not answer (' + e.message + '). Check that tandem serve is running.', '');
  }
  const text = res.status === 204 ? '' : await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  if (res.status === 401 && !opts.noRedirect) {
    signOut('Signed out: ' + ((data && data.error && data.error.message) || 'your token is no longer valid') + '. Sign in again.');
    throw new ApiError(401, 'unauthorized', 'Signed out: the token is unknown or revoked.', 'Authorization');
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code || 'http_' + res.status,
      e.message || 'The server answered ' + res.status + ' ' + res.statusText, e.field || '');
  }
  return { status: res.status, data };
}

/* ---- who may do what ----------------------------------------------------------------- */

const PAGES = [
  { id: 'inbox', label: 'Inbox', href: '#/inbox', roles: ['admin', 'owner', 'reviewer', 'viewer'] },
  { id: 'dashboard', label: 'Dashboard', href: '#/dashboard', roles: ['admin', 'owner', 'viewer'] },
  { id: 'registry', label: 'Registry', href: '#/registry', roles: ['admin', 'owner', 'viewer'] },
  { id: 'audit', label: 'Audit', href: '#/audit', roles: ['admin', 'owner', 'viewer'] },
];
const inScope = name => (S.me.scope || []).includes(name) || (S.me.scope || []).includes('*');
const may = page => PAGES.find(p => p.id === page).roles.includes(S.me.role);
function canWorkQueue(q) {
  const r = S.me.role;
  if (r === 'admin') return true;
  if (r === 'reviewer') return inScope(q.queue);
  if (r === 'owner') return (q.processes || []).some(inScope);
  return false;
}
function canWorkTask(t) {
  const r = S.me.role;
  if (r === 'admin') return true;
  if (r === 'reviewer') return inScope(t.queue);
  if (r === 'owner') return inScope(t.process);
  return false;
}
function canKill(process) {
  return S.me.role === 'admin' || (S.me.role === 'owner' && inScope(process));
}
function canFeedback(process, queue) {
  const r = S.me.role;
  if (r === 'admin') return true;
  if (r === 'owner') return inScope(process);
  if (r === 'reviewer') return !!queue && inScope(queue);
  return false;
}
function home() {
  if (!S.me) return '#/signin';
  return S.me.role === 'owner' ? '#/dashboard' : '#/inbox';
}

/* ---- sign-in ------------------------------------------------------------------------- */

let signinMessage = '';
function signOut(message, comeBack = true) {
  /* A token refused in the middle of work: once signed in again, back to the same page. */
  if (comeBack && S.me && location.hash.startsWith('#/') && location.hash !== '#/signin') S.after = location.hash;
  sessionStorage.removeItem('tdm.token');
  S.token = '';
  S.me = null;
  signinMessage = message || '';
  if (location.hash !== '#/signin') location.hash = '#/signin';
  else render();
}

async function viewSignin(el) {
  document.title = 'Sign in · tandem';
  const msg = h('p', { id: 'signin-msg', class: 'error', role: 'alert' }, signinMessage);
  signinMessage = '';
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'token-help signin-msg',
  });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'card', novalidate: true },
    h('h1', { tabindex: '-1' }, 'Sign in to tandem'),
    h('p', { class: 'muted', id: 'token-help' }, 'Paste the API token you were given (',
      h('code', null, 'tandem token create'), ' prints it). It is kept in this browser tab only.'),
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'API token'), input),
    msg, button);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      msg.textContent = 'Enter your token.';
      input.focus();
      return;
    }
    button.disabled = true;
    msg.textContent = '';
    try {
      const { data } = await api('GET', '/v1/me', undefined, { token, noRedirect: true });
      if (data.role === 'service') {
        msg.textContent = 'This workspace is for people. "' + data.name + '" is a service token, made for machines that submit items: ask an admin for a reviewer, owner or viewer token.';
        return;
      }
      S.token = token;
      S.me = data;
      sessionStorage.setItem('tdm.token', token);
      say('Signed in as ' + data.name + ' (' + data.role + ').');
      location.hash = S.after || home();
      S.after = '';
    } catch (e) {
      msg.textContent = e.status === 401 ? 'That token is unknown or revoked. Check it and try again.' : e.message;
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  el.append(h('div', { class: 'signin' }, form));
  input.focus();
}

/* ---- router -------------------------------------------------------------------------- */

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(p => {
    try { return decodeURIComponent(p); } catch (e) { return p; }
  });
  return { parts, query: new URLSearchParams(query || '') };
}

const ROUTES = {
  signin: { view: viewSignin, open: true },
  inbox: { view: viewInbox, page: 'inbox', keys: true },
  queue: { view: viewQueue, page: 'inbox' },
  task: { view: viewTaskById, page: 'inbox' },
  item: { view: viewItem, page: 'inbox' },
  dashboard: { view: viewDashboard, page: 'dashboard' },
  registry: { view: viewRegistry, page: 'registry' },
  audit: { view: viewAudit, page: 'audit' },
};

async function render() {
  const gen = ++S.gen;
  for (const f of S.cleanup.splice(0)) {
    try { f(); } catch (e) { /* a view's cleanup must not stop the next view */ }
  }
  S.keys = null;
  const { parts, query } = parseHash();
  const el = main();
  if (!S.token) {
    drawFrame();
    el.replaceChildren();
    if (parts[0] !== 'signin') {
      /* Back to this page once signed in. */
      if (parts.length) S.after = location.hash;
      history.replaceState(null, '', '#/signin');
    }
    return viewSignin(el);
  }
  if (!S.me) {
    try {
      S.me = (await api('GET', '/v1/me')).data;
    } catch (e) {
      if (e.status !== 401) {
        el.replaceChildren(h('div', { class: 'banner bad', role: 'alert' }, e.message));
      }
      return;
    }
    if (gen !== S.gen) return;
    if (S.me.role === 'service') return signOut('This workspace is for people, not for service tokens.');
  }
  if (!parts.length || parts[0] === 'signin') {
    history.replaceState(null, '', home());
    return render();
  }
  const route = ROUTES[parts[0]];
  drawFrame(route && route.page);
  el.replaceChildren();
  if (!route) {
    el.append(h('h1', { tabindex: '-1' }, 'Not found'), h('p', null, 'No page at ', h('code', null, location.hash), '. ', h('a', { href: home() }, 'Go home')));
    return;
  }
  if (route.page && !may(route.page)) {
    el.append(h('h1', { tabindex: '-1' }, 'Not for your role'),
      h('p', null, 'A ' + S.me.role + ' token may not open this page. ', h('a', { href: home() }, 'Go home')));
    return;
  }
  try {
    await route.view(el, parts.slice(1), query, gen);
  } catch (e) {
    if (gen !== S.gen || e.status === 401) return;
    el.append(h('div', { class: 'banner bad', role: 'alert' }, e.message));
  }
}

function drawFrame(active) {
  const nav = document.getElementById('nav');
  const list = document.getElementById('navlist');
  const who = document.getElementById('who');
  list.replaceChildren();
  if (!S.me) {
    nav.hidden = true;
    who.hidden = true;
    return;
  }
  for (const p of PAGES) {
    if (!p.roles.includes(S.me.role)) continue;
    list.append(h('li', null, h('a', { href: p.href, 'aria-current': p.id === active ? 'page' : null, 'data-testid': 'nav-' + p.id }, p.label)));
  }
  nav.hidden = false;
  who.hidden = false;
  document.getElementById('whoname').textContent = S.me.name + ' · ' + S.me.role;
}

/* Focuses the view's heading so that a screen reader starts there after navigation. */
function focusHeading(el) {
  const h1 = $('h1', el);
  if (h1) {
    h1.setAttribute('tabindex', '-1');
    h1.focus({ preventScroll: false });
  }
}

/* ---- keys ---------------------------------------------------------------------------- */

function typing(target) {
  if (!target || !target.closest) return false;
  return !!target.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]');
}

document.addEventListener('keydown', ev => {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
  if (document.querySelector('dialog[open]')) return;
  if (typing(ev.target)) return;
  if (ev.key === '?') {
    ev.preventDefault();
    showHelp();
    return;
  }
  const k = S.keys && S.keys[ev.key];
  if (k && !k.disabled) {
    ev.preventDefault();
    k.run();
  }
});

function showHelp() {
  const body = document.getElementById('help-body');
  const rows = [];
  for (const [key, k] of Object.entries(S.keys || {})) {
    if (k.label) rows.push(h('dt', null, h('kbd', null, key)), h('dd', null, k.label));
  }
  rows.push(h('dt', null, h('kbd', null, '?')), h('dd', null, 'This list'));
  rows.push(h('dt', null, h('kbd', null, 'Tab')), h('dd', null, 'Move between links, buttons and fields'));
  rows.push(h('dt', null, h('kbd', null, 'Esc')), h('dd', null, 'Close a list or dialog; leave a text box'));
  body.replaceChildren(h('dl', { class: 'keys' }, rows));
  document.getElementById('help').showModal();
}

function keyHint(key) {
  return h('kbd', { 'aria-hidden': 'true' }, key);
}

/* Asks for confirmation in the shared dialog; resolves {ok, reason}. */
function confirmDialog({ title, text, ok, reason, danger }) {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-reason-row').hidden = !reason;
  const input = document.getElementById('confirm-reason');
  input.value = '';
  const okb = document.getElementById('confirm-ok');
  okb.textContent = ok;
  okb.className = danger ? 'primary danger' : 'primary';
  dlg.returnValue = '';
  return new Promise(resolve => {
    dlg.addEventListener('close', () => resolve({ ok: dlg.returnValue === 'ok', reason: input.value.trim() }), { once: true });
    dlg.showModal();
    (reason ? input : okb).focus();
  });
}

/* ---- live queue counts (server-sent events over fetch) ------------------------------- */

/* Reads GET /v1/events with the token (EventSource cannot send it) and calls on(event, data)
 * for each event; reconnects with backoff when the stream ends. Returns a stop function. */
function startEvents(on, onState) {
  let stopped = false;
  let ctrl = null;
  (async () => {
    let delay = 1000;
    while (!stopped) {
      ctrl = new AbortController();
      try {
        const res = await fetch('/v1/events', {
          headers: { Authorization: 'Bearer ' + S.token, Accept: 'text/event-stream' },
          signal: ctrl.signal, cache: 'no-store',
        });
        if (res.status === 401) {
          signOut('Your token is no longer valid.');
          return;
        }
        if (!res.ok || !res.body) throw new Error('status ' + res.status);
        onState('live');
        delay = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        let event = '';
        let data = [];
        for (;;) {
          const { value, done } = await reader.read();
          if (done || stopped) break;
          buf += value;
          let i;
          while ((i = buf.search(/\r\n|\r|\n/)) >= 0) {
            if (buf[i] === '\r' && i === buf.length - 1) break; /* a \r\n split across chunks */
            const line = buf.slice(0, i);
            buf = buf.slice(i + (buf[i] === '\r' && buf[i + 1] === '\n' ? 2 : 1));
            if (line === '') {
              if (data.length) {
                try { on(event || 'message', JSON.parse(data.join('\n'))); } catch (e) { /* a bad event is skipped */ }
              }
              event = '';
              data = [];
            } else if (line[0] !== ':') {
              const c = line.indexOf(':');
              const field = c < 0 ? line : line.slice(0, c);
              let v = c < 0 ? '' : line.slice(c + 1);
              if (v[0] === ' ') v = v.slice(1);
              if (field === 'event') event = v;
              else if (field === 'data') data.push(v);
            }
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      if (stopped) return;
      onState('reconnecting');
      await sleep(delay);
      delay = Math.min(delay * 2, 15000);
    }
  })();
  return () => {
    stopped = true;
    if (ctrl) ctrl.abort();
  };
}

/* ---- inbox --------------------------------------------------------------------------- */

async function viewInbox(el, _parts, _q, gen) {
  document.title = 'Inbox · tandem';
  const live = h('span', { class: 'badge', 'data-testid': 'live' }, 'Connecting…');
  const body = h('div', { 'data-testid': 'queues' });
  const reading = S.me.role === 'viewer';
  el.append(
    h('div', { class: 'pagehead' }, h('h1', null, 'Inbox'), live),
    h('p', { class: 'muted' }, reading
      ? 'The queues, read only: a viewer token cannot claim or answer tasks.'
      : ['Queues you may work. ', h('kbd', null, 'Tab'), ' to a queue, ', h('kbd', null, 'Enter'), ' to start: the next task opens, and after each answer the one after it.']),
    body);
  const draw = data => {
    const qs = data.queues || [];
    if (!qs.length) {
      body.replaceChildren(h('div', { class: 'card' }, h('p', null, 'No queues to show for your token yet.')));
      return;
    }
    const rows = qs.map(q => {
      const breached = q.sla_breached > 0;
      return h('tr', { 'data-queue': q.queue },
        h('th', { scope: 'row' }, q.queue),
        h('td', null, (q.processes || []).join(', ')),
        h('td', { class: 'num', 'data-testid': 'open-' + q.queue }, num(q.open)),
        h('td', { class: 'num', 'data-testid': 'claimed-' + q.queue }, num(q.claimed)),
        h('td', { class: 'num' }, dur(q.oldest_open_seconds)),
        h('td', { class: 'num', 'data-testid': 'sla-' + q.queue },
          breached ? h('span', { class: 'badge bad' }, num(q.sla_breached) + ' breached') : h('span', { class: 'badge ok' }, 'none')),
        h('td', null, canWorkQueue(q)
          ? h('a', { class: 'btn primary', href: '#/queue/' + enc(q.queue), 'data-testid': 'work-' + q.queue }, 'Work ', h('span', { class: 'vh' }, 'queue '), q.queue)
          : h('span', { class: 'muted small' }, 'read only')));
    });
    body.replaceChildren(h('div', { class: 'card' }, h('div', { class: 'scroll' }, h('table', null,
      h('caption', { class: 'vh' }, 'Queues, with open tasks, the oldest open task and SLA breaches'),
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Queue'), h('th', { scope: 'col' }, 'Processes'),
        h('th', { scope: 'col', class: 'num' }, 'Open'), h('th', { scope: 'col', class: 'num' }, 'Claimed'),
        h('th', { scope: 'col', class: 'num' }, 'Oldest open'), h('th', { scope: 'col', class: 'num' }, 'SLA'),
        h('th', { scope: 'col' }, h('span', { class: 'vh' }, 'Action')))),
      h('tbody', null, rows))),
    h('p', { class: 'muted small' }, 'Updated ', timeEl(data.at))));
  };
  const first = await api('GET', '/v1/queues');
  if (gen !== S.gen) return;
  draw(first.data);
  focusHeading(el);
  const stop = startEvents((event, data) => {
    if (event === 'queues' && gen === S.gen) draw(data);
  }, state => {
    live.textContent = state === 'live' ? 'Live' : 'Reconnecting…';
    live.className = 'badge ' + (state === 'live' ? 'ok' : 'warn');
    /* While the stream is down, the counts are read once per attempt. */
    if (state !== 'live') api('GET', '/v1/queues').then(r => gen === S.gen && draw(r.data)).catch(() => {});
  });
  S.cleanup.push(stop);
}

/* ---- task view ----------------------------------------------------------------------- */

const WHY = {
  below_threshold: "the AI's confidence is under the step's guaranteed threshold",
  review_rule: 'a review rule of the step asks a person to look',
  adverse_outcome: 'the proposal is an outcome reserved for people',
  paused: "the AI's autonomy at this step is paused (kill switch)",
  no_threshold: 'no confidence threshold could be certified yet, so every item goes to a person',
  no_model: 'the step has no trained model yet',
  audit_sample: "picked at random to audit the AI's decisions",
  hybrid: 'this step always asks a person, with the AI\'s suggestion',
  human: 'this step is done by people',
};

/* Splits a feature string into {field, kind, words, sub, label}. Feature strings look like
 * text:"card", text:"get my", text:"card"+"yet", text~"card ", purpose=car,
 * amount in [1000, 5000), amount (value), age (missing), #123. */
function parseFeature(f) {
  if (/^#\d+$/.test(f)) return { field: null, kind: 'unnamed', label: f };
  let cut = f.length;
  for (const t of [':', '~', '=', ' in ', ' (']) {
    const i = f.indexOf(t);
    if (i > 0 && i < cut) cut = i;
  }
  const field = f.slice(0, cut);
  const rest = f.slice(cut);
  const quoted = [...rest.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map(m => m[1]);
  if (rest[0] === ':' && quoted.length) {
    const near = quoted.length > 1;
    return { field, kind: near ? 'near' : quoted[0].includes(' ') ? 'phrase' : 'word', words: quoted,
      label: quoted.map(w => '“' + w + '”').join(near ? ' near ' : '') };
  }
  if (rest[0] === '~' && quoted.length) {
    return { field, kind: 'chars', sub: quoted[0], label: 'letters “' + quoted[0].trim() + '”' };
  }
  return { field, kind: 'field', label: f };
}

const esc = t => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const W = '[\\p{L}\\p{N}_]';
/* The ranges [start, end) of a feature's words in a text. */
function featureRanges(feat, text) {
  const res = [];
  const add = re => {
    for (const m of text.matchAll(re)) res.push([m.index, m.index + m[0].length]);
  };
  if (feat.words) {
    for (const w of feat.words) {
      const words = w.trim().split(/\s+/).filter(Boolean).map(esc);
      if (!words.length) continue;
      add(new RegExp('(?<!' + W + ')' + words.join('[^\\p{L}\\p{N}_]+') + '(?!' + W + ')', 'giu'));
    }
  } else if (feat.sub) {
    const core = feat.sub.trim();
    if (core) {
      const pre = /^\s/.test(feat.sub) ? '(?<!' + W + ')' : '';
      const post = /\s$/.test(feat.sub) ? '(?!' + W + ')' : '';
      add(new RegExp(pre + esc(core) + post, 'giu'));
    }
  }
  return res;
}
/* The text with the given ranges wrapped in <mark>. */
function highlighted(text, ranges) {
  ranges.sort((a, b) => a[0] - b[0]);
  const merged = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  const out = [];
  let at = 0;
  for (const [a, b] of merged) {
    if (a > at) out.push(text.slice(at, a));
    out.push(h('mark', null, text.slice(a, b)));
    at = b;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

function fieldsView(fields, reasons, inputs) {
  const feats = (reasons || []).filter(r => r.weight > 0).map(r => parseFeature(r.feature));
  const names = Object.keys(fields || {});
  /* The model's inputs first, in their order; the rest after. */
  const order = (inputs || []).map(i => i.name).filter(n => names.includes(n));
  for (const n of names) if (!order.includes(n)) order.push(n);
  const rows = [];
  for (const name of order) {
    const v = fields[name];
    const mine = feats.filter(f => f.field === name);
    const isText = typeof v === 'string';
    let content;
    if (isText) {
      const ranges = mine.flatMap(f => featureRanges(f, v));
      content = h('span', { class: v.length > 60 || ranges.length ? 'text' : '' }, highlighted(v, ranges));
    } else {
      content = v === null ? h('span', { class: 'muted' }, 'missing') : JSON.stringify(v);
    }
    const rowHl = !isText && mine.length > 0;
    rows.push(h('dt', { class: rowHl ? 'hl' : null }, name), h('dd', { class: rowHl ? 'hl' : null, 'data-field': name }, content));
  }
  return h('dl', { class: 'fields' }, rows);
}

function barRow(label, value, max, text, extra) {
  const bar = h('span');
  bar.style.width = Math.max(2, Math.min(100, max > 0 ? (value / max) * 100 : 0)) + '%';
  return h('li', extra, h('span', { class: 'feat' }, label), h('span', { class: 'bar', 'aria-hidden': 'true' }, bar), h('span', { class: 'num small' }, text));
}

/* A type-ahead over a list of allowed values: role=combobox with a listbox of matches.
 * onPick(value) is called with a value from `choices` on Enter; onCancel on Escape. */
function typeahead({ id, label, choices, onPick, onCancel, exclude, prefer = [] }) {
  const input = h('input', {
    id, type: 'text', autocomplete: 'off', spellcheck: 'false', role: 'combobox',
    'aria-autocomplete': 'list', 'aria-expanded': 'false', 'aria-controls': id + '-list',
  });
  const list = h('ul', { id: id + '-list', role: 'listbox', 'aria-label': label + ': suggestions', hidden: true });
  const hint = h('p', { class: 'muted small', id: id + '-hint' },
    'Type to filter, ', h('kbd', null, '↑'), h('kbd', null, '↓'), ' to move, ', h('kbd', null, 'Enter'), ' to choose, ', h('kbd', null, 'Esc'), ' to cancel.');
  input.setAttribute('aria-describedby', id + '-hint');
  let matches = [];
  let active = -1;
  const update = () => {
    const q = input.value.trim().toLowerCase();
    /* The AI's next most likely values first, then the rest in order. */
    const pool = prefer.filter(c => c !== exclude && choices.includes(c)).concat(choices.filter(c => c !== exclude && !prefer.includes(c)));
    const starts = pool.filter(c => c.toLowerCase().startsWith(q));
    const has = pool.filter(c => !c.toLowerCase().startsWith(q) && c.toLowerCase().replace(/_/g, ' ').includes(q.replace(/_/g, ' ')));
    matches = starts.concat(has).slice(0, 8);
    active = matches.length ? 0 : -1;
    draw();
  };
  const draw = () => {
    list.replaceChildren(...matches.map((m, i) => h('li', {
      id: id + '-opt-' + i, role: 'option', 'aria-selected': i === active ? 'true' : 'false',
      onmousedown: ev => { ev.preventDefault(); onPick(m); },
    }, m)));
    list.hidden = matches.length === 0;
    input.setAttribute('aria-expanded', matches.length ? 'true' : 'false');
    if (active >= 0) {
      input.setAttribute('aria-activedescendant', id + '-opt-' + active);
      const opt = document.getElementById(id + '-opt-' + active);
      if (opt) opt.scrollIntoView({ block: 'nearest' });
    } else input.removeAttribute('aria-activedescendant');
  };
  input.addEventListener('input', update);
  input.addEventListener('focus', () => { if (!matches.length) update(); });
  input.addEventListener('keydown', ev => {
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      if (!matches.length) return;
      active = (active + (ev.key === 'ArrowDown' ? 1 : matches.length - 1)) % matches.length;
      draw();
    } else if (ev.key === 'Enter') {
      ev.preventDefault();
      const typed = input.value.trim();
      const exact = choices.find(c => c === typed) || choices.find(c => c.toLowerCase() === typed.toLowerCase());
      const pick = active >= 0 ? matches[active] : exact;
      if (pick) onPick(pick);
      else say(typed ? '“' + typed + '” is not one of the allowed values.' : 'Type a value first.');
    } else if (ev.key === 'Escape') {
      ev.preventDefault();
      onCancel();
    }
  });
  const wrap = h('div', { class: 'ta' }, h('label', { for: id }, label), input, list, hint);
  return { el: wrap, input, reset() { input.value = ''; matches = []; active = -1; draw(); }, close() { matches = []; active = -1; draw(); } };
}

async function viewTaskById(el, parts, _q, gen) {
  const { data } = await api('GET', '/v1/tasks/' + enc(parts[0]));
  if (gen !== S.gen) return;
  drawTask(el, data, { gen, direct: true });
}

/* Works a queue: claims the next task and shows it; after each answer the next one. */
async function viewQueue(el, parts, _q, gen) {
  const queue = parts[0];
  const next = async () => {
    let res;
    try {
      res = await api('POST', '/v1/queues/' + enc(queue) + '/next', {});
    } catch (e) {
      if (gen !== S.gen) return;
      el.replaceChildren(h('div', { class: 'banner bad', role: 'alert' }, e.message), h('p', null, h('a', { href: '#/inbox' }, 'Back to the inbox')));
      return;
    }
    if (gen !== S.gen) return;
    if (res.status === 204 || !res.data) {
      say('Queue ' + queue + ' is empty: nothing left to do here.', 8000);
      location.hash = '#/inbox';
      return;
    }
    drawTask(el, res.data, { gen, queue, next });
  };
  await next();
}

function drawTask(el, t, ctx) {
  document.title = 'Task ' + t.id + ' · tandem';
  const me = S.me.name;
  const claimedByOther = t.state === 'claimed' && t.claimed_by && t.claimed_by !== me;
  const workable = canWorkTask(t) && !claimedByOther && !t.item_changed && (t.state === 'open' || t.state === 'claimed');
  const p = t.proposal;
  const choices = (t.choices || []).slice().sort();
  const banner = h('div', { 'data-testid': 'task-banner' });
  const comment = h('textarea', { id: 'comment', rows: '2', maxlength: '2000', placeholder: 'Optional: why, for the record' });
  let busy = false;

  const showProblem = (msg, kind = 'bad') => {
    banner.replaceChildren(h('div', { class: 'banner ' + kind, role: 'alert', 'data-testid': 'task-problem' }, msg,
      ' ', ctx.queue || canWorkTask(t) ? h('button', { type: 'button', onclick: openNext, 'data-testid': 'next-task' }, 'Open the next task ', keyHint('n')) : null));
  };
  const openNext = () => {
    if (ctx.next) {
      el.replaceChildren(h('p', { class: 'muted' }, 'Opening the next task…'));
      ctx.next();
    } else location.hash = '#/queue/' + enc(t.queue);
  };

  const complete = async (action, value) => {
    if (busy) return;
    busy = true;
    setBusy(true);
    const body = { action };
    if (value !== undefined) body.value = value;
    const c = comment.value.trim();
    if (c) body.comment = c;
    try {
      if (t.state === 'open') {
        await api('POST', '/v1/tasks/' + enc(t.id) + '/claim', { lease_seconds: 300 });
      }
      await api('POST', '/v1/tasks/' + enc(t.id) + '/complete', body);
    } catch (e) {
      busy = false;
      setBusy(false);
      if (ctx.gen !== S.gen) return;
      if (e.status === 409) {
        say(e.message, 9000);
        showProblem(e.message + '. This answer was not recorded.');
        disableActions();
      } else {
        say(e.message, 9000);
        showProblem(e.message);
      }
      return;
    }
    if (ctx.gen !== S.gen) return;
    const done = action === 'accept' ? 'Accepted ' + (p ? p.value : '') : action === 'correct' ? 'Corrected to ' + value : action === 'escalate' ? 'Escalated' : action === 'confirm' ? 'Confirmed' : 'Declined';
    say(done + '. Next task…');
    openNext();
  };

  const actionButtons = [];
  const btn = (key, label, run, attrs) => {
    const b = h('button', Object.assign({ type: 'button', onclick: run, 'aria-keyshortcuts': key }, attrs), label, ' ', keyHint(key));
    actionButtons.push(b);
    return b;
  };
  const setBusy = v => actionButtons.forEach(b => { b.disabled = v || !workable; });
  /* Disables the answer's buttons and keys; `keep` names keys that stay (n, the next task,
   * always; y and x, confirm and decline, while an answer waits for this person). */
  const disableActions = (keep = ['n']) => {
    actionButtons.forEach(b => { b.disabled = true; });
    for (const k of Object.keys(S.keys || {})) if (!keep.includes(k)) S.keys[k].disabled = true;
  };

  const ta = typeahead({
    id: 'correct', label: 'Correct to', choices, exclude: p ? p.value : null, prefer: (t.alternatives || []).map(a => String(a.value)),
    onPick: v => complete('correct', v),
    onCancel: () => { correctBox.hidden = true; ta.reset(); correctButton.focus(); },
  });
  const correctBox = h('div', { class: 'card', hidden: true, 'data-testid': 'correct-box' }, ta.el);
  const startCorrect = () => {
    if (!choices.length) return say('This step has no list of values to correct to.');
    correctBox.hidden = false;
    ta.input.focus();
  };
  const confirming = t.state === 'confirming' && t.answer;
  const acceptButton = btn('a', p ? 'Accept' : 'Accept', () => complete('accept'), { class: 'primary', 'data-testid': 'accept', disabled: !workable || !p });
  const correctButton = btn('c', 'Correct…', startCorrect, { 'data-testid': 'correct', disabled: !workable });
  const escalateButton = btn('e', 'Escalate', () => complete('escalate'), { 'data-testid': 'escalate', disabled: !workable });
  const commentButton = btn('m', 'Comment', () => comment.focus(), { 'data-testid': 'comment', disabled: !workable });
  comment.addEventListener('keydown', ev => { if (ev.key === 'Escape') { ev.preventDefault(); comment.blur(); } });

  S.keys = {
    a: { label: 'Accept the proposal', run: () => complete('accept'), disabled: !workable || !p },
    c: { label: 'Correct: choose another value', run: startCorrect, disabled: !workable },
    e: { label: 'Escalate to the escalation queue', run: () => complete('escalate'), disabled: !workable },
    m: { label: 'Write a comment (Esc leaves the box)', run: () => comment.focus(), disabled: !workable },
    n: { label: 'Skip to the next task', run: openNext, disabled: !canWorkTask(t) },
    i: { label: 'Open the item page', run: () => { location.hash = '#/item/' + enc(t.item_id); } },
  };

  /* What state the task is in, plainly. */
  if (claimedByOther) {
    banner.append(h('div', { class: 'banner warn', role: 'alert', 'data-testid': 'task-problem' },
      'This task was claimed by ', h('strong', null, t.claimed_by), t.lease_until ? ' until ' + time(t.lease_until) : '', '. You cannot answer it while they hold it.'));
  } else if (t.item_changed) {
    banner.append(h('div', { class: 'banner warn', role: 'alert', 'data-testid': 'task-problem' },
      'The item changed since this task was made: this task can no longer be answered. ', h('a', { href: '#/item/' + enc(t.item_id) }, 'See the item')));
  } else if (t.state === 'done') {
    banner.append(h('div', { class: 'banner info', role: 'status', 'data-testid': 'task-problem' },
      'This task is done: ', t.action || 'answered', ' by ', t.completed_by || 'someone', ' at ', time(t.completed_at), '. ', h('a', { href: '#/item/' + enc(t.item_id) }, 'See the decision')));
  } else if (!canWorkTask(t)) {
    banner.append(h('div', { class: 'banner info', 'data-testid': 'task-problem' }, 'Read only: your token may not answer tasks of this queue.'));
  }
  if (confirming) {
    const mine = t.answer.by === me;
    banner.append(h('div', { class: 'banner info', 'data-testid': 'task-confirming' },
      t.answer.because === 'second_look'
        ? 'Second look: the answer contradicts a proposal the AI was sure of, so a second person must agree. '
        : 'Four eyes: this step asks a second person to confirm. ',
      t.answer.by, ' answered ', h('strong', null, t.answer.action + (t.answer.value ? ' → ' + t.answer.value : '')), '. ',
      mine || !canWorkTask(t) ? 'Someone else must confirm it.' : [
        h('button', { type: 'button', class: 'primary', onclick: () => complete('confirm') }, 'Confirm ', keyHint('y')), ' ',
        h('button', { type: 'button', onclick: () => complete('decline') }, 'Decline ', keyHint('x'))]));
    if (!mine && canWorkTask(t)) {
      S.keys.y = { label: 'Confirm the answer', run: () => complete('confirm') };
      S.keys.x = { label: 'Decline the answer', run: () => complete('decline') };
    }
  }

  const due = t.due_at ? new Date(t.due_at) : null;
  const left = due ? (due.getTime() - Date.now()) / 1000 : null;
  const dueBadge = due ? (left < 0 ? h('span', { class: 'badge bad' }, 'SLA breached ' + dur(-left) + ' ago')
    : h('span', { class: 'badge ' + (left < 3600 ? 'warn' : 'ok') }, 'due ' + time(t.due_at) + ' (in ' + dur(left) + ')')) : null;

  const why = h('p', { class: 'why', 'data-testid': 'why' }, h('strong', null, 'Why a person: '), WHY[t.why] || t.why || 'not said',
    t.rule ? [': ', h('code', null, t.rule)] : null, '.');

  /* The proposal, its confidence and the alternatives. */
  const alts = t.alternatives || [];
  const proposalCard = h('section', { class: 'card o2', 'aria-labelledby': 'h-proposal' },
    h('h2', { id: 'h-proposal' }, "The AI's proposal"),
    p ? h('div', { class: 'proposal' },
      h('span', { class: 'value', 'data-testid': 'proposal', 'data-value': String(p.value) }, lab(p.value)),
      h('span', { class: 'conf', 'data-testid': 'confidence' }, pct(p.confidence, 1), h('span', { class: 'vh' }, ' confidence')),
      h('span', { class: 'muted small' }, 'model v' + p.model_version))
      : h('p', { class: 'muted' }, 'No proposal: a person decides this one from scratch.'),
    alts.length ? [h('h3', { class: 'muted small sub' }, 'Next most likely'),
      h('ul', { class: 'alts', 'data-testid': 'alternatives' }, alts.map(a => barRow(String(a.value), a.confidence, 1, pct(a.confidence, 1))))] : null,
    h('div', { class: 'actions' }, acceptButton, correctButton, escalateButton, commentButton),
    correctBox,
    h('div', { class: 'field' }, h('label', { for: 'comment' }, 'Comment ', h('span', { class: 'muted' }, '(optional, sent with the answer)')), comment));

  const reasons = (t.reasons || []).filter(r => r.weight !== 0);
  const maxW = Math.max(0.0001, ...reasons.map(r => Math.abs(r.weight)));
  const reasonsCard = h('section', { class: 'card o3', 'aria-labelledby': 'h-reasons' },
    h('h2', { id: 'h-reasons' }, 'What pushed the proposal'),
    reasons.length ? h('ul', { class: 'reasons', 'data-testid': 'reasons' }, reasons.map(r => {
      const f = parseFeature(r.feature);
      return barRow([f.label, f.field && f.kind !== 'field' ? h('span', { class: 'muted small' }, ' in ' + f.field) : null], Math.abs(r.weight), maxW, num(r.weight, 2), { title: r.feature });
    })) : h('p', { class: 'muted' }, 'No reasons were recorded.'),
    h('p', { class: 'muted small' }, 'Highlighted words in the item are the ones the model weighed most.'));

  const rel = t.related;
  const relatedCard = rel ? h('section', { class: 'card o4', 'aria-labelledby': 'h-related', 'data-testid': 'related' },
    h('h2', { id: 'h-related' }, 'Earlier decisions for the same ', rel.key, ' (', h('code', null, String(rel.value)), ')'),
    rel.decisions && rel.decisions.length ? h('div', { class: 'scroll' }, h('table', null,
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Item'), h('th', { scope: 'col' }, 'Decision'), h('th', { scope: 'col' }, 'By'), h('th', { scope: 'col' }, 'When'))),
      h('tbody', null, rel.decisions.map(d => h('tr', null,
        h('td', { class: 'nowrap' }, h('a', { href: '#/item/' + enc(d.item_id) }, d.item_id)), h('td', null, lab(d.value)),
        h('td', { class: 'small', title: d.by }, who(d.by)), h('td', { class: 'nowrap small' }, timeEl(d.at)))))))
      : h('p', { class: 'muted' }, 'None yet.')) : null;

  const itemCard = h('section', { class: 'card', 'aria-labelledby': 'h-item' },
    h('h2', { id: 'h-item' }, 'The item ', h('a', { href: '#/item/' + enc(t.item_id), class: 'small' }, t.item_id)),
    fieldsView(t.item || {}, t.reasons, t.inputs), why);

  el.replaceChildren(
    h('div', { class: 'pagehead' },
      h('h1', null, ctx.queue ? 'Queue ' + ctx.queue : 'Task'),
      h('span', { class: 'muted small mono' }, t.id),
      h('span', { class: 'badge accent' }, t.process + ' / ' + t.step),
      h('span', { class: 'badge', 'data-testid': 'task-state' }, t.state + (t.claimed_by ? ' by ' + t.claimed_by : '')),
      dueBadge),
    banner,
    h('div', { class: 'grid', 'data-task-id': t.id, 'data-testid': 'task' },
      h('div', { class: 'col' }, itemCard, reasonsCard),
      h('div', { class: 'col' }, proposalCard, relatedCard)));
  setBusy(false);
  if (!workable) disableActions(['n', 'y', 'x']);
  focusHeading(el);
}

/* ---- item page with feedback --------------------------------------------------------- */

async function viewItem(el, parts, _q, gen) {
  const id = parts[0];
  const [{ data: item }] = await Promise.all([api('GET', '/v1/items/' + enc(id))]);
  if (gen !== S.gen) return;
  let proc = null;
  try { proc = (await api('GET', '/v1/processes/' + enc(item.process))).data; } catch (e) { proc = null; }
  if (gen !== S.gen) return;
  document.title = 'Item ' + id + ' · tandem';
  const stepQueue = step => {
    const st = proc && (proc.steps || []).find(x => x.id === step);
    return st ? st.queue : null;
  };
  const statusKind = { decided: 'ok', queued: 'warn' }[item.status] || '';
  const decisions = (item.decisions || []).slice().reverse();
  el.append(
    h('div', { class: 'pagehead' }, h('h1', null, 'Item ', h('span', { class: 'mono' }, item.id)),
      h('span', { class: 'badge ' + statusKind, 'data-testid': 'item-status' }, item.status),
      h('span', { class: 'badge accent' }, item.process),
      h('span', { class: 'muted small' }, 'version ' + item.version + ' · received ', timeEl(item.received_at))),
    h('div', { class: 'grid' },
      h('div', null,
        h('section', { class: 'card', 'aria-labelledby': 'h-fields' }, h('h2', { id: 'h-fields' }, 'Fields'), fieldsView(item.fields || {}, [], null)),
        h('section', { class: 'card', 'aria-labelledby': 'h-tasks' }, h('h2', { id: 'h-tasks' }, 'Tasks'),
          (item.tasks || []).length ? h('div', { class: 'scroll' }, h('table', null,
            h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Task'), h('th', { scope: 'col' }, 'Queue'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Why'), h('th', { scope: 'col' }, 'Answer'))),
            h('tbody', null, item.tasks.map(t => h('tr', null,
              h('td', null, h('a', { href: '#/task/' + enc(t.id), class: 'mono small' }, t.id)), h('td', null, t.queue),
              h('td', null, t.state + (t.claimed_by ? ' (' + t.claimed_by + ')' : '')), h('td', { class: 'small' }, t.why),
              h('td', { class: 'small' }, t.action ? t.action + ' by ' + t.completed_by : '–'))))))
            : h('p', { class: 'muted' }, 'No task: no person was asked.'))),
      h('section', { class: 'card', 'aria-labelledby': 'h-dec' }, h('h2', { id: 'h-dec' }, 'Decisions'),
        decisions.length ? h('div', { class: 'stack' }, decisions.map(d => decisionView(d, item, canFeedback(item.process, stepQueue(d.step)), gen)))
          : h('p', { class: 'muted' }, 'No decision yet.'))));
  focusHeading(el);
}

function decisionView(d, item, allowed, gen) {
  const fb = d.feedback || [];
  const box = h('div', { class: 'card', 'data-testid': 'decision', 'data-decision-id': d.id });
  const form = h('div', { hidden: true, class: 'fbform', 'data-testid': 'inaccurate-form' });
  const msg = h('p', { class: 'error', role: 'alert' });
  const send = async (verdict, correction, comment) => {
    const body = { verdict };
    if (correction) body.correction = correction;
    if (comment) body.comment = comment;
    try {
      await api('POST', '/v1/decisions/' + enc(d.id) + '/feedback', body);
    } catch (e) {
      msg.textContent = e.message;
      return;
    }
    say(verdict === 'accurate' ? 'Thanks: marked accurate.' : 'Thanks: marked inaccurate' + (correction ? ', should be ' + correction : '') + '.');
    if (gen === S.gen) render();
  };
  const cid = 'fix-' + d.id;
  const choices = (d.choices || []).slice().sort();
  const commentIn = h('input', { id: cid + '-comment', type: 'text', maxlength: '2000', autocomplete: 'off' });
  let picked = '';
  const pickedEl = h('span', { class: 'small', 'data-testid': 'picked' });
  const ta = choices.length ? typeahead({
    id: cid, label: 'Correct value (optional)', choices, exclude: d.value,
    onPick: v => { picked = v; ta.input.value = v; ta.close(); pickedEl.textContent = 'Correction: ' + v; commentIn.focus(); },
    onCancel: () => { form.hidden = true; },
  }) : null;
  const freeIn = choices.length ? null : h('input', { id: cid, type: 'text', autocomplete: 'off' });
  form.append(
    ta ? ta.el : h('div', { class: 'field' }, h('label', { for: cid }, 'Correct value (optional)'), freeIn), pickedEl,
    h('div', { class: 'field' }, h('label', { for: cid + '-comment' }, 'Comment (optional)'), commentIn),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'primary', 'data-testid': 'send-inaccurate', onclick: () => {
        let corr = picked || (freeIn ? freeIn.value.trim() : '');
        if (ta && !picked) {
          const typed = ta.input.value.trim();
          if (typed && !choices.includes(typed)) { msg.textContent = '“' + typed + '” is not one of the allowed values.'; return; }
          corr = typed;
        }
        send('inaccurate', corr, commentIn.value.trim());
      } }, 'Send: inaccurate'),
      h('button', { type: 'button', onclick: () => { form.hidden = true; } }, 'Cancel')));
  commentIn.addEventListener('keydown', ev => { if (ev.key === 'Enter') { ev.preventDefault(); $('[data-testid="send-inaccurate"]', form).click(); } });
  append(box, [
    h('div', { class: 'proposal' },
      h('span', { class: 'value', 'data-testid': 'decision-value' }, lab(d.value)),
      d.confidence !== null && d.confidence !== undefined ? h('span', { class: 'conf' }, pct(d.confidence, 1), h('span', { class: 'vh' }, ' confidence')) : null,
      h('span', { class: 'badge ' + (d.kind === 'model' ? 'accent' : '') }, d.autonomous ? 'AI alone' : d.kind === 'model' ? 'AI' : 'person')),
    h('p', { class: 'muted small' }, 'step ', d.step, ' · by ', d.by, ' · ', timeEl(d.created_at),
      d.proposal && d.kind !== 'model' ? ' · the AI proposed ' + d.proposal.value + ' (' + pct(d.proposal.confidence, 1) + ')' : ''),
    fb.length ? h('ul', { class: 'small', 'data-testid': 'feedback' }, fb.map(f => h('li', null,
      h('span', { class: 'badge ' + (f.verdict === 'accurate' ? 'ok' : 'bad') }, f.verdict), ' by ', f.by, ' ', timeEl(f.at),
      f.correction ? [' · should be ', h('strong', null, String(f.correction))] : null, f.comment ? ' · “' + f.comment + '”' : null))) : null,
    allowed ? h('div', { class: 'row' },
      h('span', { class: 'small muted', id: 'fbq-' + d.id }, 'Was this right?'),
      h('button', { type: 'button', 'data-testid': 'accurate', 'aria-describedby': 'fbq-' + d.id, onclick: () => send('accurate') }, 'Accurate'),
      h('button', { type: 'button', 'data-testid': 'inaccurate', 'aria-describedby': 'fbq-' + d.id, 'aria-expanded': 'false', onclick: ev => {
        form.hidden = !form.hidden;
        ev.currentTarget.setAttribute('aria-expanded', form.hidden ? 'false' : 'true');
        if (!form.hidden) (ta ? ta.input : freeIn).focus();
      } }, 'Inaccurate…')) : null,
    form, msg]);
  return box;
}

/* ---- charts (SVG) -------------------------------------------------------------------- */

/* Vertical bars of values in [0, max] over time, with a y axis in percent or counts. */
function barChart(points, { max, label, fmt, color = '#2346a8', height = 140 }) {
  const n = Math.max(points.length, 1);
  const W0 = 560, H0 = height, left = 36, bottom = 18, top = 6;
  const bw = (W0 - left) / n;
  const y = v => top + (H0 - top - bottom) * (1 - Math.min(1, (v || 0) / (max || 1)));
  const svg = s('svg', { viewBox: `0 0 ${W0} ${H0}`, role: 'img', 'aria-label': label }, s('title', null, label));
  for (const f of [0, 0.5, 1]) {
    const yy = y(f * max);
    svg.append(s('line', { x1: left, x2: W0, y1: yy, y2: yy, stroke: '#e3e7ec', 'stroke-width': 1 }),
      s('text', { x: left - 4, y: yy + 4, 'text-anchor': 'end' }, fmt(f * max)));
  }
  points.forEach((p, i) => {
    if (p.v === null || p.v === undefined) return;
    const yy = y(p.v);
    svg.append(s('rect', { x: left + i * bw + bw * 0.12, y: yy, width: Math.max(1, bw * 0.76), height: Math.max(0, H0 - bottom - yy), fill: color, rx: 1 },
      s('title', null, (p.at ? time(p.at) + ': ' : '') + fmt(p.v))));
  });
  if (points.length) {
    svg.append(s('text', { x: left, y: H0 - 4 }, time(points[0].at)),
      s('text', { x: W0, y: H0 - 4, 'text-anchor': 'end' }, time(points[points.length - 1].at)));
  }
  return svg;
}

/* A horizontal gauge: the audited error, its upper bound and the budget line. */
function budgetGauge(st) {
  const err = st.audited_error, bound = st.audited_error_bound, budget = st.max_error;
  const max = Math.max(budget || 0, bound || 0, err || 0) * 1.25 || 0.1;
  const W0 = 560, H0 = 58, left = 4, right = 4;
  const x = v => left + (W0 - left - right) * Math.min(1, (v || 0) / max);
  const label = 'Audited error ' + pct(err, 1) + ', upper bound ' + pct(bound, 1) + ', risk budget ' + pct(budget, 1) + ' (step ' + st.step + ')';
  const svg = s('svg', { viewBox: `0 0 ${W0} ${H0}`, role: 'img', 'aria-label': label }, s('title', null, label),
    s('rect', { x: left, y: 18, width: W0 - left - right, height: 16, fill: '#eef1f4', rx: 3 }));
  if (bound !== null && bound !== undefined) svg.append(s('rect', { x: left, y: 18, width: x(bound) - left, height: 16, fill: '#b9c6e6', rx: 3 }));
  if (err !== null && err !== undefined) svg.append(s('rect', { x: left, y: 18, width: Math.max(2, x(err) - left), height: 16, fill: '#2346a8', rx: 3 }));
  if (budget !== null && budget !== undefined) {
    const bx = x(budget);
    const anchor = bx < 70 ? 'start' : bx > W0 - 70 ? 'end' : 'middle';
    svg.append(s('line', { x1: bx, x2: bx, y1: 13, y2: 39, stroke: '#a3161b', 'stroke-width': 2.5 }),
      s('text', { x: anchor === 'start' ? Math.max(left, bx - 4) : bx, y: 10, 'text-anchor': anchor, fill: '#a3161b' }, 'budget ' + pct(budget, 1)));
  }
  svg.append(s('text', { x: left, y: 53 }, '0%'), s('text', { x: W0 - right, y: 53, 'text-anchor': 'end' }, pct(max, 1)));
  return svg;
}

/* Horizontal bars with labels, for queues and confusions. */
function hbars(rows, label) {
  const W0 = 560, rowH = 22, labelW = 230;
  const max = Math.max(1, ...rows.map(r => r.v));
  const svg = s('svg', { viewBox: `0 0 ${W0} ${rows.length * rowH + 4}`, role: 'img', 'aria-label': label }, s('title', null, label));
  rows.forEach((r, i) => {
    const yy = i * rowH + 2;
    const w = Math.max(2, (W0 - labelW - 40) * r.v / max);
    svg.append(s('text', { x: labelW - 6, y: yy + 14, 'text-anchor': 'end' }, r.label.length > 36 ? r.label.slice(0, 35) + '…' : r.label),
      s('rect', { x: labelW, y: yy + 3, width: w, height: rowH - 8, fill: r.color || '#2346a8', rx: 2 }),
      s('text', { x: labelW + w + 5, y: yy + 14 }, String(r.v)));
  });
  return svg;
}

function tile(key, value, sub, testid) {
  return h('div', { class: 'tile' }, h('div', { class: 'k' }, key), h('div', { class: 'v', 'data-testid': testid }, value), sub ? h('div', { class: 's' }, sub) : null);
}

/* A visually hidden table of a series, for screen readers. */
function seriesTable(caption, rows, cols) {
  return h('div', { class: 'vh' }, h('table', null, h('caption', null, caption),
    h('thead', null, h('tr', null, cols.map(c => h('th', { scope: 'col' }, c[0])))),
    h('tbody', null, rows.map(r => h('tr', null, cols.map(c => h('td', null, c[1](r))))))));
}

/* ---- dashboard ----------------------------------------------------------------------- */

const BUCKETS = { minute: ['minute', 60, 'Last hour, by minute'], hour: ['hour', 48, 'Last 2 days, by hour'], day: ['day', 30, 'Last 30 days, by day'] };

async function viewDashboard(el, parts, query, gen) {
  if (!parts.length) return viewDashboardList(el, gen);
  const name = parts[0];
  const bucket = BUCKETS[query.get('bucket')] ? query.get('bucket') : 'minute';
  document.title = 'Dashboard ' + name + ' · tandem';
  const holder = h('div', { 'data-testid': 'dashboard' });
  const select = h('select', { id: 'bucket' }, Object.entries(BUCKETS).map(([k, v]) => h('option', { value: k, selected: k === bucket }, v[2])));
  select.addEventListener('change', () => { location.hash = '#/dashboard/' + enc(name) + '?bucket=' + select.value; });
  const stamp = h('span', { class: 'muted small', 'data-testid': 'generated-at' });
  el.append(h('div', { class: 'pagehead' }, h('h1', null, 'Dashboard: ', name),
    h('div', { class: 'tools' }, stamp, h('label', { for: 'bucket', class: 'vh' }, 'Time range'), select,
      h('button', { type: 'button', onclick: () => load(), 'aria-keyshortcuts': 'r', 'data-testid': 'refresh' }, 'Refresh ', keyHint('r')))),
    holder);
  let loading = false;
  const load = async () => {
    if (loading) return;
    loading = true;
    try {
      const [{ data }, reg] = await Promise.all([
        api('GET', '/v1/processes/' + enc(name) + '/dashboard?bucket=' + BUCKETS[bucket][0] + '&points=' + BUCKETS[bucket][1]),
        api('GET', '/v1/processes/' + enc(name)).catch(() => null),
      ]);
      if (gen !== S.gen) return;
      /* A live refresh keeps the focus where it was. */
      const had = holder.contains(document.activeElement) && document.activeElement.dataset.testid;
      holder.replaceChildren(...drawDashboard(data, reg && reg.data, load));
      if (had) { const again = holder.querySelector('[data-testid="' + had + '"]'); if (again) again.focus(); }
      holder.setAttribute('data-generated-at', data.generated_at || '');
      stamp.replaceChildren('Updated ', timeEl(data.generated_at));
    } finally {
      loading = false;
    }
  };
  await load();
  S.keys = { r: { label: 'Refresh the numbers', run: load } };
  focusHeading(el);
  /* Live: the numbers are read again when the queues change (at most every 3 s). */
  let last = Date.now(), timer = 0, first = true;
  const stop = startEvents(ev => {
    if (ev !== 'queues') return;
    if (first) { first = false; return; } /* the stream's first event is the state just read */
    const wait = Math.max(0, 3000 - (Date.now() - last));
    clearTimeout(timer);
    timer = setTimeout(() => { last = Date.now(); load().catch(() => {}); }, wait);
  }, () => {});
  S.cleanup.push(stop, () => clearTimeout(timer));
}

async function viewDashboardList(el, gen) {
  document.title = 'Dashboards · tandem';
  const { data } = await api('GET', '/v1/processes');
  if (gen !== S.gen) return;
  const ps = (data.processes || []).filter(p => S.me.role !== 'owner' || inScope(p.name));
  if (ps.length === 1 && S.me.role === 'owner') {
    history.replaceState(null, '', '#/dashboard/' + enc(ps[0].name));
    return render();
  }
  el.append(h('h1', null, 'Dashboards'), h('p', { class: 'muted' }, 'One per process: what the AI decides alone, what it costs in errors and what it saves.'),
    h('div', { class: 'card' }, ps.length ? h('ul', null, ps.map(p => h('li', null,
      h('a', { href: '#/dashboard/' + enc(p.name), 'data-testid': 'dash-' + p.name }, p.name), ' ',
      h('span', { class: 'muted small' }, p.description || '')))) : h('p', { class: 'muted' }, 'No process yet.')));
  focusHeading(el);
}

function drawDashboard(d, proc, reload) {
  const t = d.totals || {};
  const series = d.series || [];
  const base = d.baseline || {};
  const out = [];
  out.push(h('div', { class: 'tiles' },
    tile('Automation rate', pct(t.automation_rate, 1), 'decided by the AI alone', 'automation-rate'),
    tile('Decided by AI', num(t.decided_by_ai), 'of ' + num(t.items) + ' items', 'decided-by-ai'),
    tile('Decided by people', num(t.decided_by_people), num(t.queued) + ' waiting', 'decided-by-people'),
    tile('Human answers', num(t.human_answers), num(t.escalations) + ' escalated', 'human-answers'),
    tile('Overrides', num(t.overrides), 'people changed the AI', 'overrides'),
    tile('Override rate', pct(t.override_rate, 1), 'of human answers', 'override-rate'),
    tile('Hours saved', num(t.hours_saved, 1), base.minutes_per_item ? 'at ' + base.minutes_per_item + ' min an item' : '', 'hours-saved')));

  /* Automation rate over time. */
  const autoPts = series.map(p => ({ at: p.at, v: p.automation_rate }));
  out.push(h('div', { class: 'grid2' },
    h('section', { class: 'card', 'aria-labelledby': 'h-auto' }, h('h2', { id: 'h-auto' }, 'Automation rate over time'),
      h('div', { class: 'chart' },
        barChart(autoPts, { max: 1, label: 'Automation rate per ' + d.bucket, fmt: v => pct(v) }),
        h('div', { class: 'side' }, h('span', { class: 'big' }, pct(t.automation_rate, 1)), 'of ', num(t.items), ' items decided by the AI alone',
          h('br'), h('span', { class: 'muted' }, series.length + ' ' + d.bucket + 's shown'))),
      seriesTable('Automation rate per ' + d.bucket, series, [['Time', p => time(p.at, true)], ['Items', p => p.items], ['By AI', p => p.decided_by_ai], ['Automation rate', p => pct(p.automation_rate, 1)]])),
    h('section', { class: 'card', 'aria-labelledby': 'h-over' }, h('h2', { id: 'h-over' }, 'Override rate'),
      h('div', { class: 'chart' },
        barChart(series.map(p => ({ at: p.at, v: p.override_rate })), { max: 1, label: 'Override rate per ' + d.bucket, fmt: v => pct(v), color: '#a3161b' }),
        h('div', { class: 'side' }, h('span', { class: 'big' }, pct(t.override_rate, 1)), num(t.overrides), ' of ', num(t.human_answers), ' human answers changed the AI\'s proposal')),
      seriesTable('Override rate per ' + d.bucket, series, [['Time', p => time(p.at, true)], ['Human answers', p => p.human_answers], ['Overrides', p => p.overrides], ['Override rate', p => pct(p.override_rate, 1)]]))));

  /* Audited error against the risk budget, and the kill switch, per step. */
  const steps = d.steps || [];
  out.push(h('section', { class: 'card', 'aria-labelledby': 'h-risk' }, h('h2', { id: 'h-risk' }, 'Audited error against the risk budget'),
    steps.length ? steps.map(st => {
      const over = st.audited_error_bound !== null && st.audited_error_bound !== undefined && st.max_error !== null && st.audited_error_bound > st.max_error;
      return h('div', { class: 'chart wide', 'data-testid': 'step-' + st.step },
        h('div', null, h('h3', null, 'Step ', st.step, ' ', h('span', { class: 'badge' }, st.allocation), ' ',
          st.paused ? h('span', { class: 'badge bad', 'data-testid': 'state-' + st.step }, 'paused') : h('span', { class: 'badge ok', 'data-testid': 'state-' + st.step }, 'active')),
        budgetGauge(st),
        h('div', { class: 'legend' }, h('span', null, h('span', { class: 'sw a' }), 'audited error'), h('span', null, h('span', { class: 'sw b' }), 'upper bound at ' + pct(st.confidence) + ' confidence'), h('span', null, h('span', { class: 'sw c' }), 'risk budget'))),
        h('div', { class: 'side' },
          h('span', { class: 'big', 'data-testid': 'audited-error-' + st.step }, pct(st.audited_error, 1)), 'audited error on ', num(st.audited), ' samples', h('br'),
          'bound ', h('strong', null, pct(st.audited_error_bound, 1)), ' · budget ', h('strong', null, pct(st.max_error, 1)), h('br'),
          over ? h('span', { class: 'badge bad' }, 'bound over budget') : st.audited ? h('span', { class: 'badge ok' }, 'within budget') : h('span', { class: 'muted' }, 'no audit sample yet'), h('br'),
          'threshold ', st.threshold === null || st.threshold === undefined ? 'none' : num(st.threshold, 3),
          st.paused ? h('p', { class: 'small' }, 'Paused: ', st.pause_reason || 'no reason given') : null,
          killSwitch(d.process, st, reload)));
    }) : h('p', { class: 'muted' }, 'No AI step.')));

  /* Queue depth and SLA; hours saved. */
  const qs = d.queues || [];
  let cum = 0;
  const savedPts = series.map(p => { cum += p.hours_saved || 0; return { at: p.at, v: cum }; });
  out.push(h('div', { class: 'grid2' },
    h('section', { class: 'card', 'aria-labelledby': 'h-queues' }, h('h2', { id: 'h-queues' }, 'Queue depth and SLA'),
      qs.length ? [hbars(qs.map(q => ({ label: q.queue, v: q.open })), 'Open tasks per queue'),
        h('div', { class: 'scroll' }, h('table', null, h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Queue'), h('th', { scope: 'col', class: 'num' }, 'Open'), h('th', { scope: 'col', class: 'num' }, 'Claimed'), h('th', { scope: 'col', class: 'num' }, 'Oldest'), h('th', { scope: 'col', class: 'num' }, 'SLA breached'))),
          h('tbody', null, qs.map(q => h('tr', null, h('th', { scope: 'row' }, q.queue),
            h('td', { class: 'num', 'data-testid': 'queue-open-' + q.queue }, num(q.open)), h('td', { class: 'num' }, num(q.claimed)),
            h('td', { class: 'num' }, dur(q.oldest_open_seconds)),
            h('td', { class: 'num', 'data-testid': 'queue-sla-' + q.queue }, num(q.sla_breached), q.sla_minutes ? h('span', { class: 'muted small' }, ' (SLA ' + num(q.sla_minutes) + ' min)') : null))))))]
        : h('p', { class: 'muted' }, 'No queue.')),
    h('section', { class: 'card', 'aria-labelledby': 'h-saved' }, h('h2', { id: 'h-saved' }, 'Hours saved against the baseline'),
      h('div', { class: 'chart' },
        barChart(savedPts, { max: Math.max(0.1, cum) * 1.1, label: 'Hours saved, cumulative over the range', fmt: v => num(v, 1) + ' h', color: '#17653a' }),
        h('div', { class: 'side' }, h('span', { class: 'big' }, num(t.hours_saved, 1) + ' h'), 'saved: ', num(t.decided_by_ai), ' items decided by the AI × ',
          num(base.minutes_per_item, 1), ' min a person would spend', base.error_rate !== undefined ? [h('br'), h('span', { class: 'muted' }, 'error before AI: ' + pct(base.error_rate, 1))] : null)),
      seriesTable('Hours saved per ' + d.bucket, series, [['Time', p => time(p.at, true)], ['Hours saved', p => num(p.hours_saved, 2)]]))));

  /* Top confusions and recent decisions. */
  const conf = (d.confusions || []).slice(0, 10);
  const recent = d.recent || [];
  out.push(h('div', { class: 'grid2' },
    h('section', { class: 'card', 'aria-labelledby': 'h-conf' }, h('h2', { id: 'h-conf' }, 'Top confusions'),
      h('p', { class: 'muted small' }, 'What the AI proposed, and what people said it was.'),
      conf.length ? [hbars(conf.map(c => ({ label: c.proposed + ' → ' + c.actual, v: c.count, color: '#a3161b' })), 'Top confusions: proposed, then actual'),
        seriesTable('Top confusions', conf, [['AI proposed', c => c.proposed], ['Actually', c => c.actual], ['Times', c => c.count]])]
        : h('p', { class: 'muted' }, 'No overrides yet.')),
    h('section', { class: 'card', 'aria-labelledby': 'h-recent' }, h('h2', { id: 'h-recent' }, 'Recent decisions'),
      recent.length ? h('div', { class: 'scroll' }, h('table', null,
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Item'), h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col', class: 'num' }, 'Conf.'), h('th', { scope: 'col' }, 'By'), h('th', { scope: 'col' }, 'When'))),
        h('tbody', null, recent.slice(0, 12).map(r => h('tr', null,
          h('td', { class: 'nowrap' }, h('a', { href: '#/item/' + enc(r.item_id), class: 'mono small' }, r.item_id)),
          h('td', { class: 'small' }, String(r.value)), h('td', { class: 'num small' }, pct(r.confidence)),
          h('td', { class: 'small' }, r.autonomous ? h('span', { class: 'badge accent' }, 'AI alone') : r.by),
          h('td', { class: 'small nowrap' }, timeEl(r.at)))))))
        : h('p', { class: 'muted' }, 'No decision yet.'))));
  if (proc && proc.kpis) {
    out.push(h('p', { class: 'muted small' }, 'KPIs of ', d.process, ': ', proc.kpis.join(', '), '. Owner: ', proc.owner || '–', '.'));
  }
  return out;
}

/* The kill switch of a step: only for admins and owners of the process. */
function killSwitch(process, st, reload) {
  if (!canKill(process)) return null;
  const pause = !st.paused;
  return h('p', { class: 'kill' }, h('button', {
    type: 'button', class: (pause ? 'danger' : 'primary') + ' nowrap', title: 'The kill switch: ' + (pause ? 'send every item of this step to a person' : 'give the AI back its autonomy'), 'data-testid': (pause ? 'pause-' : 'resume-') + st.step,
    onclick: async () => {
      const r = await confirmDialog(pause
        ? { title: 'Pause the AI at ' + process + ' / ' + st.step + '?', text: 'Every new item of this step will go to a person until someone resumes it. This is recorded on the audit trail.', ok: 'Pause', reason: true, danger: true }
        : { title: 'Resume the AI at ' + process + ' / ' + st.step + '?', text: 'The AI decides alone again where its error is proven to stay under the budget.', ok: 'Resume' });
      if (!r.ok) return;
      try {
        await api('POST', '/v1/processes/' + enc(process) + '/steps/' + enc(st.step) + '/' + (pause ? 'pause' : 'resume'), pause && r.reason ? { reason: r.reason } : undefined);
        say(pause ? 'Paused: items of ' + st.step + ' now go to a person.' : 'Resumed: the AI decides ' + st.step + ' alone again within its budget.');
      } catch (e) {
        say(e.message, 9000);
      }
      await reload();
      const again = document.querySelector('[data-testid="' + (pause ? 'resume-' : 'pause-') + st.step + '"]');
      if (again) again.focus();
    },
  }, pause ? 'Pause AI' : 'Resume AI', h('span', { class: 'vh' }, ' at ' + process + ' / ' + st.step)));
}

/* ---- registry ------------------------------------------------------------------------ */

async function viewRegistry(el, _parts, _q, gen) {
  document.title = 'Registry · tandem';
  const holder = h('div');
  el.append(h('div', { class: 'pagehead' }, h('h1', null, 'Registry of AI use cases')),
    h('p', { class: 'muted' }, 'Every step where an AI decides or proposes: who owns it, its risk budget, how much it decides alone and what the audit found.'), holder);
  const load = async () => {
    const { data } = await api('GET', '/v1/registry');
    if (gen !== S.gen) return;
    const ucs = data.use_cases || [];
    holder.replaceChildren(h('div', { class: 'card' }, ucs.length ? h('div', { class: 'scroll' }, h('table', { 'data-testid': 'registry' },
      h('thead', null, h('tr', null, ['Use case', 'Owners', 'KPIs', 'Risk budget', 'Threshold', 'Automation', 'Audited error', 'State'].map(c => h('th', { scope: 'col' }, c)))),
      h('tbody', null, ucs.map(u => {
        const rb = u.risk_budget || {};
        const over = u.audited_error_bound !== null && u.audited_error_bound > rb.max_error;
        return h('tr', { 'data-usecase': u.process + '/' + u.step },
          h('th', { scope: 'row', class: 'nowrap' }, may('dashboard') ? h('a', { href: '#/dashboard/' + enc(u.process) }, u.process) : u.process, ' / ', u.step,
            h('div', { class: 'muted small' }, u.allocation + ' · model v' + (u.model_version ?? '–'))),
          h('td', { class: 'small' }, u.owner, u.process_owner && u.process_owner !== u.owner ? h('div', { class: 'muted' }, 'process: ' + u.process_owner) : null),
          h('td', { class: 'small' }, (u.kpis || []).join(', ') || '–'),
          h('td', { class: 'small nowrap' }, 'error ≤ ' + pct(rb.max_error, 1), h('div', { class: 'muted' }, 'at ' + pct(rb.confidence) + ' · audit ' + pct(rb.audit_sample, 1))),
          h('td', { class: 'num small' }, u.threshold === null ? 'none' : num(u.threshold, 3)),
          h('td', { class: 'num small' }, pct(u.automation_rate, 1), h('div', { class: 'muted' }, num(u.autonomous) + ' / ' + num(u.routed))),
          h('td', { class: 'num small' }, pct(u.audited_error, 1), h('div', { class: over ? 'error' : 'muted' }, 'bound ' + pct(u.audited_error_bound, 1) + ' · n=' + num(u.audited))),
          h('td', null, u.paused ? [h('span', { class: 'badge bad', 'data-testid': 'state-' + u.step }, 'paused'), h('div', { class: 'small muted' }, u.pause_reason || '')] : h('span', { class: 'badge ok', 'data-testid': 'state-' + u.step }, 'active'),
            killSwitch(u.process, { step: u.step, paused: u.paused }, load)));
      })))) : h('p', { class: 'muted' }, 'No AI use case yet.')));
  };
  await load();
  focusHeading(el);
}

/* ---- audit --------------------------------------------------------------------------- */

function summary(data) {
  if (data === null || data === undefined) return '';
  if (typeof data !== 'object') return String(data);
  const parts = Object.entries(data).map(([k, v]) => k + '=' + (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)));
  const text = parts.join(' · ');
  return text.length > 96 ? text.slice(0, 95) + '…' : text;
}
/* An audit entry's subject, linked to its page where the workspace has one. */
function subjectLink(e) {
  const kind = e.event.split('.')[0];
  if (kind === 'item') return h('a', { href: '#/item/' + enc(e.subject) }, e.subject);
  if (kind === 'task') return h('a', { href: '#/task/' + enc(e.subject) }, e.subject);
  if (kind === 'decision' && e.data && e.data.item) return h('a', { href: '#/item/' + enc(e.data.item), title: 'decision on item ' + e.data.item }, e.subject);
  return e.subject;
}

async function viewAudit(el, _parts, query, gen) {
  document.title = 'Audit trail · tandem';
  const f = { event: query.get('event') || '', actor: query.get('actor') || '', subject: query.get('subject') || '' };
  const filtered = !!(f.event || f.actor || f.subject);
  const verify = await api('GET', '/v1/audit/verify');
  if (gen !== S.gen) return;
  /* Unfiltered, the trail opens on its latest page (sequence numbers have no gaps). */
  const after = query.get('after') || (filtered ? '0' : String(Math.max(0, verify.data.entries - 50)));
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  q.set('after', after);
  q.set('limit', '50');
  const page = await api('GET', '/v1/audit?' + q);
  if (gen !== S.gen) return;
  const v = verify.data;
  const input = (name, label, hint) => h('div', { class: 'field' }, h('label', { for: 'f-' + name }, label),
    h('input', { id: 'f-' + name, name, type: 'text', value: f[name], autocomplete: 'off', placeholder: hint }));
  const form = h('form', { class: 'filters card', role: 'search', 'aria-label': 'Filter the audit trail' },
    input('event', 'Event', 'e.g. task.completed'), input('actor', 'Actor', 'e.g. ana'), input('subject', 'Subject', 'id, or prefix*'),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Filter'), h('a', { href: '#/audit', class: 'btn' }, 'Clear')));
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const n = new URLSearchParams();
    for (const k of ['event', 'actor', 'subject']) {
      const val = form.elements[k].value.trim();
      if (val) n.set(k, val);
    }
    location.hash = '#/audit' + (n.toString() ? '?' + n : '');
  });
  const entries = page.data.entries || [];
  const nextQ = new URLSearchParams(q);
  nextQ.delete('limit');
  nextQ.set('after', page.data.next);
  el.append(
    h('div', { class: 'pagehead' }, h('h1', null, 'Audit trail')),
    v.ok ? h('div', { class: 'banner ok', 'data-testid': 'chain' }, h('strong', null, 'Chain verified: '), 'all ', num(v.entries), ' entries match their hashes and their predecessors.')
      : h('div', { class: 'banner bad', role: 'alert', 'data-testid': 'chain' }, h('strong', null, 'Chain broken at entry ' + v.first_bad + ': '), v.reason || 'a hash does not match', ' (', num(v.entries), ' entries).'),
    form,
    h('div', { class: 'card' },
      entries.length ? h('div', { class: 'scroll' }, h('table', { 'data-testid': 'audit' },
        h('thead', null, h('tr', null, ['Seq', 'Time', 'Actor', 'Event', 'Subject', 'Data'].map(c => h('th', { scope: 'col' }, c)))),
        h('tbody', null, entries.map(e => h('tr', null,
          h('td', { class: 'num' }, e.seq), h('td', { class: 'nowrap small' }, h('time', { datetime: e.at, title: e.at }, clock(e.at))), h('td', { class: 'small' }, e.actor),
          h('td', { class: 'small' }, h('code', null, e.event)), h('td', { class: 'small mono' }, subjectLink(e)),
          h('td', { class: 'small muted', title: JSON.stringify(e.data) }, summary(e.data)))))))
        : h('p', { class: 'muted' }, 'No entries match.'),
      h('div', { class: 'row' },
        !filtered && Number(after) > 0 ? h('a', { class: 'btn', href: '#/audit?after=' + Math.max(0, Number(after) - 50), 'data-testid': 'audit-prev' }, '← Earlier entries') : null,
        filtered && after !== '0' ? h('a', { class: 'btn', href: '#/audit?' + (() => { const p = new URLSearchParams(q); p.delete('after'); p.delete('limit'); return p; })() }, 'From the start') : null,
        (page.data.end === undefined ? entries.length === 50 : !page.data.end) ? h('a', { class: 'btn', href: '#/audit?' + nextQ, 'data-testid': 'audit-next' }, 'Later entries →') : null,
        h('span', { class: 'muted small' }, entries.length ? 'Entries ' + entries[0].seq + '–' + entries[entries.length - 1].seq + (filtered ? ' matching the filter' : ' of ' + num(v.entries)) : ''))));
  focusHeading(el);
}

/* ---- start --------------------------------------------------------------------------- */

document.getElementById('signout').addEventListener('click', () => signOut('Signed out.', false));
document.getElementById('keys').addEventListener('click', showHelp);
document.getElementById('skip').addEventListener('click', ev => {
  ev.preventDefault();
  main().focus();
});
window.addEventListener('hashchange', () => {
  if (location.hash === '#main') return;
  render();
});
render();
