// The status page: the device table from /api/devices (polled with ETag), a device's
// timeline from /api/devices/{key}. Device-supplied strings only ever go through textContent.
'use strict';

const STAGES = ['dhcp-offered', 'dhcp-acked', 'dns-answered', 'redirect-served', 'progress-reported'];
const STATUSES = ['stuck', 'failed', 'handed-off', 'complete'];
const POLL_MS = 2000;

let list = null;
let etag = null;
let filter = sessionStorage.getItem('sztp-filter') || '';
let detailKey = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, tag) {
  const headers = {};
  const token = sessionStorage.getItem('sztp-token');
  if (token) headers['Authorization'] = 'Bearer ' + token;
  if (tag) headers['If-None-Match'] = tag;
  const r = await fetch(path, { headers, cache: 'no-store' });
  if (r.status === 401) {
    $('token-form').hidden = false;
    throw new Error('this appliance needs a token');
  }
  return r;
}

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

function stagesBar(d, big) {
  const reached = new Set(d.stages.map((s) => s.stage));
  const bar = el('div', { class: big ? 'stages big' : 'stages', title: 'journey: ' + STAGES.join(' → ') });
  for (const s of STAGES) {
    bar.append(el('span', { class: reached.has(s) ? 'on' : '', 'data-stage': s, title: s }, big ? s : null));
  }
  return bar;
}

function badge(status) {
  return el('span', { class: 'badge ' + status }, status);
}

function matches(d) {
  if (filter) {
    if (STAGES.includes(filter) && d.stage !== filter) return false;
    if (filter === 'none' && d.stage) return false;
    if (STATUSES.includes(filter) && d.verdict.status !== filter) return false;
  }
  const q = $('search').value.trim().toLowerCase();
  if (!q) return true;
  const hay = [d.key, ...d.macs, ...d.serials, ...d.duids, ...d.addresses, d.rule || '',
    d.asked.vendor_class || ''].join(' ').toLowerCase();
  return hay.includes(q);
}

function renderFilters() {
  const nav = $('filters');
  nav.replaceChildren();
  const counts = (list && list.counts) || {};
  const add = (value, label) => {
    const b = el('button', { type: 'button', 'data-filter': value, 'aria-pressed': String(filter === value) },
      label, value ? el('span', { class: 'n' }, counts[value] || 0) : el('span', { class: 'n' }, list ? list.total : 0));
    b.addEventListener('click', () => {
      filter = value;
      sessionStorage.setItem('sztp-filter', filter);
      renderList();
    });
    nav.append(b);
  };
  add('', 'all');
  for (const s of STAGES) add(s, s);
  for (const s of STATUSES) add(s, s);
}

function renderList() {
  renderFilters();
  const body = document.querySelector('#devices tbody');
  body.replaceChildren();
  const devices = (list ? list.devices : []).filter(matches);
  for (const d of devices) {
    const href = '#device/' + encodeURIComponent(d.key);
    const ids = [];
    if (d.macs.length && d.macs[0] !== d.key) ids.push(d.macs.join(', '));
    if (d.serials.length && d.serials[0] !== d.key) ids.push('serial ' + d.serials.join(', '));
    if (d.asked.vendor_class) ids.push(d.asked.vendor_class);
    const tr = el('tr', { 'data-key': d.key, 'data-stage': d.stage || 'none', 'data-status': d.verdict.status },
      el('td', { class: 'key', 'data-label': 'device' }, el('a', { href }, d.key),
        ids.length ? el('span', { class: 'sub' }, ids.join(' · ')) : null),
      el('td', { 'data-label': 'address' }, d.addresses.join(', ') || '–'),
      el('td', { 'data-label': 'last seen', class: 'seen', title: d.last_seen }, ago(d.last_seen),
        el('span', { class: 'sub' }, d.rule ? 'rule ' + d.rule : '')),
      el('td', { 'data-label': 'journey' }, stagesBar(d, false), el('span', { class: 'sub' }, d.stage || 'no stage yet')),
      el('td', { 'data-label': 'verdict' }, el('p', { class: 'verdict' }, badge(d.verdict.status), d.verdict.text)));
    tr.addEventListener('click', (e) => {
      if (e.target.tagName !== 'A') location.hash = href;
    });
    body.append(tr);
  }
  $('empty').hidden = !list || list.total !== 0;
}

