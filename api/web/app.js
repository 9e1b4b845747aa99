// Billing ledger web dashboard: billed-per-month chart, usage history with drill-down, invoices.
//
// Plain browser JavaScript with no dependencies, because the service serves this file as is
// and the page must work with no access to anything but the ledger itself.
//
// WARNING: money arrives as exact decimal strings and is displayed as those strings. It is
// converted to Number only to compute bar geometry; period sums use BigInt on the digits.
'use strict';

(() => {
  // The token lives in this tab's sessionStorage: it survives a reload but not
  // the tab, and no other tab or later visitor of this browser profile reads it.
  const TOKEN_STORAGE_KEY = 'ledger.token';
  const DEFAULT_ORG = 'acme';
  const MONTH_CHOICES = ['3', '6', '12', '24'];
  const DEFAULT_MONTHS = '6';
  // The usage-history list and the invoice month chooser both cover this many months.
  const HISTORY_MONTHS = 12;
  const ORG_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
  const MONTH_SHORT = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun',
                       'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const MONTH_LONG = ['January', 'February', 'March', 'April', 'May', 'June', 'July',
                      'August', 'September', 'October', 'November', 'December'];
  // Usage drills service -> provider -> resource -> sku; the tag tells readers which level a row is.
  const USAGE_LEVELS = ['service', 'provider', 'resource', 'SKU'];
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);

  const state = {
    org: DEFAULT_ORG,
    token: '',
    months: DEFAULT_MONTHS,
    costCenter: '',
    // Last dashboard answer, kept so the chart can be redrawn when the page is resized.
    dashboard: null,
    costCenters: new Set(),
  };

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
  // Months and decimal strings.

  function monthShort(ym) {
    const [year, month] = ym.split('-');
    return { year, name: MONTH_SHORT[Number(month) - 1] || ym };
  }

  function monthLong(ym) {
    const [year, month] = ym.split('-');
    const name = MONTH_LONG[Number(month) - 1];
    return name ? `${name} ${year}` : ym;
  }

  function parseDecimal(text) {
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text));
    return m ? { negative: m[1] === '-', whole: m[2], fraction: m[3] || '' } : null;
  }

  const fractionDigits = (text) => (parseDecimal(text) || { fraction: '' }).fraction.length;

  // Scales every value to the longest fraction among them, so sums and comparisons are exact.
  function toScaledBigInts(values) {
    const parsed = values.map(parseDecimal);
    if (parsed.some((p) => p === null)) return null;
    const scale = Math.max(0, ...parsed.map((p) => p.fraction.length));
    const ints = parsed.map((p) => {
      const digits = BigInt(p.whole + p.fraction.padEnd(scale, '0'));
      return p.negative ? -digits : digits;
    });
    return { scale, ints };
  }

  function formatScaled(value, scale) {
    const negative = value < 0n;
    const digits = (negative ? -value : value).toString().padStart(scale + 1, '0');
    const whole = digits.slice(0, digits.length - scale);
    const fraction = scale ? '.' + digits.slice(digits.length - scale) : '';
    return (negative ? '-' : '') + whole + fraction;
  }

  function sumDecimals(values) {
    const scaled = toScaledBigInts(values);
    if (!scaled) return null;
    return formatScaled(scaled.ints.reduce((a, b) => a + b, 0n), scaled.scale);
  }

  function indexOfMax(values) {
    const scaled = toScaledBigInts(values);
    if (!scaled || !scaled.ints.length) return -1;
    let best = 0;
    scaled.ints.forEach((v, i) => { if (v > scaled.ints[best]) best = i; });
    return best;
  }

  const isNegative = (amount) => String(amount).startsWith('-');
  const isZero = (amount) => /^-?0+(\.0+)?$/.test(String(amount));

  function amountNode(amount, extraClass) {
    const classes = ['amount'];
    if (isNegative(amount)) classes.push('negative');
    if (isZero(amount)) classes.push('zero');
    if (extraClass) classes.push(extraClass);
    return h('span', { class: classes.join(' '), text: amount });
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

  function orgUrl(path, query) {
    let url = `/v1/orgs/${encodeURIComponent(state.org)}/${path}`;
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== '' && value !== null && value !== undefined) params.set(key, value);
    }
    const qs = params.toString();
    if (qs) url += '?' + qs;
    return url;
  }

  async function api(url, signal) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    let response;
    try {
      response = await fetch(url, { headers, signal, cache: 'no-store' });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new ApiError(0, 'network', 'The ledger service could not be reached.');
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const error = (body && body.error) || {};
      throw new ApiError(response.status, error.code || '', error.message || response.statusText);
    }
    if (body === null || typeof body !== 'object') {
      throw new ApiError(response.status, 'bad_response', 'The service answered with something that is not JSON.');
    }
    return body;
  }

  // Each view keeps only its newest request alive: a quick second click on the period selector
  // must not let the slower, older answer overwrite the newer chart.
  function latestOnly() {
    let controller = null;
    return () => {
      if (controller) controller.abort();
      controller = new AbortController();
      return controller.signal;
    };
  }

  const isAbort = (err) => err && err.name === 'AbortError';

  // Turns an API failure into words for a person. Failures that concern the whole page (no
  // access, unknown organization) go to the banner once instead of repeating in every section.
  function explain(err, what) {
    if (err.status === 401) {
      return { global: true, text: 'This ledger needs an access token. Enter your token at the top of the page and press Load.' };
    }
    if (err.status === 403) {
      return { global: true, text: `Your access token is not allowed to read organization "${state.org}". Enter a token for this organization and press Load.` };
    }
    if (err.status === 404 && err.code === 'unknown_cost_center') {
      return { global: false, text: `There is no cost center "${state.costCenter}" in this organization.` };
    }
    if (err.status === 404 && (err.code === 'unknown_org' || what === 'org')) {
      return { global: true, text: `Unknown organization "${state.org}". Check the organization id and press Load.` };
    }
    if (err.status === 404) return { global: false, text: `${what} was not found.` };
    if (err.status === 0) {
      return { global: true, text: 'The ledger service cannot be reached. Check that it is running, then press Load.' };
    }
    if (err.status === 503) {
      return { global: false, text: 'The ledger is still catching up after a restart. Try again in a moment.' };
    }
    if (err.status === 400) return { global: false, text: `The request was refused: ${err.message}` };
    return { global: false, text: `The service reported an error (${err.status}${err.code ? ', ' + err.code : ''}): ${err.message}` };
  }

  function showBanner(text) {
    const banner = $('banner');
    banner.textContent = text;
    banner.hidden = false;
  }

  function clearBanner() {
    const banner = $('banner');
    banner.textContent = '';
    banner.hidden = true;
  }

  // Shows a failure in a section; returns the words used.
  function reportError(err, what, statusElement) {
    const { global, text } = explain(err, what);
    if (global) {
      showBanner(text);
      statusElement.textContent = 'Not available.';
      if (err.status === 401 || err.status === 403) $('token').classList.add('needs-attention');
    } else {
      statusElement.textContent = text;
    }
    statusElement.classList.add('error');
    return text;
  }

  function setStatus(statusElement, text) {
    statusElement.textContent = text;
    statusElement.classList.remove('error');
  }

  // ---------------------------------------------------------------------------------------
  // Billing dashboard.

  const dashboardRequest = latestOnly();

  async function loadDashboard() {
    const section = $('dashboard');
    const status = $('dashboard-status');
    const signal = dashboardRequest();
    // Captured now: the filter may change while this request is in flight.
    const costCenter = state.costCenter;
    section.dataset.state = 'loading';
    $('chart').classList.add('is-loading');
    setStatus(status, 'Loading billed amounts…');
    try {
      const data = await api(orgUrl('dashboard', { months: state.months, cost_center: costCenter }), signal);
      state.dashboard = { data, costCenter };
      renderKpis(data, costCenter);
      drawChart(data, costCenter);
      setStatus(status, '');
      section.dataset.state = 'ready';
    } catch (err) {
      if (isAbort(err)) return;
      state.dashboard = null;
      $('chart').replaceChildren();
      $('kpis').hidden = true;
      reportError(err, 'org', status);
      section.dataset.state = 'error';
    } finally {
      if (!signal.aborted) $('chart').classList.remove('is-loading');
    }
  }

  function renderKpis(data, costCenter) {
    const billed = data.months.map((m) => m.billed);
    const total = sumDecimals(billed);
    const last = data.months[data.months.length - 1];
    const peak = indexOfMax(billed);
    const scope = costCenter ? `cost center ${costCenter}` : 'whole organization';
    $('dashboard-sub').textContent = `Sum of each month's invoice totals, ${scope}, in ${data.currency}.`;
    const kpi = (label, value, note) => [
      h('div', { class: 'kpi' },
        h('dt', { text: label }),
        h('dd', {}, amountNode(value), ' ', h('span', { class: 'currency', text: data.currency })),
        note ? h('dd', { class: 'kpi-note', text: note }) : null),
    ];
    const items = [];
    if (total !== null) items.push(kpi(`Billed, last ${data.months.length} months`, total));
    if (last) items.push(kpi('Latest month', last.billed, monthLong(last.month)));
    if (peak >= 0) items.push(kpi('Highest month', data.months[peak].billed, monthLong(data.months[peak].month)));
    $('kpis').replaceChildren(...items.flat());
    $('kpis').hidden = items.length === 0;
  }

  // Picks round gridline steps (1, 2, 2.5, 5 times a power of ten) that are never finer than
  // the currency's minor unit, so a yen axis does not show half yen.
  function niceScale(lo, hi, minStep) {
    if (hi === lo) hi = lo + Math.max(minStep, 1);
    const rough = (hi - lo) / 5;
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    let step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= rough) || 10 * power;
    step = Math.max(step, minStep);
    const first = Math.floor(lo / step);
    const lastStep = Math.ceil(hi / step);
    const decimals = Math.max(0, (String(+step.toFixed(9)).split('.')[1] || '').length);
    const ticks = [];
    for (let k = first; k <= lastStep; k++) ticks.push(+(k * step).toFixed(decimals));
    return { min: first * step, max: lastStep * step, ticks, decimals };
  }

  function drawChart(data, costCenter) {
    const container = $('chart');
    const months = data.months;
    const width = Math.max(480, Math.round(container.clientWidth || 960));
    const height = 320;
    const margin = { top: 34, right: 16, bottom: 46, left: 76 };
    const plotWidth = width - margin.left - margin.right;
    const plotHeight = height - margin.top - margin.bottom;

    // Number() is used for geometry only; every amount drawn as text is the API's string.
    const values = months.map((m) => Number(m.billed));
    const minorDigits = months.length ? fractionDigits(months[0].billed) : 2;
    const scale = niceScale(Math.min(0, ...values), Math.max(0, ...values), Math.pow(10, -minorDigits));
    const y = (v) => margin.top + ((scale.max - v) / (scale.max - scale.min)) * plotHeight;
    const tickFormat = new Intl.NumberFormat('en-US', {
      minimumFractionDigits: scale.decimals,
      maximumFractionDigits: scale.decimals,
    });

    const chart = svg('svg', {
      class: 'bar-chart',
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-labelledby': 'chart-title chart-desc',
      'data-months': months.length,
      'data-currency': data.currency,
      'data-cost-center': costCenter,
    });
    chart.append(
      svg('title', { id: 'chart-title', text: `Billed per month in ${data.currency}` }),
      svg('desc', {
        id: 'chart-desc',
        text: months.map((m) => `${monthLong(m.month)}: ${m.billed} ${data.currency}`).join('; '),
      }),
    );

    const grid = svg('g', { class: 'grid' });
    for (const tick of scale.ticks) {
      const ty = y(tick);
      grid.append(
        svg('line', { x1: margin.left, x2: width - margin.right, y1: ty, y2: ty, class: tick === 0 ? 'baseline' : null }),
        svg('text', { x: margin.left - 10, y: ty, class: 'tick', 'text-anchor': 'end', 'dominant-baseline': 'middle', text: tickFormat.format(tick) }),
      );
    }
    grid.append(svg('text', {
      x: margin.left - 10, y: margin.top - 18, class: 'axis-title', 'text-anchor': 'end', text: data.currency,
    }));
    chart.append(grid);

    const slot = plotWidth / Math.max(1, months.length);
    const barWidth = Math.min(64, slot * 0.62);
    const zeroY = y(0);
    // Labels shrink on narrow bars (24 months) rather than overlap their neighbours.
    const longest = Math.max(1, ...months.map((m) => m.billed.length));
    const labelSize = Math.max(8, Math.min(12, (slot - 4) / (longest * 0.62)));

    const bars = svg('g', { class: 'bars' });
    months.forEach((m, i) => {
      const value = values[i];
      const x = margin.left + i * slot + (slot - barWidth) / 2;
      const top = Math.min(y(value), zeroY);
      const barHeight = Math.abs(zeroY - y(value));
      const negative = isNegative(m.billed) && !isZero(m.billed);
      const rect = svg('rect', {
        class: negative ? 'bar negative' : 'bar',
        x: x.toFixed(2),
        y: top.toFixed(2),
        width: barWidth.toFixed(2),
        height: barHeight.toFixed(2),
        rx: Math.min(3, barWidth / 6).toFixed(2),
        'data-month': m.month,
        'data-billed': m.billed,
      }, svg('title', { text: `${monthLong(m.month)}: ${m.billed} ${data.currency} billed` }));
      const labelY = negative ? top + barHeight + labelSize + 3 : top - 6;
      const label = svg('text', {
        class: 'bar-amount',
        x: (x + barWidth / 2).toFixed(2),
        y: labelY.toFixed(2),
        'text-anchor': 'middle',
        'font-size': labelSize.toFixed(1),
        'data-month': m.month,
        text: m.billed,
      });
      const { year, name } = monthShort(m.month);
      const monthLabel = svg('text', {
        class: 'month-label',
        x: (margin.left + i * slot + slot / 2).toFixed(2),
        y: height - margin.bottom + 18,
        'text-anchor': 'middle',
        'data-month': m.month,
      }, svg('tspan', { text: name }));
      // The year is printed under the first bar and under each January, like a finance report.
      if (i === 0 || m.month.endsWith('-01')) {
        monthLabel.append(svg('tspan', {
          x: (margin.left + i * slot + slot / 2).toFixed(2), dy: 15, class: 'year', text: year,
        }));
      }
      bars.append(svg('g', { class: 'bar-group' }, rect, label, monthLabel));
    });
    chart.append(bars);

    container.replaceChildren(chart, chartTable(data));
    container.dataset.width = String(width);
  }

  // A plain table with the same numbers, for screen readers (the SVG is one image to them).
  function chartTable(data) {
    return h('table', { class: 'visually-hidden' },
      h('caption', { text: `Billed per month in ${data.currency}` }),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Month' }), h('th', { scope: 'col', text: 'Billed' }))),
      h('tbody', {}, data.months.map((m) => h('tr', {},
        h('th', { scope: 'row', text: monthLong(m.month) }),
        h('td', { text: `${m.billed} ${data.currency}` })))));
  }

  // ---------------------------------------------------------------------------------------
  // Usage history and drill-down.

  const historyRequest = latestOnly();

  async function loadHistory() {
    const section = $('history');
    const status = $('history-status');
    const signal = historyRequest();
    section.dataset.state = 'loading';
    setStatus(status, 'Loading usage history…');
    $('invoice-month').disabled = true;
    setStatus($('invoices-status'), 'Loading the list of months…');
    try {
      const data = await api(orgUrl('usage-history', { months: HISTORY_MONTHS }), signal);
      renderHistory(data);
      fillInvoiceMonths(data);
      setStatus(status, '');
      section.dataset.state = 'ready';
    } catch (err) {
      if (isAbort(err)) return;
      $('history-body').replaceChildren();
      reportError(err, 'org', status);
      section.dataset.state = 'error';
      $('invoice-month').replaceChildren();
      $('invoices-body').replaceChildren();
      $('invoices').dataset.state = 'error';
      setStatus($('invoices-status'), 'Invoices need the usage history to list months.');
    }
  }

  function renderHistory(data) {
    const currency = data.currency;
    const head = h('div', { class: 'history-head', 'aria-hidden': 'true' },
      h('span', { class: 'col-month', text: 'Month' }),
      h('span', { class: 'col-status', text: 'Status' }),
      h('span', { class: 'num', text: 'Usage' }),
      h('span', { class: 'num', text: 'Support' }),
      h('span', { class: 'num', text: 'Credits' }),
      h('span', { class: 'num', text: 'Adjustments' }),
      h('span', { class: 'num', text: `Total (${currency})` }));
    const list = h('ol', { class: 'history-list' },
      data.months.map((m) => historyRow(m, currency)));
    $('history-body').replaceChildren(head, list);
  }

  function historyRow(m, currency) {
    const detailId = nextId('month-detail');
    const detail = h('div', { id: detailId, class: 'month-detail', hidden: true, 'data-month': m.month });
    const cell = (label, amount, extra) => h('span', { class: 'num' + (extra ? ' ' + extra : '') },
      h('span', { class: 'visually-hidden', text: `${label}: ` }), amountNode(amount));
    const button = h('button', {
      type: 'button',
      class: 'month-row',
      'data-month': m.month,
      'aria-expanded': 'false',
      'aria-controls': detailId,
    },
    h('span', { class: 'col-month' },
      h('span', { class: 'chevron', 'aria-hidden': 'true' }),
      h('time', { datetime: m.month, text: monthLong(m.month) })),
    h('span', { class: 'col-status' }, statusBadge(m.status)),
    cell('Usage', m.usage),
    cell('Support', m.support),
    cell('Credits', m.credits),
    cell('Adjustments', m.adjustments),
    h('span', { class: 'num total' },
      h('span', { class: 'visually-hidden', text: 'Total: ' }), amountNode(m.total),
      h('span', { class: 'visually-hidden', text: ` ${currency}` })));
    button.addEventListener('click', () => toggleMonth(button, detail, currency));
    return h('li', { class: 'history-month', 'data-month': m.month }, button, detail);
  }

  function statusBadge(status) {
    const words = { open: 'Open', closed: 'Closed', draft: 'Draft', final: 'Final' };
    return h('span', { class: `badge badge-${status}`, text: words[status] || status });
  }

  async function toggleMonth(button, detail, currency) {
    const open = button.getAttribute('aria-expanded') !== 'true';
    button.setAttribute('aria-expanded', String(open));
    detail.hidden = !open;
    if (!open || detail.dataset.state === 'ready' || detail.dataset.state === 'loading') return;

    const month = button.dataset.month;
    detail.dataset.state = 'loading';
    button.setAttribute('aria-busy', 'true');
    detail.replaceChildren(h('p', { class: 'status', text: `Loading line items for ${monthLong(month)}…` }));
    try {
      const data = await api(orgUrl(`usage-history/${encodeURIComponent(month)}`), undefined);
      renderMonthItems(detail, data, currency);
      detail.dataset.state = 'ready';
    } catch (err) {
      const status = h('p', { class: 'status' });
      detail.replaceChildren(status);
      reportError(err, `Month ${month}`, status);
      // Left un-cached so that closing and reopening the month tries again.
      detail.dataset.state = 'error';
    } finally {
      button.removeAttribute('aria-busy');
    }
  }

  function renderMonthItems(detail, data, currency) {
    if (!data.items.length) {
      detail.replaceChildren(h('p', { class: 'status empty', text: `No charges in ${monthLong(data.month)}.` }));
      return;
    }
    const tree = h('ul', { class: 'tree', 'data-depth': 0 },
      data.items.map((item) => itemNode(data.month, item, 0, item.category)));
    const footer = h('p', { class: 'month-total' },
      `${monthLong(data.month)} (${data.status}), invoiced total `,
      amountNode(data.total), ` ${currency}`);
    detail.replaceChildren(tree, footer);
  }

  function itemNode(month, item, depth, category) {
    const label = item.label;
    const level = category === 'usage' ? USAGE_LEVELS[depth] : null;
    const childrenId = nextId('children');
    const node = h('li', {
      class: 'item',
      'data-id': item.id,
      'data-label': label,
      'data-amount': item.amount,
      'data-category': category,
      'data-depth': depth,
    });

    let control;
    if (item.drillable) {
      control = h('button', {
        type: 'button',
        class: 'expand',
        'aria-expanded': 'false',
        'aria-controls': childrenId,
        'aria-label': `Breakdown of ${label}`,
      }, h('span', { class: 'chevron', 'aria-hidden': 'true' }));
      control.addEventListener('click', () => toggleItem(month, item, depth, category, control, node, childrenId));
    } else {
      control = h('span', { class: 'expand-spacer', 'aria-hidden': 'true' });
    }

    // Month items carry no quantity at all; a child's null quantity means its units disagree.
    let quantity;
    if (item.quantity === undefined) {
      quantity = h('span', { class: 'qty' });
    } else if (item.quantity === null) {
      quantity = h('span', { class: 'qty mixed', text: 'mixed units' });
    } else {
      const text = `${item.quantity}${item.unit ? ' ' + item.unit : ''}`;
      quantity = h('span', { class: 'qty', title: text, text });
    }

    node.append(h('div', { class: 'item-row' },
      control,
      depth === 0
        ? h('span', { class: `category category-${category}`, text: category })
        : h('span', { class: 'level', text: level || '' }),
      h('span', { class: 'item-label', title: label, text: label }),
      quantity,
      amountNode(item.amount)));
    return node;
  }

  async function toggleItem(month, item, depth, category, control, node, childrenId) {
    let children = node.querySelector(`:scope > ul.children`);
    const open = control.getAttribute('aria-expanded') !== 'true';
    control.setAttribute('aria-expanded', String(open));
    if (children) {
      children.hidden = !open;
      if (!open || children.dataset.state !== 'error') return;
    }
    if (!open) return;

    if (!children) {
      children = h('ul', { id: childrenId, class: 'tree children', 'data-depth': depth + 1 });
      node.append(children);
    }
    children.hidden = false;
    children.dataset.state = 'loading';
    control.setAttribute('aria-busy', 'true');
    children.replaceChildren(h('li', { class: 'status', text: 'Loading…' }));
    try {
      const url = orgUrl(`usage-history/${encodeURIComponent(month)}/items/${encodeURIComponent(item.id)}`);
      const data = await api(url, undefined);
      if (!data.children.length) {
        children.replaceChildren(h('li', { class: 'status empty', text: 'No further detail.' }));
      } else {
        children.replaceChildren(...data.children.map((child) => itemNode(month, child, depth + 1, category)));
      }
      children.dataset.state = 'ready';
    } catch (err) {
      const status = h('li', { class: 'status' });
      children.replaceChildren(status);
      reportError(err, `The breakdown of ${item.label}`, status);
      children.dataset.state = 'error';
    } finally {
      control.removeAttribute('aria-busy');
    }
  }

  // ---------------------------------------------------------------------------------------
  // Invoices.

  const invoicesRequest = latestOnly();

  function fillInvoiceMonths(history) {
    const select = $('invoice-month');
    const previous = select.value;
    select.replaceChildren(...history.months.map((m) => h('option', {
      value: m.month,
      text: `${monthLong(m.month)} · ${m.total} ${history.currency}${m.status === 'closed' ? ' · closed' : ''}`,
    })));
    // Keep the chosen month across reloads; otherwise start at the newest month with charges.
    const withCharges = history.months.find((m) => !isZero(m.total));
    const keep = history.months.some((m) => m.month === previous) ? previous : null;
    select.value = keep || (withCharges || history.months[0] || {}).month || '';
    select.disabled = history.months.length === 0;
    if (select.value) loadInvoices(select.value);
  }

  async function loadInvoices(month) {
    const section = $('invoices');
    const status = $('invoices-status');
    const signal = invoicesRequest();
    section.dataset.state = 'loading';
    delete $('invoices-body').dataset.month;
    $('invoices-body').classList.add('is-loading');
    setStatus(status, `Loading invoices for ${monthLong(month)}…`);
    try {
      const data = await api(orgUrl('invoices', { month }), signal);
      renderInvoices(data);
      setStatus(status, '');
      section.dataset.state = 'ready';
    } catch (err) {
      if (isAbort(err)) return;
      $('invoices-body').replaceChildren();
      reportError(err, `Invoices for ${month}`, status);
      section.dataset.state = 'error';
    } finally {
      if (!signal.aborted) $('invoices-body').classList.remove('is-loading');
    }
  }

  function renderInvoices(data) {
    const modeWords = data.mode === 'PER_COST_CENTER'
      ? 'one invoice per cost center, plus one for organization-wide charges'
      : 'a single invoice for the organization';
    $('invoices-sub').textContent = `${monthLong(data.month)} is invoiced as ${modeWords}.`;
    for (const invoice of data.invoices) {
      if (invoice.cost_center_id) state.costCenters.add(invoice.cost_center_id);
    }
    refreshCostCenterList();
    if (!data.invoices.length) {
      $('invoices-body').replaceChildren(h('p', { class: 'status empty', text: `No invoices for ${monthLong(data.month)}: the month has no charges.` }));
      $('invoices-body').dataset.month = data.month;
      return;
    }
    $('invoices-body').replaceChildren(h('div', { class: 'invoice-grid' }, data.invoices.map(invoiceCard)));
    $('invoices-body').dataset.month = data.month;
  }

  function invoiceCard(invoice) {
    const linesId = nextId('invoice-lines');
    const lines = h('div', { id: linesId, class: 'invoice-lines', hidden: true });
    const title = invoice.cost_center_id ? invoice.cost_center_id : 'Organization';
    const toggle = h('button', {
      type: 'button',
      class: 'button show-lines',
      'aria-expanded': 'false',
      'aria-controls': linesId,
      text: 'Show lines',
    });
    const card = h('article', {
      class: 'invoice',
      'data-invoice-id': invoice.invoice_id,
      'data-status': invoice.status,
      'aria-label': `Invoice ${invoice.invoice_id}`,
    },
    h('header', { class: 'invoice-head' },
      h('div', {},
        h('h3', { class: 'invoice-title', text: title }),
        h('p', { class: 'invoice-kind', text: invoice.cost_center_id ? 'Cost center' : 'Organization-wide charges' })),
      statusBadge(invoice.status)),
    h('dl', { class: 'invoice-facts' },
      h('div', {}, h('dt', { text: 'Invoice' }), h('dd', { class: 'mono', text: invoice.invoice_id })),
      h('div', {}, h('dt', { text: 'Billing account' }),
        invoice.billing_account === null || invoice.billing_account === undefined
          ? h('dd', { class: 'missing', text: 'not assigned' })
          : h('dd', { class: 'mono billing-account', text: invoice.billing_account }))),
    h('p', { class: 'invoice-total' },
      h('span', { class: 'visually-hidden', text: 'Total: ' }),
      amountNode(invoice.total), ' ', h('span', { class: 'currency', text: invoice.currency })),
    toggle,
    lines);
    toggle.addEventListener('click', () => toggleInvoice(invoice, toggle, lines));
    // The whole card is a click target for mouse users; keyboard users have the real button.
    card.addEventListener('click', (event) => {
      if (event.target.closest('button, a, .invoice-lines')) return;
      toggle.click();
    });
    return card;
  }

  async function toggleInvoice(invoice, toggle, lines) {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    toggle.textContent = open ? 'Hide lines' : 'Show lines';
    lines.hidden = !open;
    if (!open || lines.dataset.state === 'ready' || lines.dataset.state === 'loading') return;

    lines.dataset.state = 'loading';
    toggle.setAttribute('aria-busy', 'true');
    lines.replaceChildren(h('p', { class: 'status', text: 'Loading invoice lines…' }));
    try {
      const data = await api(orgUrl(`invoices/${encodeURIComponent(invoice.invoice_id)}`), undefined);
      lines.replaceChildren(invoiceLinesTable(data));
      lines.dataset.state = 'ready';
    } catch (err) {
      const status = h('p', { class: 'status' });
      lines.replaceChildren(status);
      reportError(err, `Invoice ${invoice.invoice_id}`, status);
      lines.dataset.state = 'error';
    } finally {
      toggle.removeAttribute('aria-busy');
    }
  }

  function invoiceLinesTable(data) {
    return h('table', { class: 'lines-table' },
      h('caption', { class: 'visually-hidden', text: `Lines of invoice ${data.invoice_id}` }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: 'Category' }),
        h('th', { scope: 'col', text: 'Description' }),
        h('th', { scope: 'col', class: 'num', text: `Amount (${data.currency})` }))),
      h('tbody', {}, (data.lines || []).map((line) => h('tr', {
        class: 'line', 'data-category': line.category, 'data-description': line.description, 'data-amount': line.amount,
      },
      h('td', {}, h('span', { class: `category category-${line.category}`, text: line.category })),
      h('td', { class: 'line-description', text: line.description }),
      h('td', { class: 'num' }, amountNode(line.amount))))),
      h('tfoot', {}, h('tr', {},
        h('th', { scope: 'row', colspan: 2, text: 'Invoice total, rounded' }),
        h('td', { class: 'num' }, amountNode(data.total)))));
  }

  function refreshCostCenterList() {
    $('cost-center-list').replaceChildren(
      ...[...state.costCenters].sort().map((id) => h('option', { value: id })));
  }

  // ---------------------------------------------------------------------------------------
  // Page wiring.

  // The address bar mirrors the choices so a view can be bookmarked or shared.
  function syncUrl() {
    const params = new URLSearchParams(window.location.search);
    params.set('org', state.org);
    if (state.costCenter) params.set('cost_center', state.costCenter); else params.delete('cost_center');
    if (state.months !== DEFAULT_MONTHS) params.set('months', state.months); else params.delete('months');
    history.replaceState(null, '', `${window.location.pathname}?${params}`);
  }

  function loadAll() {
    clearBanner();
    $('token').classList.remove('needs-attention');
    syncUrl();
    loadDashboard();
    loadHistory();
  }

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

  function start() {
    const params = new URLSearchParams(window.location.search);
    const org = (params.get('org') || '').trim();
    state.org = ORG_ID_PATTERN.test(org) ? org : DEFAULT_ORG;
    state.costCenter = (params.get('cost_center') || '').trim();
    state.months = MONTH_CHOICES.includes(params.get('months')) ? params.get('months') : DEFAULT_MONTHS;
    state.token = readStoredToken();

    $('org').value = state.org;
    $('token').value = state.token;
    $('cost-center').value = state.costCenter;
    $('months').value = state.months;

    $('org-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const nextOrg = $('org').value.trim();
      if (!ORG_ID_PATTERN.test(nextOrg)) {
        showBanner('An organization id is 1 to 64 letters, digits or . _ : - characters.');
        $('org').focus();
        return;
      }
      if (nextOrg !== state.org) {
        // Cost centers belong to one organization; a filter from another org would only 404.
        state.costCenter = '';
        $('cost-center').value = '';
        state.costCenters.clear();
        refreshCostCenterList();
      }
      state.org = nextOrg;
      state.token = $('token').value.trim();
      storeToken(state.token);
      loadAll();
    });

    $('cc-form').addEventListener('submit', (event) => {
      event.preventDefault();
      state.costCenter = $('cost-center').value.trim();
      syncUrl();
      loadDashboard();
    });

    $('months').addEventListener('change', () => {
      state.months = $('months').value;
      syncUrl();
      loadDashboard();
    });

    $('invoice-month').addEventListener('change', () => loadInvoices($('invoice-month').value));

    // Redraw at the new width instead of scaling the SVG, so text keeps its size.
    let lastWidth = 0;
    new ResizeObserver(() => {
      const width = Math.round($('chart').clientWidth);
      if (state.dashboard && Math.abs(width - lastWidth) > 1) {
        drawChart(state.dashboard.data, state.dashboard.costCenter);
      }
      lastWidth = width;
    }).observe($('chart'));

    loadAll();
  }

  start();
})();
