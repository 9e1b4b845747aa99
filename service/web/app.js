// Billing ledger web page: billed-per-month chart, usage history with drill-down, invoices as
// documents, all for one organization and one period, linked through one selected month.
//
// Plain browser JavaScript with no dependencies: the service serves this file as is, and the
// page must work with no access to anything but the ledger itself (its CSP forbids the rest).
//
// WARNING: money arrives as exact decimal strings. It is formatted with string and BigInt
// arithmetic only; Number() is used for bar geometry and the approximate compact chart labels,
// never for a figure a reader takes as exact.
//
// Stale money is the worst bug a billing page can have: every load first clears (another org,
// another token) or greys out (another period or cost center) what it replaces, and every error
// clears all figures, so no amount is ever shown under a name it does not belong to.
'use strict';

(() => {
  // The token lives in this tab's sessionStorage: it survives a reload but not the tab.
  const TOKEN_STORAGE_KEY = 'ledger.token';
  const DEFAULT_ORG = 'acme';
  // The SPEC's dashboard range is 1..36 months; the selector offers these, a link may ask any.
  const MONTHS_MAX = 36;
  const DEFAULT_MONTHS = 6;
  const ORG_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
  const MONTH_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;
  // Drill-down ids are opaque base64url; the URL joins the open path with '/'.
  const ITEM_ID_PATTERN = /^[A-Za-z0-9_-]{1,512}$/;
  const PATH_DEPTH_MAX = 3;
  const MONTH_LONG = ['January', 'February', 'March', 'April', 'May', 'June', 'July',
                      'August', 'September', 'October', 'November', 'December'];
  const USAGE_LEVELS = ['service', 'provider', 'resource', 'SKU'];
  const CATEGORY_WORDS = { usage: 'Usage', support: 'Support', credit: 'Credit', adjustment: 'Late charge' };
  const SVG_NS = 'http://www.w3.org/2000/svg';
  // The chart's one fill pattern: forecast bars are hatched so they never read as billed.
  const FORECAST_HATCH_ID = 'forecast-hatch';
  // A downloaded file's object URL is released after the browser has had time to start saving it.
  const DOWNLOAD_URL_LIFETIME_MS = 60_000;
  // Events asked for per "Load more" in an explanation: a page a reader can scan, and far
  // under the SPEC's 10000, so the first rows show at once even behind a huge figure.
  const EXPLAIN_PAGE_EVENTS = 200;
  // An invoice line's events are picked here out of the whole invoice's, so those are read in
  // the SPEC's default page of 1000, and one "Load more" reads at most this many pages: a click
  // on a small line of a huge invoice always ends, reporting how far it got.
  const EXPLAIN_SCAN_PAGE_EVENTS = 1000;
  const EXPLAIN_SCAN_PAGES_MAX = 10;
  // Explanation lines carry the ledger's nine decimals; sums are BigInts at this scale.
  const EXACT_DIGITS = 9;
  // A seal's hash is shown by its first characters; the title and "Copy" hold all 64.
  const HASH_SHOWN_CHARS = 12;
  const ENVELOPE_KEYS = new Set(['event_id', 'org_id', 'occurred_at', 'source']);

  const $ = (id) => document.getElementById(id);

  const state = {
    org: DEFAULT_ORG,
    token: '',
    months: DEFAULT_MONTHS,
    costCenter: '',
    month: null,        // the selected month: open in the history, its invoices shown
    path: [],           // the drill path open under the selected month (item ids)
    invoice: null,      // the invoice whose lines are open
    structure: null,    // GET /v1/orgs/{org}
    dashboard: null,
    history: null,
    alerts: null,       // GET .../alerts: every month's, filtered when shown
    currency: '',
    minorDigits: 2,
  };
  // Bumped by every load; an answer for an older generation is dropped.
  let generation = 0;
  let loadController = null;

  // ---------------------------------------------------------------------------------------
  // Building DOM. Everything from the API goes in through textContent or attributes, never
  // through innerHTML, so labels such as resource ids can hold any character safely.

  function h(tag, attrs, ...children) {
    return build(document.createElement(tag), attrs, children);
  }

  function svg(tag, attrs, ...children) {
    return build(document.createElementNS(SVG_NS, tag), attrs, children);
  }

  function build(node, attrs, children) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.setAttribute('class', value);
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  let idCounter = 0;
  const nextId = (prefix) => `${prefix}-${++idCounter}`;

  // ---------------------------------------------------------------------------------------
  // Months.

  function monthLong(ym) {
    const [year, month] = ym.split('-');
    const name = MONTH_LONG[Number(month) - 1];
    return name ? `${name} ${year}` : ym;
  }

  function monthShort(ym) {
    const [year, month] = ym.split('-');
    return { year, name: (MONTH_LONG[Number(month) - 1] || ym).slice(0, 3) };
  }

  // "1–31 January 2026": the days an invoice of that month covers (UTC, as the ledger counts).
  function billingPeriod(ym) {
    const [year, month] = ym.split('-').map(Number);
    const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
    return `1–${days} ${monthLong(ym)}`;
  }

  // ---------------------------------------------------------------------------------------
  // Exact decimal strings.

  function parseDecimal(text) {
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text));
    return m ? { negative: m[1] === '-', whole: m[2], fraction: m[3] || '' } : null;
  }

  // The value times 10^scale as a BigInt (the fraction padded or, if longer, refused).
  function toScaled(text, scale) {
    const p = parseDecimal(text);
    if (!p || p.fraction.length > scale) return null;
    const digits = BigInt(p.whole + p.fraction.padEnd(scale, '0'));
    return p.negative ? -digits : digits;
  }

  function fromScaled(value, scale) {
    const negative = value < 0n;
    const digits = (negative ? -value : value).toString().padStart(scale + 1, '0');
    const whole = digits.slice(0, digits.length - scale);
    const fraction = scale ? '.' + digits.slice(digits.length - scale) : '';
    return (negative && /[1-9]/.test(digits) ? '-' : '') + whole + fraction;
  }

  const scaleOf = (texts) => Math.max(0, ...texts.map((t) => (parseDecimal(t) || { fraction: '' }).fraction.length));

  function sumDecimals(texts) {
    const scale = scaleOf(texts);
    const ints = texts.map((t) => toScaled(t, scale));
    if (ints.some((v) => v === null)) return null;
    return fromScaled(ints.reduce((a, b) => a + b, 0n), scale);
  }

  function compareDecimals(a, b) {
    const scale = scaleOf([a, b]);
    const x = toScaled(a, scale);
    const y = toScaled(b, scale);
    if (x === null || y === null) return 0;
    return x < y ? -1 : x > y ? 1 : 0;
  }

  // Rounds half away from zero to `digits` decimals, as the ledger rounds invoice totals.
  function roundDecimal(text, digits) {
    const p = parseDecimal(text);
    if (!p) return null;
    if (p.fraction.length <= digits) return fromScaled(toScaled(text, digits), digits);
    const scale = p.fraction.length;
    const magnitude = BigInt(p.whole + p.fraction);
    const unit = 10n ** BigInt(scale - digits);
    let rounded = magnitude / unit;
    if ((magnitude % unit) * 2n >= unit) rounded += 1n;
    return fromScaled(p.negative ? -rounded : rounded, digits);
  }

  const isZero = (text) => /^-?0+(\.0+)?$/.test(String(text));
  const isNegative = (text) => String(text).startsWith('-') && !isZero(text);

  // "12.3%" of `part` in `whole`, exact to a tenth of a percent; null where a share means nothing.
  function shareOf(part, whole) {
    const scale = scaleOf([part, whole]);
    const x = toScaled(part, scale);
    const y = toScaled(whole, scale);
    if (x === null || y === null || y <= 0n) return null;
    const negative = x < 0n;
    const tenths = ((negative ? -x : x) * 2000n / y + 1n) / 2n; // per-mille, half away from zero
    return `${negative ? '−' : ''}${fromScaled(tenths, 1)}%`;
  }

  const groupDigits = (whole) => whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');

  // The currency's symbol and where it goes, from the browser's own locale data; the digits
  // themselves are grouped here so nothing passes through a binary float.
  const affixCache = new Map();
  function currencyAffixes(currency) {
    if (affixCache.has(currency)) return affixCache.get(currency);
    let affixes = { prefix: '', suffix: currency ? ` ${currency}` : '', digits: 2 };
    try {
      const format = new Intl.NumberFormat('en-US', { style: 'currency', currency });
      const parts = format.formatToParts(1);
      const at = parts.findIndex((p) => p.type === 'integer');
      const text = (list) => list.filter((p) => p.type === 'currency' || p.type === 'literal').map((p) => p.value).join('');
      affixes = {
        prefix: text(parts.slice(0, at)),
        suffix: text(parts.slice(at + 1).filter((p) => p.type !== 'decimal' && p.type !== 'fraction')),
        digits: format.resolvedOptions().maximumFractionDigits,
      };
    } catch (_) {
      // Not an ISO 4217 code the browser knows: the code is written after the figure.
    }
    affixCache.set(currency, affixes);
    return affixes;
  }

  // "$1,234.56" / "-$1,234.56" from an exact decimal string, every digit kept.
  function formatMoney(text, currency = state.currency) {
    const p = parseDecimal(text);
    if (!p) return String(text);
    const { prefix, suffix } = currencyAffixes(currency);
    const sign = isNegative(text) ? '-' : '';
    return `${sign}${prefix}${groupDigits(p.whole)}${p.fraction ? '.' + p.fraction : ''}${suffix}`;
  }

  // Line detail to the minor unit; a charge too small to show says so instead of "0.00".
  function formatDetail(text, currency = state.currency) {
    const rounded = roundDecimal(text, state.minorDigits);
    if (rounded === null) return String(text);
    if (isZero(rounded) && !isZero(text)) {
      const smallest = fromScaled(1n, state.minorDigits);
      return isNegative(text) ? `> -${formatMoney(smallest, currency)}` : `< ${formatMoney(smallest, currency)}`;
    }
    return formatMoney(rounded, currency);
  }

  // An amount on screen. `data-amount` always holds the ledger's exact string.
  //   kind 'total': already at the minor unit, shown in full.
  //   kind 'exact': every decimal the ledger sent, shown in full (explanations).
  //   kind 'detail': shown to the minor unit; the exact nine decimals are in the title and
  //   appear in place when "Exact line amounts" is ticked.
  // Zeros are quiet where `quiet` is set: a dash, with the word for screen readers.
  function amountNode(text, kind, options = {}) {
    const classes = ['amount', `amount-${kind}`];
    if (isNegative(text)) classes.push('negative');
    const zero = isZero(text);
    if (zero) classes.push('zero');
    if (options.extraClass) classes.push(options.extraClass);
    const node = h('span', { class: classes.join(' '), 'data-amount': text });
    if (zero && options.quiet) {
      node.append(h('span', { 'aria-hidden': 'true', text: '–' }), h('span', { class: 'visually-hidden', text: 'zero' }));
      return node;
    }
    if (kind === 'total' || kind === 'exact') {
      node.textContent = formatMoney(text);
      return node;
    }
    node.title = `${formatMoney(text)} exactly`;
    node.append(h('span', { class: 'amt-round', text: formatDetail(text) }),
      h('span', { class: 'amt-exact', text: formatMoney(text) }));
    return node;
  }

  // ---------------------------------------------------------------------------------------
  // Talking to the ledger.

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const orgBase = () => `/v1/orgs/${encodeURIComponent(state.org)}`;

  function orgUrl(path, query) {
    let url = path ? `${orgBase()}/${path}` : orgBase();
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== '' && value !== null && value !== undefined) params.set(key, value);
    }
    const qs = params.toString();
    return qs ? `${url}?${qs}` : url;
  }

  async function request(url, signal, accept) {
    const headers = { Accept: accept };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    let response;
    try {
      response = await fetch(url, { headers, signal, cache: 'no-store' });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new ApiError(0, 'network', 'The ledger service could not be reached.');
    }
    if (!response.ok) {
      let error = {};
      try {
        error = (JSON.parse(await response.text()) || {}).error || {};
      } catch (_) {
        error = {};
      }
      throw new ApiError(response.status, error.code || '', error.message || response.statusText);
    }
    return response;
  }

  async function api(url, signal) {
    const response = await request(url, signal, 'application/json');
    let body = null;
    try {
      body = JSON.parse(await response.text());
    } catch (_) {
      body = null;
    }
    if (body === null || typeof body !== 'object') {
      throw new ApiError(response.status, 'bad_response', 'The service answered with something that is not JSON.');
    }
    return body;
  }

  // An NDJSON answer as a list of objects; a line that is not a JSON object fails the whole
  // answer, because a list with a line left out would add up to the wrong figure.
  async function apiLines(url, signal) {
    const response = await request(url, signal, 'application/x-ndjson');
    const lines = [];
    for (const text of (await response.text()).split('\n')) {
      if (!text.trim()) continue;
      let line = null;
      try {
        line = JSON.parse(text);
      } catch (_) {
        line = null;
      }
      if (line === null || typeof line !== 'object') {
        throw new ApiError(response.status, 'bad_response', 'The service answered with a line that is not JSON.');
      }
      lines.push(line);
    }
    return lines;
  }

  const isAbort = (err) => err && err.name === 'AbortError';

  // Turns an API failure into words for a person.
  function explain(err, what) {
    if (err.status === 401) return 'This ledger needs an access token. Enter your token at the top of the page and press Load.';
    if (err.status === 403) return `Your access token is not allowed to read organization "${state.org}". Enter a token for this organization and press Load.`;
    if (err.status === 404 && err.code === 'unknown_cost_center') return `There is no cost center "${state.costCenter}" in this organization.`;
    if (err.status === 404 && (err.code === 'unknown_org' || what === 'org')) return `Unknown organization "${state.org}". Check the organization id and press Load.`;
    if (err.status === 404) return `${what} was not found.`;
    if (err.status === 0) return 'The ledger service cannot be reached. Check that it is running, then press Load.';
    if (err.status === 503) return 'The ledger is still catching up after a restart. Try again in a moment.';
    if (err.status === 400) return `The request was refused: ${err.message}`;
    return `The service reported an error (${err.status}${err.code ? ', ' + err.code : ''}): ${err.message}`;
  }

  function showBanner(text, kind = 'error') {
    const banner = $('banner');
    banner.textContent = text;
    banner.dataset.kind = kind;
    banner.hidden = false;
  }

  function clearBanner() {
    $('banner').textContent = '';
    $('banner').hidden = true;
  }

  function setStatus(element, text, kind) {
    element.textContent = text;
    element.classList.toggle('error', kind === 'error');
  }

  // ---------------------------------------------------------------------------------------
  // Whole-page loading. Every figure on the page comes from one load (one generation).

  const SECTIONS = ['dashboard', 'history', 'invoices'];

  // Removes every figure of the previous view, so nothing can be read under the wrong name.
  function clearFigures(message) {
    closeExplain();
    state.dashboard = null;
    state.history = null;
    $('kpis').replaceChildren();
    $('kpis').hidden = true;
    $('chart').replaceChildren();
    $('chart-table').replaceChildren();
    $('chart-table-box').hidden = true;
    state.alerts = null;
    $('alerts-list').replaceChildren();
    $('alerts').hidden = true;
    $('history-body').replaceChildren();
    $('invoices-body').replaceChildren();
    $('invoice-month').replaceChildren();
    $('invoice-month').disabled = true;
    $('month-downloads').hidden = true;
    $('dashboard-sub').textContent = 'Sum of each month\'s invoice totals.';
    $('history-sub').textContent = 'Newest first. Open a month to see its line items.';
    $('invoices-sub').textContent = 'The invoices a month produces.';
    for (const id of SECTIONS) {
      setStatus($(`${id}-status`), message || '', message ? 'error' : null);
    }
  }

  function setSections(stateName) {
    for (const id of SECTIONS) {
      $(id).dataset.state = stateName;
      $(id).classList.toggle('is-loading', stateName === 'loading');
      if (stateName === 'loading') $(id).setAttribute('aria-busy', 'true');
      else $(id).removeAttribute('aria-busy');
    }
  }

  function failAll(err, what) {
    const text = explain(err, what);
    clearFigures('Not available: see the message at the top of the page.');
    showBanner(text);
    if (err.status === 401 || err.status === 403) $('token').classList.add('needs-attention');
    setSections('error');
  }

  // `fresh`: the organization or token changed, so nothing on the page is valid any more.
  async function loadView(fresh) {
    const gen = ++generation;
    if (loadController) loadController.abort();
    loadController = new AbortController();
    const signal = loadController.signal;
    clearBanner();
    // An explanation belongs to the figures this load replaces.
    closeExplain();
    $('token').classList.remove('needs-attention');
    if (fresh) {
      state.structure = null;
      // The previous organization's cost centers go with its figures.
      $('cost-center').replaceChildren(h('option', { value: '', text: 'All cost centers' }));
      clearFigures('');
      renderOrgCaption();
    }
    setSections('loading');
    for (const id of SECTIONS) setStatus($(`${id}-status`), 'Loading…');
    try {
      if (!state.structure) {
        const structure = await api(orgUrl(''), signal);
        if (gen !== generation) return;
        state.structure = structure;
        state.currency = structure.currency;
        renderOrgCaption();
        fillCostCenters();
      }
      if (state.costCenter && !costCenterInfo(state.costCenter)) {
        unknownCostCenter();
        return;
      }
      // The alerts come in the same load as the chart, so a failure of either clears both.
      const [dashboard, history, alerts] = await Promise.all([
        api(orgUrl('dashboard', { months: state.months, cost_center: state.costCenter }), signal),
        api(orgUrl('usage-history', { months: state.months }), signal),
        api(orgUrl('alerts'), signal),
      ]);
      if (gen !== generation) return;
      showView(dashboard, history, alerts);
      await applySelection(gen);
    } catch (err) {
      if (isAbort(err) || gen !== generation) return;
      failAll(err, 'org');
    }
  }

  function showView(dashboard, history, alerts) {
    state.dashboard = dashboard;
    state.history = history;
    state.alerts = alerts;
    state.currency = dashboard.currency;
    const anyTotal = history.months.find((m) => parseDecimal(m.total));
    state.minorDigits = anyTotal ? (parseDecimal(anyTotal.total).fraction.length) : currencyAffixes(state.currency).digits;
    renderKpis(dashboard);
    drawChart();
    renderChartTable(dashboard);
    renderAlerts(dashboard, alerts);
    renderHistory(history);
    fillInvoiceMonths(history);
    for (const id of SECTIONS) setStatus($(`${id}-status`), '');
    $('dashboard').dataset.state = 'ready';
    $('history').dataset.state = 'ready';
    for (const id of ['dashboard', 'history']) {
      $(id).classList.remove('is-loading');
      $(id).removeAttribute('aria-busy');
    }
  }

  function unknownCostCenter() {
    clearFigures('');
    showBanner(`There is no cost center "${state.costCenter}" in ${orgWords()}. Choose a cost center from the list.`, 'notice');
    const select = $('cost-center');
    select.append(h('option', { value: state.costCenter, text: `Unknown: ${state.costCenter}`, 'data-unknown': 'true' }));
    select.value = state.costCenter;
    for (const id of SECTIONS) setStatus($(`${id}-status`), 'Nothing shown: the cost center in the address does not exist.', 'error');
    setSections('error');
  }

  // ---------------------------------------------------------------------------------------
  // The organization and its cost centers.

  const orgWords = () => (state.structure ? `${state.structure.name} (${state.structure.org_id})` : `organization "${state.org}"`);

  function renderOrgCaption() {
    const s = state.structure;
    $('org-caption').textContent = s ? `${s.name} · ${s.org_id} · ${s.currency}` : '';
    document.title = s ? `${s.name} – Billing ledger` : 'Billing ledger';
  }

  const costCenterInfo = (id) => (state.structure ? state.structure.cost_centers.find((c) => c.cost_center_id === id) : null);

  function costCenterWords(id) {
    const cc = costCenterInfo(id);
    return cc ? `${cc.name} (${id})` : id;
  }

  function fillCostCenters() {
    const select = $('cost-center');
    select.replaceChildren(h('option', { value: '', text: 'All cost centers' }),
      ...state.structure.cost_centers.map((c) => h('option', { value: c.cost_center_id, text: `${c.name} (${c.cost_center_id})` })));
    select.value = costCenterInfo(state.costCenter) ? state.costCenter : '';
  }

  // ---------------------------------------------------------------------------------------
  // Billing dashboard: key figures, chart and its table.

  function scopeWords() {
    return state.costCenter ? `cost center ${costCenterWords(state.costCenter)}` : 'the whole organization';
  }

  // Budgets and forecasts are null where the month has none (no budget; a closed month).
  const hasFigure = (text) => text !== null && text !== undefined;

  function renderKpis(data) {
    const billed = data.months.map((m) => m.billed);
    const total = sumDecimals(billed);
    const last = data.months[data.months.length - 1];
    let peak = -1;
    data.months.forEach((m, i) => { if (peak < 0 || compareDecimals(m.billed, data.months[peak].billed) > 0) peak = i; });
    $('dashboard-sub').textContent = `Sum of each month's invoice totals for ${scopeWords()}, in ${data.currency}. Select a bar to open its month.`;
    const kpi = (label, value, note, kind) => h('div', { class: 'kpi', 'data-kpi': kind || null },
      h('dt', { text: label }),
      h('dd', {}, amountNode(value, 'total')),
      note ? h('dd', { class: 'kpi-note', text: note }) : null);
    const items = [];
    if (total !== null) items.push(kpi(`Billed, last ${data.months.length} months`, total, scopeWords()));
    if (last) items.push(kpi('Latest month', last.billed, monthLong(last.month)));
    if (peak >= 0) items.push(kpi('Highest month', data.months[peak].billed, monthLong(data.months[peak].month)));
    if (last && hasFigure(last.forecast)) items.push(kpi(`Forecast, ${monthLong(last.month)}`, last.forecast, forecastNote(last), 'forecast'));
    $('kpis').replaceChildren(...items);
    $('kpis').hidden = items.length === 0;
  }

  // "170.0% of the BHD 80.000 budget": how the open month's forecast stands against its budget.
  function forecastNote(m) {
    if (!hasFigure(m.budget)) return `No budget set for ${scopeWords()}`;
    const share = shareOf(m.forecast, m.budget);
    return share ? `${share} of the ${formatMoney(m.budget)} budget` : `Budget ${formatMoney(m.budget)}`;
  }

  // Round gridline steps (1, 2, 2.5, 5 times a power of ten), never finer than the minor unit.
  function niceScale(lo, hi, minStep) {
    if (hi === lo) hi = lo + Math.max(minStep, 1);
    const rough = (hi - lo) / 4;
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    let step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= rough) || 10 * power;
    step = Math.max(step, minStep);
    const first = Math.floor(lo / step);
    const lastStep = Math.ceil(hi / step);
    const ticks = [];
    for (let k = first; k <= lastStep; k++) ticks.push(k * step);
    return { min: first * step, max: lastStep * step, ticks };
  }

  // Axis ticks and bar labels are approximations by nature ("$150K"); the exact figures are
  // in each bar's name, the key figures and the table.
  function compactMoney(value) {
    // Below a thousand a decimal would read as an exact figure: whole units only.
    const fraction = Math.abs(value) < 1000 ? 0 : 1;
    try {
      return new Intl.NumberFormat('en-US', {
        style: 'currency', currency: state.currency, notation: 'compact', maximumFractionDigits: fraction,
      }).format(value);
    } catch (_) {
      return new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: fraction }).format(value);
    }
  }

  // Width of a label in px, for deciding what fits: measured in the page's own font (bar
  // amounts are bold), since a per-character guess is too narrow for capitals such as a
  // currency code ("BHD 10.250"). The guess remains where a canvas cannot measure.
  let measureContext = null;
  function textWidth(text, size, weight = 400) {
    if (measureContext === null) measureContext = document.createElement('canvas').getContext('2d') || false;
    if (!measureContext) return text.length * size * 0.6;
    measureContext.font = `${weight} ${size}px ${getComputedStyle(document.body).fontFamily}`;
    return measureContext.measureText(text).width;
  }

  // The month chart, redrawn whole for the current dashboard and the container's width: the
  // legend above it, then the billed bars with each open month's forecast behind its bar, and
  // the budget as a step line over them.
  function drawChart() {
    const data = state.dashboard;
    const container = $('chart');
    if (!data) return;
    const layout = chartLayout(data.months, Math.max(260, Math.round(container.clientWidth || 960)));
    const chart = chartFrame(data, layout);
    chart.append(chartGrid(layout));
    const [bars, texts] = chartBars(data.months, layout);
    chart.append(bars, budgetLine(data.months, layout), texts);
    container.replaceChildren(chartLegend(data.months), chart);
    container.dataset.width = String(layout.width);
  }

  // Sizes, margins, the value scale and its tick texts, and y() from a value to a pixel row.
  // The scale covers budgets and forecasts too, so neither line nor ghost bar leaves the plot.
  function chartLayout(months, width) {
    const narrow = width < 560;
    const height = narrow ? 240 : 300;
    const values = months.flatMap((m) => [m.billed, m.budget, m.forecast]).filter(hasFigure).map(Number);
    const scale = niceScale(Math.min(0, ...values), Math.max(0, ...values), Math.pow(10, -state.minorDigits));
    const tickTexts = scale.ticks.map(compactMoney);
    const margin = { top: 26, right: 8, bottom: 44, left: 12 + Math.max(...tickTexts.map((t) => textWidth(t, 11))) };
    const plotWidth = width - margin.left - margin.right;
    const plotHeight = height - margin.top - margin.bottom;
    const y = (v) => margin.top + ((scale.max - v) / (scale.max - scale.min)) * plotHeight;
    return { width, height, scale, tickTexts, margin, plotWidth, y };
  }

  // One month's figures in words, for its tooltip, its button name and the chart description.
  function monthFigures(m) {
    const parts = [`${formatMoney(m.billed)} billed`];
    if (hasFigure(m.forecast)) parts.push(`forecast ${formatMoney(m.forecast)}`);
    if (hasFigure(m.budget)) parts.push(`budget ${formatMoney(m.budget)}`);
    return `${monthLong(m.month)}: ${parts.join(', ')}`;
  }

  // The <svg> with its accessible name, a description listing every month's figures, and the
  // hatch the forecast bars are filled with.
  function chartFrame(data, layout) {
    const { width, height } = layout;
    const months = data.months;
    const chart = svg('svg', {
      class: 'bar-chart', width, height, viewBox: `0 0 ${width} ${height}`,
      role: 'group', 'aria-labelledby': 'chart-title', 'aria-describedby': 'chart-desc',
      'data-months': months.length, 'data-currency': data.currency, 'data-cost-center': state.costCenter,
    });
    chart.append(
      svg('title', { id: 'chart-title', text: `Billed per month in ${data.currency}, ${scopeWords()}` }),
      svg('desc', { id: 'chart-desc', text: months.map(monthFigures).join('; ') }),
      svg('defs', {}, svg('pattern', {
        id: FORECAST_HATCH_ID, class: 'forecast-hatch', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)',
      }, svg('rect', { class: 'hatch-ground', width: 6, height: 6 }), svg('line', { class: 'hatch-line', x1: 0, y1: 0, x2: 0, y2: 6 }))));
    return chart;
  }

  // What the marks mean. HTML rather than SVG text, so it wraps on a narrow screen instead of
  // running into the bars; series the period does not have are left out, and a missing budget
  // is said in words.
  function chartLegend(months) {
    const item = (series, text) => h('li', { class: `legend-item legend-${series}`, 'data-series': series },
      h('span', { class: 'swatch', 'aria-hidden': 'true' }), text);
    return h('ul', { class: 'chart-legend', 'aria-label': 'Chart legend' },
      item('billed', 'Billed'),
      months.some((m) => hasFigure(m.forecast)) ? item('forecast', 'Forecast (open months)') : null,
      months.some((m) => hasFigure(m.budget))
        ? item('budget', 'Budget')
        : h('li', { class: 'legend-item legend-none', 'data-series': 'none', text: `No budget set for ${scopeWords()}` }));
  }

  // Horizontal lines at the scale's ticks, each with its compact amount.
  function chartGrid({ scale, tickTexts, margin, width, y }) {
    const grid = svg('g', { class: 'grid', 'aria-hidden': 'true' });
    scale.ticks.forEach((tick, i) => {
      const ty = y(tick);
      grid.append(
        svg('line', { x1: margin.left, x2: width - margin.right, y1: ty, y2: ty, class: tick === 0 ? 'baseline' : null }),
        svg('text', { x: margin.left - 8, y: ty, class: 'tick', 'text-anchor': 'end', 'dominant-baseline': 'middle', text: tickTexts[i] }));
    });
    return grid;
  }

  // Bars are the buttons; their printed amounts and month names are a separate layer hidden
  // from assistive technology, which reads each bar's full name instead. Returns both layers.
  function chartBars(months, { plotWidth, margin, height, y }) {
    const slot = plotWidth / Math.max(1, months.length);
    const barWidth = Math.min(56, slot * 0.64);
    const labels = barLabels(months, slot);
    // Month names are thinned to every k-th when they would touch their neighbours, counted
    // from a January, so that Januaries (which carry the year) are among those kept whenever
    // k divides twelve; a January forced in beside a kept December would overlap it.
    const every = Math.max(1, Math.ceil(30 / slot));
    const phase = Math.max(0, months.findIndex((m) => m.month.endsWith('-01'))) % every;
    const bars = svg('g', { class: 'bars' });
    const texts = svg('g', { class: 'bar-texts', 'aria-hidden': 'true' });
    months.forEach((m, i) => {
      const parts = barGroup(m, i, { x0: margin.left + i * slot, slot, barWidth, y, height, margin, label: labels[i], showMonth: i % every === phase, firstShown: phase });
      bars.append(parts.group);
      texts.append(...parts.texts);
    });
    return [bars, texts];
  }

  // The budget as a step line: a level across each month's whole column, a riser where the
  // next month's budget differs, and a gap where a month has none. Drawn over the bars (a
  // budget hidden behind a tall bar would read as no budget) and clicked through.
  function budgetLine(months, { plotWidth, margin, y }) {
    const slot = plotWidth / Math.max(1, months.length);
    const layer = svg('g', { class: 'budget-layer', 'aria-hidden': 'true' });
    let previous = null; // the previous month's level, null after a month without a budget
    months.forEach((m, i) => {
      if (!hasFigure(m.budget)) {
        previous = null;
        return;
      }
      const x0 = margin.left + i * slot;
      const level = y(Number(m.budget)).toFixed(2);
      if (previous !== null && previous !== level) {
        layer.append(svg('line', { class: 'budget-riser', x1: x0.toFixed(2), x2: x0.toFixed(2), y1: previous, y2: level }));
      }
      layer.append(svg('line', {
        class: 'budget-step', x1: x0.toFixed(2), x2: (x0 + slot).toFixed(2), y1: level, y2: level,
        'data-month': m.month, 'data-budget': m.budget,
      }));
      previous = level;
    });
    return layer;
  }

  // Full amounts where they fit above every bar, else compact ones, else none.
  function barLabels(months, slot) {
    const full = months.map((m) => formatMoney(m.billed));
    if (full.every((t) => textWidth(t, 11, 600) <= slot - 4)) return full.map((text) => ({ text, size: 11 }));
    const compact = months.map((m) => compactMoney(Number(m.billed)));
    if (compact.every((t) => textWidth(t, 10, 600) <= slot - 2)) return compact.map((text) => ({ text, size: 10 }));
    return months.map(() => null);
  }

  // A bar from zero to `value` at `x` as {y, height}; at least a pixel unless the value is zero.
  function barSpan(text, y) {
    const zeroY = y(0);
    const valueY = y(Number(text));
    return { top: Math.min(valueY, zeroY), height: Math.max(isZero(text) ? 0 : 1, Math.abs(zeroY - valueY)) };
  }

  function barGroup(m, i, g) {
    const x = g.x0 + (g.slot - g.barWidth) / 2;
    const { top, height: barHeight } = barSpan(m.billed, g.y);
    const negative = isNegative(m.billed);
    const selected = m.month === state.month;
    const group = svg('g', {
      class: `bar-group${selected ? ' selected' : ''}`,
      role: 'button', tabindex: 0, 'data-month': m.month,
      'data-budget': hasFigure(m.budget) ? m.budget : null, 'data-forecast': hasFigure(m.forecast) ? m.forecast : null,
      'aria-label': `${monthFigures(m)}. Open this month.`,
      'aria-pressed': selected ? 'true' : 'false',
    }, svg('title', { text: monthFigures(m) }));
    // The whole column is the click target, not only the (possibly tiny) bar.
    group.append(svg('rect', { class: 'hit', x: g.x0.toFixed(2), y: g.margin.top, width: g.slot.toFixed(2), height: g.height - g.margin.top }));
    // The forecast is a hatched ghost of the bar, behind it: what shows above the bar is what
    // the rest of the month is expected to add.
    if (hasFigure(m.forecast)) {
      const ghost = barSpan(m.forecast, g.y);
      group.append(svg('rect', {
        class: 'forecast', x: x.toFixed(2), y: ghost.top.toFixed(2), width: g.barWidth.toFixed(2), height: ghost.height.toFixed(2),
        'data-month': m.month, 'data-forecast': m.forecast,
      }));
    }
    group.append(svg('rect', {
      class: negative ? 'bar negative' : 'bar',
      x: x.toFixed(2), y: top.toFixed(2), width: g.barWidth.toFixed(2), height: barHeight.toFixed(2),
      rx: Math.min(3, g.barWidth / 6).toFixed(2), 'data-month': m.month, 'data-billed': m.billed,
    }));
    const texts = [];
    if (g.label) {
      texts.push(svg('text', {
        x: (x + g.barWidth / 2).toFixed(2),
        y: (negative ? top + barHeight + g.label.size + 3 : top - 6).toFixed(2),
        'text-anchor': 'middle', 'font-size': g.label.size, 'data-month': m.month, text: g.label.text,
        class: `bar-amount${selected ? ' selected' : ''}`,
      }));
    }
    if (g.showMonth) {
      const { year, name } = monthShort(m.month);
      const cx = (g.x0 + g.slot / 2).toFixed(2);
      const label = svg('text', { class: `month-label${selected ? ' selected' : ''}`, 'data-month': m.month, x: cx, y: g.height - g.margin.bottom + 18, 'text-anchor': 'middle' },
        svg('tspan', { text: name }));
      if (i === g.firstShown || m.month.endsWith('-01')) label.append(svg('tspan', { x: cx, dy: 15, class: 'year', text: year }));
      texts.push(label);
    }
    const open = () => selectMonth(m.month, { push: true, scroll: true });
    group.addEventListener('click', open);
    group.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        open();
      }
    });
    return { group, texts };
  }

  // A table cell for an amount that may be absent: a quiet dash, and `none` in words.
  function optionalAmountCell(text, series, noneWords) {
    if (hasFigure(text)) return h('td', { class: `num c-${series}` }, amountNode(text, 'total'));
    return h('td', { class: `num c-${series} none`, 'data-none': 'true' },
      h('span', { 'aria-hidden': 'true', text: '–' }), h('span', { class: 'visually-hidden', text: noneWords }));
  }

  // The chart's figures as a real table: exact, and the chart's text alternative.
  function renderChartTable(data) {
    $('chart-table').replaceChildren(h('table', { class: 'data-table' },
      h('caption', { text: `Billed, budget and forecast per month for ${scopeWords()}, ${data.currency}` }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: 'Month' }),
        h('th', { scope: 'col', class: 'num', text: 'Billed' }),
        h('th', { scope: 'col', class: 'num', text: 'Budget' }),
        h('th', { scope: 'col', class: 'num', text: 'Forecast' }))),
      h('tbody', {}, data.months.map((m) => h('tr', { 'data-month': m.month },
        h('th', { scope: 'row', text: monthLong(m.month) }),
        h('td', { class: 'num c-billed' }, amountNode(m.billed, 'total')),
        optionalAmountCell(m.budget, 'budget', 'no budget'),
        optionalAmountCell(m.forecast, 'forecast', 'no forecast (closed month)'))))));
    $('chart-table-box').hidden = false;
  }

  function markSelectedBar() {
    for (const group of document.querySelectorAll('#chart .bar-group')) {
      const selected = group.dataset.month === state.month;
      group.classList.toggle('selected', selected);
      group.setAttribute('aria-pressed', selected ? 'true' : 'false');
    }
    for (const text of document.querySelectorAll('#chart .bar-texts text')) {
      text.classList.toggle('selected', text.dataset.month === state.month);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Budget alerts: what GET .../alerts raised for the months the chart shows, newest first.

  // The alerts the view shows: those of the chart's months, and with a cost center chosen only
  // that cost center's budgets (an organization budget covers more than the chart then shows).
  function alertsInView(dashboard, alerts) {
    const months = new Set(dashboard.months.map((m) => m.month));
    return (alerts.alerts || [])
      .filter((a) => months.has(a.month) && (!state.costCenter || a.cost_center_id === state.costCenter))
      .sort(newestAlertFirst);
  }

  // Newest by ledger sequence; alerts raised by one event in a fixed order (the API leaves it open).
  function newestAlertFirst(a, b) {
    return b.sequence - a.sequence
      || b.month.localeCompare(a.month)
      || a.budget_id.localeCompare(b.budget_id)
      || a.kind.localeCompare(b.kind)
      || b.threshold - a.threshold;
  }

  function renderAlerts(dashboard, alerts) {
    const shown = alertsInView(dashboard, alerts);
    const scope = state.costCenter ? `budgets of ${scopeWords()}` : 'budgets of the organization and its cost centers';
    $('alerts-sub').textContent = `Raised when a budget's charges reach one of its thresholds, or the month's forecast reaches the budget; ${scope}, last ${dashboard.months.length} months, newest first.`;
    $('alerts-list').replaceChildren(...(shown.length
      ? shown.map(alertItem)
      : [h('li', { class: 'status empty alerts-empty', text: `No budget alerts for ${scopeWords()} in these ${dashboard.months.length} months.` })]));
    $('alerts').dataset.count = String(shown.length);
    $('alerts').hidden = false;
  }

  function alertItem(a) {
    const actual = a.kind === 'actual';
    const budgetWho = a.cost_center_id ? `cost center ${costCenterWords(a.cost_center_id)}` : 'the whole organization';
    const headline = actual
      ? `Actual charges reached ${a.threshold}% of budget `
      : 'Forecast reached budget ';
    return h('li', {
      class: `alert alert-${actual ? 'actual' : 'forecast'}`, 'data-alert-id': a.alert_id, 'data-budget-id': a.budget_id,
      'data-cost-center': a.cost_center_id || '', 'data-month': a.month, 'data-kind': a.kind,
      'data-threshold': a.threshold, 'data-budget': a.budget, 'data-amount': a.amount, 'data-sequence': a.sequence,
    },
    h('span', { class: `alert-kind alert-kind-${actual ? 'actual' : 'forecast'}`, text: `${actual ? 'Actual' : 'Forecast'} ${a.threshold}%` }),
    h('div', { class: 'alert-main' },
      h('p', { class: 'alert-text' }, headline, h('span', { class: 'mono budget-id', text: a.budget_id })),
      h('p', { class: 'alert-meta' },
        h('time', { datetime: a.month, text: monthLong(a.month) }), ` · ${budgetWho} · ledger sequence ${a.sequence}`)),
    h('p', { class: 'alert-figures' },
      amountNode(a.amount, 'total', { extraClass: 'alert-amount' }), actual ? ' charged of ' : ' forecast against ',
      amountNode(a.budget, 'total', { extraClass: 'alert-budget' })));
  }

  // ---------------------------------------------------------------------------------------
  // Usage history.

  function renderHistory(data) {
    $('history-sub').textContent = `Last ${data.months.length} months, newest first, for the whole organization `
      + `(line items are kept per organization${state.costCenter ? '; the cost-center filter applies to the chart and the invoices' : ''}). `
      + 'Open a month to see its line items.';
    // Months before the first charge (typically before the org existed) fold into one quiet line.
    let firstCharged = data.months.length - 1;
    while (firstCharged >= 0 && isEmptyMonth(data.months[firstCharged])) firstCharged--;
    const shown = data.months.slice(0, firstCharged + 1);
    const quiet = data.months.slice(firstCharged + 1);
    const head = h('div', { class: 'history-head', 'aria-hidden': 'true' },
      h('span', { text: 'Month' }), h('span', { text: 'Status' }),
      h('span', { class: 'num', text: 'Usage' }), h('span', { class: 'num', text: 'Support' }),
      h('span', { class: 'num', text: 'Credits' }), h('span', { class: 'num', text: 'Late charges' }),
      h('span', { class: 'num', text: `Total (${data.currency})` }));
    const list = h('ol', { class: 'history-list' }, shown.map((m) => historyRow(m)));
    if (quiet.length) {
      const oldest = quiet[quiet.length - 1].month;
      const newest = quiet[0].month;
      list.append(h('li', { class: 'history-quiet', 'data-months': quiet.length },
        quiet.length === 1 ? `No charges in ${monthLong(newest)}.` : `No charges from ${monthLong(oldest)} to ${monthLong(newest)}.`));
    }
    $('history-body').replaceChildren(head, list);
  }

  const isEmptyMonth = (m) => [m.total, m.usage, m.support, m.credits, m.adjustments].every(isZero);

  function historyRow(m) {
    const detailId = nextId('month-detail');
    const detail = h('div', { id: detailId, class: 'month-detail', hidden: true, 'data-month': m.month });
    const cell = (label, amount, kind, extra) => h('span', { class: `cell num ${extra}` },
      h('span', { class: 'cell-label', text: label }), amountNode(amount, kind, { quiet: true }));
    const button = h('button', {
      type: 'button', class: `month-row${isEmptyMonth(m) ? ' empty' : ''}`, 'data-month': m.month,
      'aria-expanded': 'false', 'aria-controls': detailId,
    },
    h('span', { class: 'col-month' },
      h('span', { class: 'chevron', 'aria-hidden': 'true' }),
      h('time', { datetime: m.month, text: monthLong(m.month) })),
    h('span', { class: 'col-status' }, statusBadge(m.status)),
    cell('Usage', m.usage, 'detail', 'c-usage'),
    cell('Support', m.support, 'detail', 'c-support'),
    cell('Credits', m.credits, 'detail', 'c-credits'),
    cell('Late charges', m.adjustments, 'detail', 'c-adjustments'),
    cell('Total', m.total, 'total', 'c-total total'));
    button.addEventListener('click', () => {
      if (button.getAttribute('aria-expanded') === 'true') closeMonth({ push: true });
      else selectMonth(m.month, { push: true });
    });
    return h('li', { class: 'history-month', 'data-month': m.month }, button, detail);
  }

  function statusBadge(status) {
    const words = { open: 'Open', closed: 'Closed', draft: 'Draft', final: 'Final' };
    return h('span', { class: `badge badge-${status}`, text: words[status] || status });
  }

  const monthButton = (month) => document.querySelector(`#history-body button.month-row[data-month="${month}"]`);
  const monthDetail = (month) => document.querySelector(`#history-body .month-detail[data-month="${month}"]`);

  function collapseAllMonths() {
    for (const button of document.querySelectorAll('#history-body button.month-row[aria-expanded="true"]')) {
      button.setAttribute('aria-expanded', 'false');
      const detail = $(button.getAttribute('aria-controls'));
      if (detail) detail.hidden = true;
    }
  }

  function closeMonth({ push }) {
    collapseAllMonths();
    state.month = null;
    state.path = [];
    markSelectedBar();
    writeUrl(push);
  }

  // Selects a month everywhere: bar, history row (opened) and invoices.
  async function selectMonth(month, { push, scroll }) {
    const changed = month !== state.month;
    state.month = month;
    if (changed) {
      state.path = [];
      state.invoice = null;
    }
    writeUrl(push);
    markSelectedBar();
    if ($('invoice-month').value !== month && [...$('invoice-month').options].some((o) => o.value === month)) {
      $('invoice-month').value = month;
    }
    const gen = generation;
    const [detail] = await Promise.all([openMonth(month, scroll), loadInvoices(month)]);
    if (gen !== generation || !detail) return;
  }

  // Opens the month's row and loads its line items once; resolves to its detail element.
  async function openMonth(month, scroll) {
    const button = monthButton(month);
    if (!button) return null;
    collapseAllMonths();
    const detail = $(button.getAttribute('aria-controls'));
    button.setAttribute('aria-expanded', 'true');
    detail.hidden = false;
    if (scroll) button.scrollIntoView({ block: 'nearest' });
    if (detail.dataset.state === 'ready') return detail;
    if (detail.dataset.state === 'loading') return detail.loading;
    detail.dataset.state = 'loading';
    button.setAttribute('aria-busy', 'true');
    detail.replaceChildren(h('p', { class: 'status', text: `Loading line items for ${monthLong(month)}…` }));
    detail.loading = (async () => {
      const gen = generation;
      try {
        const data = await api(orgUrl(`usage-history/${encodeURIComponent(month)}`));
        if (gen !== generation) return null;
        renderMonthItems(detail, data);
        detail.dataset.state = 'ready';
      } catch (err) {
        if (gen !== generation) return null;
        detail.replaceChildren(h('p', { class: 'status error', text: explain(err, `Month ${month}`) }));
        detail.dataset.state = 'error'; // not cached: reopening tries again
      } finally {
        button.removeAttribute('aria-busy');
      }
      return detail;
    })();
    return detail.loading;
  }

  // Sorted by amount, largest first; equal amounts by label in natural order (res-2 before res-10).
  function sortItems(items) {
    return [...items].sort((a, b) => compareDecimals(b.amount, a.amount)
      || a.label.localeCompare(b.label, 'en', { numeric: true }));
  }

  function itemsHead() {
    return h('div', { class: 'items-head', 'aria-hidden': 'true' },
      h('span', { class: 'ih-item', text: 'Item' }),
      h('span', { class: 'num', text: 'Quantity' }),
      h('span', { text: 'Unit' }),
      h('span', { class: 'num', text: 'Amount' }),
      h('span', { class: 'num', text: 'Share' }),
      h('span', { class: 'ih-explain', text: 'Events' }));
  }

  function renderMonthItems(detail, data) {
    const toolbar = h('div', { class: 'detail-toolbar' },
      h('p', { class: 'detail-title', text: `Line items of ${monthLong(data.month)}, largest first` }),
      downloadButtons(`usage-history/${data.month}.csv`, `${state.org}-${data.month}`, `${monthLong(data.month)} line items`));
    if (!data.items.length) {
      detail.replaceChildren(toolbar, h('p', { class: 'status empty', text: `No charges in ${monthLong(data.month)}.` }));
      return;
    }
    const whole = sumDecimals(data.items.map((i) => i.amount));
    const tree = h('ul', { class: 'tree', 'data-depth': 0 },
      sortItems(data.items).map((item) => itemNode(data.month, item, 0, item.category, whole, [])));
    const footer = h('p', { class: 'month-total' },
      `${monthLong(data.month)} (${data.status === 'closed' ? 'closed' : 'open'}), invoiced total `,
      amountNode(data.total, 'total'));
    detail.replaceChildren(toolbar, itemsHead(), tree, footer);
  }

  function itemLabelText(item, category, depth) {
    if (category === 'adjustment' && depth === 0 && MONTH_PATTERN.test(item.label)) {
      return `Late charges for ${monthLong(item.label)}`;
    }
    return item.label;
  }

  function itemNode(month, item, depth, category, parentAmount, ancestors) {
    const label = itemLabelText(item, category, depth);
    const childrenId = nextId('children');
    const node = h('li', {
      class: 'item', 'data-id': item.id, 'data-label': item.label, 'data-amount': item.amount,
      'data-category': category, 'data-depth': depth,
    });
    let control;
    if (item.drillable) {
      control = h('button', {
        type: 'button', class: 'expand', 'aria-expanded': 'false', 'aria-controls': childrenId,
        'aria-label': `Breakdown of ${label}`,
      }, h('span', { class: 'chevron', 'aria-hidden': 'true' }));
      control.addEventListener('click', () => toggleItem({ month, item, depth, category, control, node, childrenId, ancestors }, true));
    } else {
      control = h('span', { class: 'expand-spacer', 'aria-hidden': 'true' });
    }
    const tag = depth === 0
      ? h('span', { class: `category category-${category}`, text: CATEGORY_WORDS[category] || category })
      : h('span', { class: 'level', text: category === 'usage' ? USAGE_LEVELS[depth] : '' });
    let quantity = '';
    let unit = '';
    if (item.quantity === null && depth > 0) quantity = 'mixed units';
    else if (item.quantity !== undefined && item.quantity !== null) {
      quantity = formatQuantity(item.quantity);
      unit = item.unit || '';
    }
    const share = shareOf(item.amount, parentAmount);
    node.append(h('div', { class: 'item-row' },
      h('span', { class: 'ir-control' }, control),
      h('span', { class: 'ir-tag' }, tag),
      h('span', { class: 'item-label', title: label, text: label }),
      h('span', { class: `qty num${item.quantity === null ? ' mixed' : ''}`, title: quantity ? `${item.quantity}` : null },
        h('span', { class: 'cell-label', text: 'Quantity' }), quantity,
        // Narrow screens drop the unit column; the unit then follows the quantity.
        unit ? h('span', { class: 'unit-inline', 'aria-hidden': 'true', text: ` ${unit}` }) : null),
      h('span', { class: 'unit' }, h('span', { class: 'cell-label', text: 'Unit' }), unit),
      h('span', { class: 'ir-amount num' }, h('span', { class: 'cell-label', text: 'Amount' }), amountNode(item.amount, 'detail', { quiet: true })),
      h('span', { class: 'share num' }, h('span', { class: 'cell-label', text: 'Share of parent' }), share || '–'),
      h('span', { class: 'ir-explain' },
        explainButton(label, item.amount, () => itemSubject(month, item, label, category, node)))));
    return node;
  }

  // Quantities are exact decimals too: trailing zeros go, digits are grouped, nothing is rounded.
  function formatQuantity(text) {
    const p = parseDecimal(text);
    if (!p) return String(text);
    const fraction = p.fraction.replace(/0+$/, '');
    return `${p.negative ? '-' : ''}${groupDigits(p.whole)}${fraction ? '.' + fraction : ''}`;
  }

  // Opens or closes one node; `record` puts the resulting path into the address.
  async function toggleItem(ctx, record) {
    const { month, item, depth, category, control, node, childrenId, ancestors } = ctx;
    const open = control.getAttribute('aria-expanded') !== 'true';
    control.setAttribute('aria-expanded', String(open));
    let children = node.querySelector(':scope > ul.children');
    if (record) {
      state.path = open ? [...ancestors, item.id] : ancestors;
      writeUrl(true);
    }
    if (!open) {
      if (children) children.hidden = true;
      return null;
    }
    if (children && children.dataset.state !== 'error') {
      children.hidden = false;
      return children.loading || children;
    }
    if (!children) {
      children = h('ul', { id: childrenId, class: 'tree children', 'data-depth': depth + 1 });
      node.append(children);
    }
    children.hidden = false;
    children.dataset.state = 'loading';
    control.setAttribute('aria-busy', 'true');
    children.replaceChildren(h('li', { class: 'status', text: 'Loading…' }));
    children.loading = (async () => {
      try {
        const data = await api(orgUrl(`usage-history/${encodeURIComponent(month)}/items/${encodeURIComponent(item.id)}`));
        children.replaceChildren(...(data.children.length
          ? sortItems(data.children).map((c) => itemNode(month, c, depth + 1, category, item.amount, [...ancestors, item.id]))
          : [h('li', { class: 'status empty', text: 'No further detail.' })]));
        children.dataset.state = 'ready';
      } catch (err) {
        children.replaceChildren(h('li', { class: 'status error', text: explain(err, `The breakdown of ${item.label}`) }));
        children.dataset.state = 'error';
      } finally {
        control.removeAttribute('aria-busy');
      }
      return children;
    })();
    return children.loading;
  }

  // Re-opens the drill path from the address, one level at a time; stops where an id is gone.
  async function openPath(detail, path, gen) {
    let list = detail.querySelector(':scope > ul.tree');
    for (const id of path) {
      if (!list || gen !== generation) return;
      const node = [...list.children].find((li) => li.dataset && li.dataset.id === id);
      const control = node && node.querySelector(':scope > .item-row button.expand');
      if (!control) {
        showBanner('Part of the drill-down path in the address no longer exists; showing the month instead.', 'notice');
        return;
      }
      if (control.getAttribute('aria-expanded') !== 'true') control.click();
      const children = node.querySelector(':scope > ul.children');
      list = children && children.loading ? await children.loading : children;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Invoices.

  let invoicesController = null;

  function fillInvoiceMonths(history) {
    const select = $('invoice-month');
    const months = history.months.filter((m) => !isEmptyMonth(m));
    const list = months.length ? months : history.months.slice(0, 1);
    select.replaceChildren(...list.map((m) => h('option', {
      value: m.month, text: `${monthLong(m.month)} · ${formatMoney(m.total, history.currency)}${m.status === 'closed' ? ' · closed' : ''}`,
    })));
    select.disabled = list.length === 0;
  }

  async function loadInvoices(month) {
    const section = $('invoices');
    const status = $('invoices-status');
    if (invoicesController) invoicesController.abort();
    invoicesController = new AbortController();
    const signal = invoicesController.signal;
    const gen = generation;
    section.dataset.state = 'loading';
    section.classList.add('is-loading');
    section.setAttribute('aria-busy', 'true');
    delete $('invoices-body').dataset.month;
    setStatus(status, `Loading invoices for ${monthLong(month)}…`);
    try {
      const data = await api(orgUrl('invoices', { month }), signal);
      if (gen !== generation) return;
      renderInvoices(data);
      setStatus(status, '');
      section.dataset.state = 'ready';
      if (state.invoice) await openInvoiceLines(state.invoice, false);
    } catch (err) {
      if (isAbort(err) || gen !== generation) return;
      $('invoices-body').replaceChildren();
      $('month-downloads').hidden = true;
      setStatus(status, explain(err, `Invoices for ${monthLong(month)}`), 'error');
      section.dataset.state = 'error';
    } finally {
      if (!signal.aborted) {
        section.classList.remove('is-loading');
        section.removeAttribute('aria-busy');
      }
    }
  }

  function invoicesCaption(data, shown) {
    const month = monthLong(data.month);
    if (data.mode === 'SINGLE') {
      const base = `${month} is invoiced as a single invoice for the whole organization`;
      return state.costCenter ? `${base}; it covers every cost center, ${costCenterWords(state.costCenter)} included.` : `${base}.`;
    }
    if (state.costCenter) {
      return shown.length
        ? `${month} is invoiced per cost center; this is the invoice of ${costCenterWords(state.costCenter)}.`
        : `${month} is invoiced per cost center; ${costCenterWords(state.costCenter)} has no invoice this month (no charges).`;
    }
    const perCc = data.invoices.filter((i) => i.cost_center_id).length;
    const hasOrg = data.invoices.some((i) => !i.cost_center_id);
    const ccWords = `${perCc} cost-center invoice${perCc === 1 ? '' : 's'}`;
    return `${month} is invoiced per cost center: ${ccWords}${hasOrg ? ', plus one organization invoice for charges that belong to no cost center' : ''}.`;
  }

  function renderInvoices(data) {
    const shown = state.costCenter && data.mode !== 'SINGLE'
      ? data.invoices.filter((i) => i.cost_center_id === state.costCenter)
      : data.invoices;
    $('invoices-sub').textContent = invoicesCaption(data, shown);
    const downloads = $('month-downloads');
    downloads.replaceChildren(h('span', { class: 'downloads-label', text: 'Whole month:' }),
      downloadButtons(`usage-history/${data.month}.csv`, `${state.org}-${data.month}`, `${monthLong(data.month)} line items`));
    downloads.hidden = false;
    $('invoices-body').dataset.month = data.month;
    $('invoices-body').dataset.mode = data.mode;
    if (!data.invoices.length) {
      $('invoices-body').replaceChildren(h('p', { class: 'status empty', text: `No invoices for ${monthLong(data.month)}: the month has no charges.` }));
      return;
    }
    $('invoices-body').replaceChildren(h('div', { class: 'invoice-grid' }, shown.map((i) => invoiceCard(i, data))));
  }

  function invoiceTitle(invoice, mode) {
    if (invoice.cost_center_id) {
      const cc = costCenterInfo(invoice.cost_center_id);
      return { title: cc ? cc.name : invoice.cost_center_id, id: invoice.cost_center_id, kind: 'Cost center invoice' };
    }
    const name = state.structure ? state.structure.name : state.org;
    return mode === 'SINGLE'
      ? { title: name, id: state.org, kind: 'Single invoice for the organization' }
      : { title: name, id: state.org, kind: 'Organization invoice: charges that belong to no cost center' };
  }

  function invoiceCard(invoice, data) {
    const linesId = nextId('invoice-lines');
    const lines = h('div', { id: linesId, class: 'invoice-lines', hidden: true });
    const { title, id, kind } = invoiceTitle(invoice, data.mode);
    const toggle = h('button', {
      type: 'button', class: 'button show-lines', 'aria-expanded': 'false', 'aria-controls': linesId, text: 'Show lines',
    });
    const print = h('button', { type: 'button', class: 'button print', text: 'Print', 'aria-label': `Print invoice ${invoice.invoice_id}` });
    const card = h('article', {
      class: 'invoice', 'data-invoice-id': invoice.invoice_id, 'data-status': invoice.status,
      'aria-label': `Invoice ${invoice.invoice_id}`,
    },
    h('header', { class: 'invoice-head' },
      h('div', { class: 'invoice-name' },
        h('h3', { class: 'invoice-title', text: title }),
        h('p', { class: 'invoice-kind' }, h('span', { class: 'mono', text: id }), ` · ${kind}`)),
      statusBadge(invoice.status)),
    h('dl', { class: 'invoice-facts' },
      h('div', {}, h('dt', { text: 'Invoice' }), h('dd', { class: 'mono', text: invoice.invoice_id })),
      h('div', {}, h('dt', { text: 'Billing account' }),
        invoice.billing_account === null || invoice.billing_account === undefined
          ? h('dd', { class: 'missing', text: 'not assigned' })
          : h('dd', { class: 'mono billing-account', text: invoice.billing_account })),
      h('div', {}, h('dt', { text: 'Billing period' }), h('dd', { class: 'period', text: billingPeriod(data.month) })),
      invoice.seal ? sealFact(invoice) : null),
    h('p', { class: 'invoice-total' },
      h('span', { class: 'total-label', text: 'Total' }), ' ', amountNode(invoice.total, 'total')),
    h('div', { class: 'invoice-actions' }, toggle, print,
      explainButton(`of invoice ${invoice.invoice_id}`, invoice.total, () => invoiceSubject(invoice, data), 'Explain total'),
      invoice.seal ? pdfButton(invoice) : null,
      downloadButtons(`invoices/${encodeURIComponent(invoice.invoice_id)}.csv`, `${state.org}-${invoice.invoice_id}`, `invoice ${invoice.invoice_id}`)),
    lines);
    toggle.addEventListener('click', () => {
      const open = toggle.getAttribute('aria-expanded') !== 'true';
      state.invoice = open ? invoice.invoice_id : null;
      writeUrl(true);
      if (open) openInvoiceLines(invoice.invoice_id, false);
      else closeInvoiceLines(card);
    });
    print.addEventListener('click', () => printInvoice(invoice, data));
    return card;
  }

  // A final invoice's seal: the close that sealed it and the hash of its canonical JSON, which
  // a customer's copy can be checked against. The short hash is for the eye; title and Copy
  // carry it whole.
  function sealFact(invoice) {
    const seal = invoice.seal;
    const hash = String(seal.document_hash);
    const code = h('code', {
      class: 'mono hash', title: `Document hash (SHA-256): ${hash}\nLedger hash at #${seal.sequence}: ${seal.ledger_hash}`,
      text: `${hash.slice(0, HASH_SHOWN_CHARS)}…`,
    });
    let copy = null;
    // The clipboard exists only in a secure context (https or loopback); elsewhere the title has it.
    if (navigator.clipboard) {
      const name = (word) => `${word} the document hash of invoice ${invoice.invoice_id}`;
      copy = h('button', { type: 'button', class: 'button small copy-hash', 'aria-label': name('Copy'), text: 'Copy' });
      const said = (word) => { copy.textContent = word; copy.setAttribute('aria-label', name(word)); };
      copy.addEventListener('click', () => navigator.clipboard.writeText(hash).then(() => said('Copied'), () => said('Not copied')));
    }
    return h('div', { class: 'seal-fact' }, h('dt', { text: 'Seal' }),
      h('dd', { class: 'seal', 'data-sequence': seal.sequence, 'data-document-hash': hash, 'data-ledger-hash': seal.ledger_hash },
        h('span', { class: 'seal-at', text: `Sealed at #${seal.sequence}` }), ' · ',
        h('span', { class: 'seal-hash' }, 'document hash ', code, copy)));
  }

  // The invoice as the document a customer receives, made by the ledger (final invoices only:
  // a draft still changes, and Print shows it as it stands).
  function pdfButton(invoice) {
    const b = h('button', {
      type: 'button', class: 'button small download pdf', 'data-format': 'pdf',
      'aria-label': `Download invoice ${invoice.invoice_id} as PDF`, text: 'PDF',
    });
    b.addEventListener('click', () => download(`invoices/${encodeURIComponent(invoice.invoice_id)}.pdf`,
      `${state.org}-${invoice.invoice_id}.pdf`, b, 'application/pdf'));
    return b;
  }

  function invoiceSubject(invoice, data) {
    const { title, kind } = invoiceTitle(invoice, data.mode);
    return {
      title: `Explain: invoice ${invoice.invoice_id}`,
      context: `${title} · ${kind} · ${billingPeriod(data.month)}`,
      figure: invoice.total, rounded: true, filter: null, showLine: true,
      path: `invoices/${encodeURIComponent(invoice.invoice_id)}/events`,
    };
  }

  function lineSubject(invoiceId, line) {
    return {
      title: `Explain: ${lineDescription(line)}`,
      context: `Invoice ${invoiceId} · ${CATEGORY_WORDS[line.category] || line.category} line`,
      figure: line.amount, rounded: false, filter: { category: line.category, description: line.description }, showLine: false,
      path: `invoices/${encodeURIComponent(invoiceId)}/events`,
    };
  }

  const invoiceCardOf = (id) => [...document.querySelectorAll('#invoices-body article.invoice')].find((a) => a.dataset.invoiceId === id);

  function closeInvoiceLines(card) {
    const toggle = card.querySelector('button.show-lines');
    toggle.setAttribute('aria-expanded', 'false');
    toggle.textContent = 'Show lines';
    card.querySelector('.invoice-lines').hidden = true;
  }

  async function fetchInvoice(id) {
    return api(orgUrl(`invoices/${encodeURIComponent(id)}`));
  }

  async function openInvoiceLines(id, scroll) {
    const card = invoiceCardOf(id);
    if (!card) return;
    const toggle = card.querySelector('button.show-lines');
    const lines = card.querySelector('.invoice-lines');
    toggle.setAttribute('aria-expanded', 'true');
    toggle.textContent = 'Hide lines';
    lines.hidden = false;
    if (scroll) card.scrollIntoView({ block: 'nearest' });
    if (lines.dataset.state === 'ready' || lines.dataset.state === 'loading') return;
    lines.dataset.state = 'loading';
    toggle.setAttribute('aria-busy', 'true');
    lines.replaceChildren(h('p', { class: 'status', text: 'Loading invoice lines…' }));
    try {
      // Focusable, so keyboard users can scroll the table sideways on a narrow screen.
      lines.replaceChildren(h('div', { class: 'scroll-x', tabindex: 0, role: 'region', 'aria-label': `Lines of invoice ${id}` },
        invoiceLinesTable(await fetchInvoice(id), { explain: true })));
      lines.dataset.state = 'ready';
    } catch (err) {
      lines.replaceChildren(h('p', { class: 'status error', text: explain(err, `Invoice ${id}`) }));
      lines.dataset.state = 'error';
    } finally {
      toggle.removeAttribute('aria-busy');
    }
  }

  // `explain`: each line gets its Explain button (on screen, not on paper). That table stacks
  // its rows on a phone; the explicit roles keep it a table for assistive technology there.
  function invoiceLinesTable(data, { explain: withExplain } = {}) {
    const cell = (attrs, ...children) => h('td', { role: 'cell', ...attrs }, ...children);
    return h('table', { role: 'table', class: `lines-table${withExplain ? ' with-explain' : ''}` },
      h('caption', { class: 'visually-hidden', text: `Lines of invoice ${data.invoice_id}` }),
      h('thead', { role: 'rowgroup' }, h('tr', { role: 'row' },
        h('th', { role: 'columnheader', scope: 'col', text: 'Category' }),
        h('th', { role: 'columnheader', scope: 'col', text: 'Description' }),
        h('th', { role: 'columnheader', scope: 'col', class: 'num', text: `Amount (${data.currency})` }),
        withExplain ? h('th', { role: 'columnheader', scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Events' })) : null)),
      h('tbody', { role: 'rowgroup' }, (data.lines || []).map((line) => h('tr', {
        role: 'row', class: 'line', 'data-category': line.category, 'data-description': line.description, 'data-amount': line.amount,
      },
      cell({ class: 'line-category' }, h('span', { class: `category category-${line.category}`, text: CATEGORY_WORDS[line.category] || line.category })),
      cell({ class: 'line-description', text: lineDescription(line) }),
      cell({ class: 'num line-amount' }, amountNode(line.amount, 'detail')),
      withExplain ? cell({ class: 'line-explain' },
        explainButton(`${CATEGORY_WORDS[line.category] || line.category} line ${lineDescription(line)}`, line.amount,
          () => lineSubject(data.invoice_id, line))) : null))),
      h('tfoot', { role: 'rowgroup' }, h('tr', { role: 'row' },
        h('th', { role: 'rowheader', scope: 'row', colspan: 2, text: 'Invoice total, rounded' }),
        cell({ class: 'num line-amount' }, amountNode(data.total, 'total')),
        withExplain ? cell({ class: 'line-explain' }) : null)));
  }

  const lineDescription = (line) => (line.category === 'adjustment' && MONTH_PATTERN.test(line.description)
    ? `Late charges for ${monthLong(line.description)}` : line.description);

  // The invoice as a document: the print style sheet shows only #print-doc while printing.
  async function printInvoice(invoice, data) {
    let full;
    try {
      full = await fetchInvoice(invoice.invoice_id);
    } catch (err) {
      setStatus($('invoices-status'), explain(err, `Invoice ${invoice.invoice_id}`), 'error');
      return;
    }
    const s = state.structure || { name: state.org, org_id: state.org };
    const { title, kind } = invoiceTitle(invoice, data.mode);
    const fact = (label, value, cls) => h('div', {}, h('dt', { text: label }), h('dd', { class: cls || null, text: value }));
    $('print-doc').replaceChildren(
      h('header', { class: 'doc-head' },
        h('div', {}, h('p', { class: 'doc-org', text: s.name }), h('p', { class: 'doc-org-id', text: `Organization ${s.org_id}` })),
        h('h1', { text: 'Invoice' })),
      h('dl', { class: 'doc-facts' },
        fact('Invoice', full.invoice_id, 'mono'),
        fact('Billed to', `${title} (${kind})`),
        fact('Billing account', full.billing_account || 'not assigned', full.billing_account ? 'mono' : 'missing'),
        fact('Billing period', billingPeriod(data.month)),
        fact('Status', full.status === 'final' ? 'Final' : 'Draft'),
        full.seal ? fact('Document hash', full.seal.document_hash, 'mono') : null),
      invoiceLinesTable(full),
      h('p', { class: 'doc-total' }, 'Total due ', amountNode(full.total, 'total')));
    document.body.classList.add('printing');
    $('print-doc').dataset.invoiceId = full.invoice_id;
    window.print();
  }

  window.addEventListener('afterprint', () => document.body.classList.remove('printing'));

  // CSV and FOCUS downloads. They go through fetch so the bearer token is sent; the answer is
  // handed to the browser as a file.
  function downloadButtons(path, baseName, what) {
    const button = (format, label) => {
      const b = h('button', { type: 'button', class: 'button small download', 'data-format': format, 'aria-label': `Download ${what} as ${label}`, text: label });
      b.addEventListener('click', () => download(`${path}${format === 'focus' ? '?format=focus' : ''}`, `${baseName}${format === 'focus' ? '-focus' : ''}.csv`, b));
      return b;
    };
    return h('span', { class: 'download-group' }, button('csv', 'CSV'), button('focus', 'FOCUS'));
  }

  async function download(path, fileName, button, accept = 'text/csv') {
    button.setAttribute('aria-busy', 'true');
    try {
      const response = await request(`${orgBase()}/${path}`, undefined, accept);
      const url = URL.createObjectURL(await response.blob());
      const link = h('a', { href: url, download: fileName, class: 'visually-hidden' });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), DOWNLOAD_URL_LIFETIME_MS);
    } catch (err) {
      showBanner(`The download failed: ${explain(err, fileName)}`);
    } finally {
      button.removeAttribute('aria-busy');
    }
  }

  // ---------------------------------------------------------------------------------------
  // Explanations: the ledger events behind one figure, listed in a modal dialog.
  //
  // A subject names the figure and where its events come from: { title, context, figure,
  // rounded, path, filter, showLine }. `figure` is the exact string the page shows; `rounded`
  // when it is an invoice total, i.e. the events' exact sum rounded to the minor unit; `filter`
  // ({category, description}) picks one invoice line's events out of the whole invoice's;
  // `showLine` adds a column naming the invoice line each event went into.

  let explainRun = null; // the open explanation; a new one replaces it, closing clears it

  function openExplain(subject, opener) {
    if (explainRun) explainRun.controller.abort();
    const columns = ['Sequence', 'Time', 'Kind', 'Provider', 'Resource',
      ...(subject.showLine ? ['Invoice line'] : []), `Amount (${state.currency})`, 'Raw event'];
    const run = {
      subject, opener, columns: columns.length,
      controller: new AbortController(),
      rows: 0, sum: 0n, after: null, done: false, broken: false,
      byEventId: new Map(), providers: providerNames(),
      tbody: h('tbody', { role: 'rowgroup' }),
    };
    explainRun = run;
    $('explain-title').textContent = subject.title;
    $('explain-context').textContent = subject.context;
    $('explain-figure').replaceChildren(subject.rounded ? 'Invoice total shown: ' : 'Figure shown: ',
      amountNode(subject.figure, subject.rounded ? 'total' : 'exact'));
    // Explicit roles: the narrow layout turns rows into grids, which would otherwise drop the
    // table from the accessibility tree.
    $('explain-body').replaceChildren(h('table', { role: 'table', class: `explain-table${subject.showLine ? ' with-line' : ''}` },
      h('caption', { class: 'visually-hidden', text: `Ledger events behind ${subject.title.replace(/^Explain: /, '')}` }),
      h('thead', { role: 'rowgroup' }, h('tr', { role: 'row' }, columns.map((c, i) => h('th', {
        role: 'columnheader', scope: 'col', class: i === columns.length - 2 ? 'num' : null,
      }, i === columns.length - 1 ? h('span', { class: 'visually-hidden', text: c }) : c)))),
      run.tbody));
    $('explain-check').replaceChildren();
    delete $('explain-check').dataset.result;
    const dialog = $('explain');
    if (!dialog.open) dialog.showModal();
    $('explain-body').scrollTop = 0;
    loadExplainPage(run);
  }

  // Closing forgets the explanation: none of its figures stays in the page, hidden or not.
  function closeExplain() {
    if ($('explain').open) $('explain').close();
    else forgetExplain();
  }

  function forgetExplain() {
    const run = explainRun;
    explainRun = null;
    if (run) run.controller.abort();
    for (const id of ['explain-body', 'explain-figure', 'explain-check']) $(id).replaceChildren();
    delete $('explain-check').dataset.result;
    setStatus($('explain-status'), '');
    $('explain-more').hidden = true;
    if (run && run.opener && run.opener.isConnected) run.opener.focus();
  }

  function providerNames() {
    const names = new Map();
    for (const cc of (state.structure && state.structure.cost_centers) || []) {
      for (const ws of cc.workspaces || []) {
        for (const p of ws.providers || []) names.set(p.provider_id, p.name);
      }
    }
    return names;
  }

  // One "Load more": the next page of the figure's events, or for an invoice line the next
  // pages of the invoice's until a page's worth of that line's events has been found.
  async function loadExplainPage(run) {
    const more = $('explain-more');
    const { filter } = run.subject;
    const pageEvents = filter ? EXPLAIN_SCAN_PAGE_EVENTS : EXPLAIN_PAGE_EVENTS;
    const pagesMax = filter ? EXPLAIN_SCAN_PAGES_MAX : 1;
    more.disabled = true;
    more.setAttribute('aria-busy', 'true');
    setStatus($('explain-status'), run.rows ? 'Loading more events…' : 'Loading events…');
    let added = 0;
    try {
      for (let pages = 0; pages < pagesMax && !run.done && added < EXPLAIN_PAGE_EVENTS; pages++) {
        const lines = await apiLines(orgUrl(run.subject.path, { after: run.after, limit: pageEvents }), run.controller.signal);
        if (run !== explainRun) return;
        for (const line of lines) {
          run.after = line.sequence;
          if (filter && (line.category !== filter.category || line.description !== filter.description)) continue;
          addExplainRow(run, line);
          added++;
        }
        if (lines.length < pageEvents) run.done = true;
      }
      setStatus($('explain-status'), '');
    } catch (err) {
      if (isAbort(err) || run !== explainRun) return;
      if (err.code === 'bad_response') run.broken = true;
      setStatus($('explain-status'), explain(err, 'The events behind this figure'), 'error');
    }
    more.disabled = false;
    more.removeAttribute('aria-busy');
    more.hidden = run.done || run.broken;
    renderExplainCheck(run);
  }

  function eventKind(event) {
    if (event.usage_recorded) return { key: 'usage', words: ['usage'] };
    if (event.support_charged) return { key: 'support', words: ['support'] };
    if (event.credit_applied) return { key: 'credit', words: ['credit'] };
    if (event.event_voided) {
      return { key: 'void', words: ['void', ' of ', h('span', { class: 'mono', text: event.event_voided.voided_event_id })] };
    }
    const payload = Object.keys(event).find((k) => !ENVELOPE_KEYS.has(k));
    return { key: 'other', words: [payload ? payload.replace(/_/g, ' ') : 'event'] };
  }

  const noneCell = (cls) => h('td', { role: 'cell', class: cls }, h('span', { class: 'none', 'aria-hidden': 'true', text: '–' }),
    h('span', { class: 'visually-hidden', text: 'none' }));

  function addExplainRow(run, line) {
    const amount = toScaled(line.amount, EXACT_DIGITS);
    const event = line.event && typeof line.event === 'object' ? line.event : null;
    if (amount === null || !event) {
      throw new ApiError(200, 'bad_response', `the line of sequence ${line.sequence} has no event or no exact amount`);
    }
    run.byEventId.set(event.event_id, event);
    const kind = eventKind(event);
    // A void names only the event it reverses; that one posted into the same figure, earlier,
    // unless the void landed in a later month as a late charge.
    const about = kind.key === 'void' ? run.byEventId.get(event.event_voided.voided_event_id) : event;
    const usage = about && about.usage_recorded;
    const providerName = usage ? run.providers.get(usage.provider_id) : undefined;
    const rawId = nextId('raw-event');
    const toggle = h('button', {
      type: 'button', class: 'button small raw-toggle', 'aria-expanded': 'false', 'aria-controls': rawId,
      'aria-label': `JSON of event ${event.event_id}`, text: 'JSON',
    });
    const raw = h('tr', { role: 'row', id: rawId, class: 'raw-row', hidden: true },
      h('td', { role: 'cell', colspan: run.columns }, h('pre', { class: 'raw-event', tabindex: 0, text: JSON.stringify(event, null, 2) })));
    toggle.addEventListener('click', () => {
      const open = toggle.getAttribute('aria-expanded') !== 'true';
      toggle.setAttribute('aria-expanded', String(open));
      raw.hidden = !open;
    });
    const occurred = String(event.occurred_at || '');
    run.tbody.append(h('tr', {
      role: 'row', class: 'event-row', 'data-sequence': line.sequence, 'data-amount': line.amount, 'data-kind': kind.key,
      'data-event-id': event.event_id, 'data-category': line.category, 'data-description': line.description,
    },
    h('td', { role: 'cell', class: 'ev-seq mono', text: `#${line.sequence}` }),
    h('td', { role: 'cell', class: 'ev-time' }, h('time', { datetime: occurred, text: occurred.replace('T', ' ') })),
    h('td', { role: 'cell', class: 'ev-kind' }, h('span', { class: `kind kind-${kind.key}` }, ...kind.words)),
    usage ? h('td', { role: 'cell', class: 'ev-provider', title: usage.provider_id, text: providerName || usage.provider_id }) : noneCell('ev-provider'),
    usage ? h('td', { role: 'cell', class: 'ev-resource mono', text: usage.resource_id }) : noneCell('ev-resource'),
    run.subject.showLine ? h('td', { role: 'cell', class: 'ev-line' },
      h('span', { class: `category category-${line.category}`, text: CATEGORY_WORDS[line.category] || line.category }),
      ' ', lineDescription(line)) : null,
    h('td', { role: 'cell', class: 'ev-amount num' }, amountNode(line.amount, 'exact')),
    h('td', { role: 'cell', class: 'ev-raw' }, toggle)), raw);
    run.sum += amount;
    run.rows++;
  }

  // Whether the listed events add up to the figure, exactly, once all of them are listed.
  function renderExplainCheck(run) {
    const check = $('explain-check');
    const { figure, rounded } = run.subject;
    const count = `${run.rows} event${run.rows === 1 ? '' : 's'}`;
    const sum = fromScaled(run.sum, EXACT_DIGITS);
    check.dataset.rows = String(run.rows);
    check.dataset.sum = sum;
    if (run.broken) {
      check.dataset.result = 'error';
      check.replaceChildren('The answer could not be read, so these events are not checked against the figure.');
      return;
    }
    if (!run.done) {
      check.dataset.result = 'partial';
      check.replaceChildren(`${count} so far, adding up to `, amountNode(sum, 'exact'),
        '. Load the rest to check them against the figure shown.');
      return;
    }
    const shown = rounded ? roundDecimal(sum, state.minorDigits) : sum;
    const target = toScaled(figure, EXACT_DIGITS);
    const matches = target !== null && toScaled(shown, EXACT_DIGITS) === target;
    check.dataset.result = matches ? 'match' : 'mismatch';
    const mark = h('span', { class: 'check-mark', 'aria-hidden': 'true', text: matches ? '✓' : '!' });
    if (matches) {
      check.replaceChildren(mark, `${count} add up to `, amountNode(sum, 'exact'),
        ...(rounded ? ['; rounded to the minor unit that is ', amountNode(figure, 'total'), ', the invoice total shown.'] : [', the figure shown.']));
      return;
    }
    check.replaceChildren(mark, `Warning: the ${count} add up to `, amountNode(sum, 'exact'),
      ...(rounded ? [' (rounded ', amountNode(shown, 'total'), ')'] : []),
      ', but the figure shown is ', amountNode(figure, rounded ? 'total' : 'exact'),
      '. The ledger may have changed since the page loaded: reload it and explain again.');
  }

  function itemSubject(month, item, label, category, node) {
    const trail = [];
    for (let li = node.parentElement.closest('li.item'); li; li = li.parentElement.closest('li.item')) {
      trail.unshift(itemLabelText({ label: li.dataset.label }, category, Number(li.dataset.depth)));
    }
    return {
      title: `Explain: ${label}`,
      context: `${monthLong(month)} · ${CATEGORY_WORDS[category] || category} · ${[...trail, label].join(' › ')}`,
      figure: item.amount, rounded: false, filter: null, showLine: false,
      path: `usage-history/${encodeURIComponent(month)}/items/${encodeURIComponent(item.id)}/events`,
    };
  }

  // `name` follows the visible word in the button's accessible name ("Explain total of ...").
  function explainButton(name, figure, subject, word = 'Explain') {
    const button = h('button', {
      type: 'button', class: 'button small explain', 'aria-haspopup': 'dialog',
      'aria-label': `${word} ${name}: the ledger events behind ${formatMoney(figure)}`, text: word,
    });
    button.addEventListener('click', () => openExplain(subject(), button));
    return button;
  }

  function wireExplainDialog() {
    const dialog = $('explain');
    $('explain-close').addEventListener('click', () => dialog.close());
    $('explain-more').addEventListener('click', () => { if (explainRun) loadExplainPage(explainRun); });
    dialog.addEventListener('close', forgetExplain);
    // A click on the backdrop (the dialog box itself, outside its frame) closes it too.
    dialog.addEventListener('click', (event) => { if (event.target === dialog) dialog.close(); });
  }

  // ---------------------------------------------------------------------------------------
  // The address: org, range, cost center, selected month, drill path and open invoice.

  function writeUrl(push) {
    const params = new URLSearchParams();
    params.set('org', state.org);
    if (state.months !== DEFAULT_MONTHS) params.set('months', String(state.months));
    if (state.costCenter) params.set('cost_center', state.costCenter);
    if (state.month) params.set('month', state.month);
    if (state.month && state.path.length) params.set('path', state.path.join('/'));
    if (state.invoice) params.set('invoice', state.invoice);
    const url = `${window.location.pathname}?${params}`;
    if (url === `${window.location.pathname}${window.location.search}`) return;
    if (push) history.pushState(null, '', url);
    else history.replaceState(null, '', url);
  }

  // Reads the address; what is malformed is reported and left out, never guessed.
  function readUrl() {
    const params = new URLSearchParams(window.location.search);
    const notices = [];
    const view = { org: DEFAULT_ORG, months: DEFAULT_MONTHS, costCenter: '', month: null, path: [], invoice: null, badOrg: null };
    if (params.has('org')) {
      const org = params.get('org').trim();
      if (ORG_ID_PATTERN.test(org)) view.org = org;
      else view.badOrg = org;
    }
    if (params.has('months')) {
      const text = params.get('months');
      const n = Number(text);
      if (/^\d+$/.test(text) && n >= 1 && n <= MONTHS_MAX) view.months = n;
      else notices.push(`The period "${text}" is not 1 to ${MONTHS_MAX} months; showing the last ${DEFAULT_MONTHS} months.`);
    }
    view.costCenter = (params.get('cost_center') || '').trim();
    if (params.has('month')) {
      if (MONTH_PATTERN.test(params.get('month'))) view.month = params.get('month');
      else notices.push(`"${params.get('month')}" is not a month (YYYY-MM); no month is opened.`);
    }
    if (view.month && params.has('path')) {
      const path = params.get('path').split('/');
      if (path.length <= PATH_DEPTH_MAX && path.every((id) => ITEM_ID_PATTERN.test(id))) view.path = path;
      else notices.push('The drill-down path in the address is not valid; it was left closed.');
    }
    if (params.has('invoice')) view.invoice = params.get('invoice');
    return { view, notices };
  }

  // After the view has loaded: the month, drill path and invoice the address names.
  async function applySelection(gen) {
    const known = state.history.months.some((m) => m.month === state.month);
    if (state.month && !known) {
      showBanner(`${monthLong(state.month)} is not among the months shown (${state.history.months.length} months); choose a longer period to see it.`, 'notice');
      state.month = null;
      state.path = [];
    }
    markSelectedBar();
    const select = $('invoice-month');
    const month = state.month || (select.options[0] && select.options[0].value);
    if (!month) {
      $('invoices').dataset.state = 'ready';
      $('invoices').classList.remove('is-loading');
      $('invoices').removeAttribute('aria-busy');
      setStatus($('invoices-status'), 'No months to invoice yet.');
      return;
    }
    if (![...select.options].some((o) => o.value === month)) select.append(h('option', { value: month, text: monthLong(month) }));
    select.value = month;
    const path = state.path;
    const work = [loadInvoices(month)];
    if (state.month) {
      work.push(openMonth(state.month, false).then((detail) => {
        if (detail && gen === generation && detail.dataset.state === 'ready') return openPath(detail, path, gen);
        return null;
      }));
    }
    await Promise.all(work);
    writeUrl(false);
  }

  // ---------------------------------------------------------------------------------------
  // Page wiring.

  function readStoredToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_STORAGE_KEY) || '';
    } catch (_) {
      return ''; // Storage can be disabled by browser policy; the field still works for this visit.
    }
  }

  function storeToken(token) {
    try {
      if (token) window.sessionStorage.setItem(TOKEN_STORAGE_KEY, token);
      else window.sessionStorage.removeItem(TOKEN_STORAGE_KEY);
    } catch (_) {
      // See readStoredToken.
    }
  }

  function setMonthsControl(months) {
    const select = $('months');
    if (![...select.options].some((o) => o.value === String(months))) {
      select.append(h('option', { value: String(months), text: `Last ${months} months` }));
    }
    select.value = String(months);
  }

  // Takes the view the address describes; `fresh` when the org differs from the one shown.
  function adoptUrl() {
    const { view, notices } = readUrl();
    if (view.badOrg !== null) {
      generation++;
      if (loadController) loadController.abort();
      state.structure = null;
      renderOrgCaption();
      clearFigures('');
      setSections('error');
      $('org').value = view.badOrg;
      showBanner(`"${view.badOrg}" in the address is not an organization id (1 to 64 letters, digits or . _ : -). Enter one and press Load.`, 'notice');
      return;
    }
    const fresh = view.org !== state.org || !state.structure;
    const sameData = !fresh && view.months === state.months && view.costCenter === state.costCenter;
    Object.assign(state, { org: view.org, months: view.months, costCenter: view.costCenter, month: view.month, path: view.path, invoice: view.invoice });
    $('org').value = state.org;
    setMonthsControl(state.months);
    if (state.structure) fillCostCenters();
    if (sameData && state.history) {
      clearBanner();
      applySelection(generation);
    } else {
      loadView(fresh);
    }
    if (notices.length) showBanner(notices.join(' '), 'notice');
  }

  function start() {
    state.token = readStoredToken();
    $('token').value = state.token;
    state.org = null; // nothing shown yet: the first adoptUrl is always fresh

    $('org-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const nextOrg = $('org').value.trim();
      if (!ORG_ID_PATTERN.test(nextOrg)) {
        showBanner('An organization id is 1 to 64 letters, digits or . _ : - characters.');
        $('org').focus();
        return;
      }
      if (nextOrg !== state.org) {
        // Every choice below belongs to the previous organization.
        Object.assign(state, { costCenter: '', month: null, path: [], invoice: null });
      }
      state.org = nextOrg;
      state.token = $('token').value.trim();
      storeToken(state.token);
      writeUrl(true);
      loadView(true);
    });

    $('cost-center').addEventListener('change', () => {
      state.costCenter = $('cost-center').value;
      const unknown = $('cost-center').querySelector('option[data-unknown]');
      if (unknown && unknown.value !== state.costCenter) unknown.remove();
      state.invoice = null;
      writeUrl(true);
      loadView(false);
    });

    $('months').addEventListener('change', () => {
      state.months = Number($('months').value);
      writeUrl(true);
      loadView(false);
    });

    $('invoice-month').addEventListener('change', () => selectMonth($('invoice-month').value, { push: true }));

    $('exact').addEventListener('change', () => document.body.classList.toggle('show-exact', $('exact').checked));

    window.addEventListener('popstate', adoptUrl);

    // Redraw at the new width instead of scaling the SVG, so text keeps its size.
    let lastWidth = 0;
    new ResizeObserver(() => {
      const width = Math.round($('chart').clientWidth);
      if (state.dashboard && Math.abs(width - lastWidth) > 1) drawChart();
      lastWidth = width;
    }).observe($('chart'));

    wireExplainDialog();
    adoptUrl();
  }

  start();
})();