function fact(dl, name, value) {
  if (value === null || value === undefined || value === '' || (Array.isArray(value) && !value.length)) return;
  dl.append(el('dt', {}, name), el('dd', {}, Array.isArray(value) ? value.join(', ') : value));
}

async function renderDetail(key) {
  let d;
  try {
    const r = await api('api/devices/' + encodeURIComponent(key));
    if (r.status === 404) {
      $('d-key').textContent = key;
      $('d-verdict').replaceChildren('This device is not in the table (evicted, or never seen).');
      $('d-facts').replaceChildren();
      $('d-timeline').replaceChildren();
      $('d-stages').replaceChildren();
      return;
    }
    d = await r.json();
  } catch (e) {
    setLive(e.message, true);
    return;
  }
  $('d-key').textContent = d.key;
  $('d-verdict').replaceChildren(badge(d.verdict.status), d.verdict.text);
  $('d-stages').replaceWith(Object.assign(stagesBar(d, true), { id: 'd-stages' }));
  const dl = $('d-facts');
  dl.replaceChildren();
  fact(dl, 'MAC', d.macs);
  fact(dl, 'serial', d.serials);
  fact(dl, 'DUID', d.duids);
  fact(dl, 'address', d.addresses);
  fact(dl, 'first seen', d.first_seen);
  fact(dl, 'last seen', d.last_seen);
  fact(dl, 'rule', d.rule);
  const a = d.asked;
  if (a.requested_143 !== undefined) fact(dl, 'asked for 143', a.requested_143 ? 'yes' : 'no');
  if (a.requested_136 !== undefined) fact(dl, 'asked for 136', a.requested_136 ? 'yes' : 'no');
  fact(dl, 'requested options', a.parameter_request_list);
  fact(dl, 'vendor class', a.vendor_class);
  fact(dl, 'user class', a.user_class);
  fact(dl, 'client id', a.client_id);
  fact(dl, 'media type', a.media_type);
  fact(dl, 'model / OS', [a.hw_model, a.os_name, a.os_version].filter(Boolean).join(' '));
  fact(dl, 'via', [a.interface, a.relay ? 'relay ' + a.relay : ''].filter(Boolean).join(', '));
  if (d.told) {
    fact(dl, 'told (' + d.told.proto + ')', d.told.uris);
    if (d.told.signed !== undefined) fact(dl, 'signed', d.told.signed ? 'yes' : 'no');
    fact(dl, 'encoding', d.told.encoding);
    fact(dl, 'left out (size)', d.told.uris_dropped);
  }
  const ol = $('d-timeline');
  ol.replaceChildren();
  if (d.timeline_truncated) ol.append(el('li', { class: 'sub' }, 'older events left out (' + d.events + ' in all)'));
  for (const ev of d.timeline) {
    const li = el('li', {}, el('time', { datetime: ev.ts }, ev.ts), el('span', { class: 'proto' }, ev.proto), ev.summary);
    // a step repeated (renewals, retries) is one entry: its count and first time
    if (ev.repeats > 1) li.append(el('span', { class: 'sub' }, ' ×' + ev.repeats + ' since ' + ev.first));
    ol.append(li);
  }
}

function setLive(text, bad) {
  const l = $('live');
  l.textContent = text;
  l.classList.toggle('error', !!bad);
}

async function refresh() {
  try {
    const r = await api('api/devices', etag);
    if (r.status === 200) {
      etag = r.headers.get('ETag');
      list = await r.json();
      if (!detailKey) renderList();
    } else if (r.status !== 304) {
      throw new Error('status API answered ' + r.status);
    }
    if (detailKey) await renderDetail(detailKey);
    setLive('live · ' + (list ? list.total : 0) + ' devices · updated ' + new Date().toLocaleTimeString());
  } catch (e) {
    setLive(e.message, true);
  }
}

function route() {
  const m = location.hash.match(/^#device\/(.+)$/);
  detailKey = m ? decodeURIComponent(m[1]) : null;
  $('list-view').hidden = !!detailKey;
  $('device-view').hidden = !detailKey;
  if (detailKey) renderDetail(detailKey);
  else renderList();
}

async function loop() {
  if (!document.hidden) await refresh();
  setTimeout(loop, POLL_MS);
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem('sztp-token', $('token').value.trim());
  $('token-form').hidden = true;
  etag = null;
  refresh();
});
$('search').addEventListener('input', renderList);
window.addEventListener('hashchange', route);
route();
loop();
