// Proves the web page at / shows what the ledger answers, readably and never under the wrong
// name: headless Chromium drives the page on a running ledgerd; amounts on screen are compared
// with the same endpoints fetched here, at 1440, 1024 and 390 px, with layout and axe-core checks.
// Its Explain dialogs list the very events the ledger's explanation routes return, and those
// add up to the figure, checked here in BigInt.
//
// Needs services loaded with tests/golden/events.ndjson (org `acme`, PER_COST_CENTER 2026-01;
// `kaiju-jp` in JPY), then tests/golden/budgets/events.ndjson (`noor.bh` and `hoshi.jp` with
// budgets, forecasts and alerts). Env: LEDGER_URL (required, open service), LEDGER_AUTH_URL and
// LEDGER_AUTH_TOKEN (optional: a service with access tokens and a viewer token for acme),
// LEDGER_BUDGETS_DIR (default <repo>/tests/golden/budgets), SCREENSHOT_DIR (default
// <repo>/build/screenshots), CHROMIUM_PATH (default /usr/bin/chromium).
// Run: tests/web/run.sh build (starts both services).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.LEDGER_URL || '').replace(/\/+$/, '');
const AUTH_BASE = (process.env.LEDGER_AUTH_URL || '').replace(/\/+$/, '');
const AUTH_TOKEN = process.env.LEDGER_AUTH_TOKEN || '';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR
  ? path.resolve(process.env.SCREENSHOT_DIR)
  : path.resolve(HERE, '..', '..', 'build', 'screenshots');
const ORG = 'acme';
const JPY_ORG = 'kaiju-jp';
// The golden example switches acme to PER_COST_CENTER during this month.
const PER_COST_CENTER_MONTH = '2026-01';
const WIDTHS = [1440, 1024, 390];
// The budgets example: its expected answers are for `months=3&end=2026-03`, and 2026-03 is the
// latest month of both orgs, so the page's `months=3` asks exactly that.
const BUDGETS_DIR = path.resolve(process.env.LEDGER_BUDGETS_DIR || path.join(HERE, '..', 'golden', 'budgets'));
const BUDGET_ORG = 'noor.bh';
const BUDGET_JPY_ORG = 'hoshi.jp';
const BUDGET_MONTHS = 3;
// The page's period when the address names none.
const DEFAULT_MONTHS_SHOWN = 6;

// Every wait has a deadline so a broken page fails the run instead of hanging it.
const STEP_TIMEOUT_MS = 15_000;
const TEST_TIMEOUT_MS = 180_000;
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

if (!BASE) {
  console.error('LEDGER_URL is not set: point it at a running ledgerd, e.g. http://127.0.0.1:8080');
  process.exit(2);
}

const AXE_SOURCE = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let browser;
let context;
let page;
const pageErrors = [];
const consoleErrors = [];
const foreignRequests = [];
// Set while a test provokes API errors on purpose, whose console noise is expected.
let expectingHttpErrors = false;

async function api(pathAndQuery, base = BASE, token = '') {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(base + pathAndQuery, { headers });
  const text = await response.text();
  assert.ok(response.ok, `GET ${pathAndQuery} answered ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

const orgPath = (rest, org = ORG) => `/v1/orgs/${encodeURIComponent(org)}${rest ? '/' + rest : ''}`;

// What the page must print for an exact amount: grouped digits, the currency, every digit.
function expectedMoney(text, symbol) {
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(text);
  return `${m[1]}${symbol}${m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ',')}${m[3] || ''}`;
}

// The whole page; with a modal dialog open, the window as the reader sees it (a full-page
// capture would show the dialog and its backdrop at one scroll position of a taller page).
async function screenshot(name) {
  const width = page.viewportSize().width;
  const modal = await page.locator('dialog[open]').count() > 0;
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}-${width}.png`), fullPage: !modal });
}

async function setWidth(width) {
  await page.setViewportSize({ width, height: 900 });
}

async function openPage(query = `?org=${encodeURIComponent(ORG)}`, base = BASE) {
  const response = await page.goto(`${base}/${query}`, { waitUntil: 'domcontentloaded' });
  assert.equal(response.status(), 200, 'GET / answers 200');
  assert.match(response.headers()['content-type'] || '', /^text\/html/, 'GET / is served as text/html');
  await waitReady();
}

async function waitReady() {
  await page.waitForSelector('#dashboard[data-state="ready"]');
  await page.waitForSelector('#history[data-state="ready"]');
  await page.waitForSelector('#invoices[data-state="ready"]');
}

// The browser's console line for a 401, which may come after the page has already shown its
// banner: a test that provokes one waits for it before it stops expecting HTTP errors.
const unauthorizedLogged = () => page.waitForEvent('console', { predicate: (m) => m.type() === 'error' && m.text().includes('401') });

async function waitForChart(months, costCenter = '') {
  await page.waitForSelector(
    `#dashboard[data-state="ready"] svg.bar-chart[data-months="${months}"][data-cost-center="${costCenter}"]`);
}

async function readBars() {
  return page.$$eval('#chart svg.bar-chart .bar-group', (groups) => groups.map((g) => {
    const rect = g.querySelector('rect.bar');
    return {
      month: rect.getAttribute('data-month'),
      billed: rect.getAttribute('data-billed'),
      name: g.getAttribute('aria-label'),
      height: Number(rect.getAttribute('height')),
    };
  }));
}

function assertBarsMatch(bars, truth, what) {
  assert.equal(bars.length, truth.months.length, `${what}: one bar per month the API returns`);
  truth.months.forEach((m, i) => {
    assert.equal(bars[i].month, m.month, `${what}: bar ${i} is month ${m.month}`);
    assert.equal(bars[i].billed, m.billed, `${what}: data-billed of ${m.month}`);
    assert.ok(bars[i].name.includes(expectedMoney(m.billed, '$')), `${what}: bar ${m.month} is named with ${m.billed}`);
    assert.ok(Number.isFinite(bars[i].height) && bars[i].height >= 0, `${what}: bar ${m.month} has a height`);
  });
}

// Every element on the page that shows money, with its box. With a modal dialog open only its
// figures count: the page behind it is covered by the backdrop.
async function figureBoxes() {
  return page.$$eval('.amount, #chart .bar-amount, #chart .tick, #chart .month-label', (nodes) => nodes
    .filter((n) => !document.querySelector('dialog[open]') || n.closest('dialog[open]'))
    // checkVisibility: the content of a closed <details> keeps boxes but is not rendered.
    .filter((n) => n.checkVisibility({ visibilityProperty: true }) && !n.closest('.visually-hidden'))
    .map((n) => {
      const r = n.getBoundingClientRect();
      return { text: n.textContent, x: r.left, y: r.top, w: r.width, h: r.height, cls: n.getAttribute('class') };
    })
    .filter((b) => b.w > 0 && b.h > 0));
}

// No two figures overlap; nothing sticks out of the viewport except inside a scroll container.
async function assertLayoutSound(what) {
  const boxes = await figureBoxes();
  const contains = (a, b) => a.x <= b.x && a.y <= b.y && a.x + a.w >= b.x + b.w && a.y + a.h >= b.y + b.h;
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i];
      const b = boxes[j];
      if (contains(a, b) || contains(b, a)) continue; // nested spans of one amount
      const overlapX = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
      const overlapY = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
      assert.ok(overlapX <= 1 || overlapY <= 1, `${what}: "${a.text}" overlaps "${b.text}"`);
    }
  }
  const overflow = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const bad = [];
    if (document.documentElement.scrollWidth > width + 1) bad.push(`page is ${document.documentElement.scrollWidth}px wide`);
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.right <= width + 1 || !el.checkVisibility()) continue;
      let scroller = el.parentElement;
      while (scroller && !['auto', 'scroll'].includes(getComputedStyle(scroller).overflowX)) scroller = scroller.parentElement;
      if (!scroller && !el.closest('.visually-hidden')) bad.push(`${el.tagName}.${el.className} ends at ${Math.round(r.right)}px`);
    }
    // An amount cut by an overflow:hidden ancestor is as bad as an overlap.
    for (const el of document.querySelectorAll('.amount')) {
      if (!el.checkVisibility({ visibilityProperty: true }) || el.closest('.visually-hidden')) continue;
      const r = el.getBoundingClientRect();
      for (let a = el.parentElement; a; a = a.parentElement) {
        if (getComputedStyle(a).overflowX !== 'hidden') continue;
        const c = a.getBoundingClientRect();
        if (r.left < c.left - 1 || r.right > c.right + 1) bad.push(`amount "${el.textContent}" is clipped`);
        break;
      }
    }
    return bad;
  });
  assert.deepEqual(overflow, [], `${what}: nothing overflows or is clipped`);
}

async function assertAccessible(what) {
  const violations = await page.evaluate(async (source) => {
    if (!window.axe) (0, eval)(source);
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  }, AXE_SOURCE);
  assert.deepEqual(violations, [], `${what}: axe-core finds no serious or critical violation`);
}

// Checks one view at the current width: screenshot, layout, accessibility.
async function checkView(name) {
  await screenshot(name);
  await assertLayoutSound(`${name} at ${page.viewportSize().width}px`);
  await assertAccessible(`${name} at ${page.viewportSize().width}px`);
}

// Every amount the page currently shows, as the ledger's exact strings.
const shownAmounts = () => page.$$eval('.amount, #chart rect.bar', (nodes) =>
  nodes.map((n) => n.getAttribute('data-amount') || n.getAttribute('data-billed')));

async function assertNoFigures(what) {
  assert.deepEqual(await shownAmounts(), [], `${what}: no amount of the previous view is left`);
  assert.equal(await page.isHidden('#kpis'), true, `${what}: the key figures are hidden`);
  const text = await page.textContent('main');
  assert.ok(!/\$\d/.test(text), `${what}: no dollar figure remains in the page text`);
}

// Quotes any string for a CSS attribute selector (item ids are opaque: they may hold anything).
const cssString = (text) => `"${String(text).replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\a ')}"`;
const byKey = (rows) => rows.map((r) => JSON.stringify(r)).sort();

async function readItemRows(listLocator) {
  return listLocator.locator(':scope > li.item').evaluateAll((items) => items.map((li) => ({
    label: li.getAttribute('data-label'),
    amount: li.getAttribute('data-amount'),
    shown: li.querySelector(':scope > .item-row .amount').getAttribute('data-amount'),
    drillable: li.querySelector(':scope > .item-row button.expand') !== null,
  })));
}

function assertItemsMatch(rows, truth, what) {
  for (const row of rows) assert.equal(row.shown, row.amount, `${what}: ${row.label} shows its amount`);
  assert.deepEqual(
    byKey(rows.map(({ label, amount, drillable }) => ({ label, amount, drillable }))),
    byKey(truth.map(({ label, amount, drillable }) => ({ label, amount, drillable: Boolean(drillable) }))),
    `${what}: rows equal the API's`);
  const amounts = rows.map((r) => Number(r.amount));
  for (let i = 1; i < amounts.length; i++) assert.ok(amounts[i - 1] >= amounts[i], `${what}: sorted by amount, largest first`);
}

// The first month of acme with a drillable usage item, and that item.
async function drillableMonth() {
  const history = await api(orgPath('usage-history?months=6'));
  for (const m of history.months) {
    const answer = await api(orgPath(`usage-history/${m.month}`));
    const item = answer.items.find((i) => i.drillable);
    if (item) return { month: m.month, item };
  }
  return null;
}

before(async () => {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  context = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const origins = [BASE, AUTH_BASE].filter(Boolean).map((u) => new URL(u).origin);
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !expectingHttpErrors) consoleErrors.push(msg.text());
  });
  page.on('request', (request) => {
    const url = request.url();
    if (!/^(data|blob):/.test(url) && !origins.includes(new URL(url).origin)) foreignRequests.push(url);
  });
});

after(async () => {
  if (browser) await browser.close();
});

test('the chart shows one bar per month for every period up to 36 months, and the key figures are grouped', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  await openPage();
  assert.equal(await page.inputValue('#months'), '6', 'the period selector defaults to 6 months');
  await waitForChart(6);
  const truth6 = await api(orgPath('dashboard?months=6'));
  assertBarsMatch(await readBars(), truth6, 'default view');
  const kpi = await page.locator('#kpis .kpi dd .amount').first().textContent();
  assert.match(kpi, /^\$\d{1,3}(,\d{3})*\.\d{2}$/, 'key figure in dollars, grouped, to the cent');

  for (const months of ['3', '12', '24', '36', '6']) {
    await page.selectOption('#months', months);
    await waitForChart(months);
    await page.waitForSelector('#invoices[data-state="ready"]');
    const truth = await api(orgPath(`dashboard?months=${months}`));
    assert.equal(truth.months.length, Number(months));
    assertBarsMatch(await readBars(), truth, `${months} months`);
    const history = await page.$$eval('#history-body button.month-row', (b) => b.length);
    assert.ok(history <= Number(months), 'the history covers the same period');
  }
  await openPage(`?org=${ORG}&months=36`);
  await waitForChart(36);
  assert.equal(await page.inputValue('#months'), '36', '?months=36 is honoured');
});

test('amounts are grouped and carry the currency (JPY without decimals)', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  await openPage(`?org=${JPY_ORG}`);
  const truth = await api(orgPath('usage-history?months=6', JPY_ORG));
  const big = truth.months.find((m) => m.total.length > 3);
  assert.ok(big, 'kaiju-jp has a month over 999 yen');
  const shown = await page.locator(`#history-body button.month-row[data-month="${big.month}"] .c-total .amount`).textContent();
  assert.equal(shown, expectedMoney(big.total, '¥'), 'yen total grouped with its symbol');
  assert.match(shown, /^¥\d{1,3}(,\d{3})+$/);
  await checkView('jpy-org');
});

test('every view reads well at 1440, 1024 and 390 px, without overlaps, overflow or serious accessibility violations', { timeout: TEST_TIMEOUT_MS * 2 }, async () => {
  const found = await drillableMonth();
  assert.ok(found, 'acme has a drillable month');
  for (const width of WIDTHS) {
    await setWidth(width);
    await openPage();
    await checkView('dashboard');
    await openPage(`?org=${ORG}&months=24`);
    await checkView('dashboard-24');
    await openPage(`?org=${ORG}&months=36`);
    await checkView('dashboard-36');
    await page.click('#chart-table-box summary');
    await checkView('chart-table');

    await openPage(`?org=${ORG}&month=${found.month}`);
    const detail = page.locator(`#history-body .month-detail[data-month="${found.month}"][data-state="ready"]`);
    await detail.waitFor();
    await checkView('usage-month');
    // Drill to the bottom along the first drillable node.
    let node = detail.locator(`:scope > ul.tree > li.item[data-id=${cssString(found.item.id)}]`);
    for (let depth = 1; depth <= 3; depth++) {
      const expand = node.locator(':scope > .item-row button.expand');
      if (await expand.count() === 0) break;
      await expand.click();
      const children = node.locator(':scope > ul.children[data-state="ready"]');
      await children.waitFor();
      const next = children.locator(':scope > li.item').filter({ has: page.locator(':scope > .item-row button.expand') }).first();
      if (await next.count() === 0) break;
      node = next;
    }
    await checkView('usage-drilldown');
    await page.check('#exact');
    await checkView('usage-drilldown-exact');
    await page.uncheck('#exact');

    await openPage(`?org=${ORG}&month=${PER_COST_CENTER_MONTH}`);
    for (const toggle of await page.locator('#invoices-body button.show-lines').all()) await toggle.click();
    await page.waitForSelector('#invoices-body .invoice-lines[data-state="ready"]');
    await checkView('invoices');
    await openPage(`?org=${ORG}&cost_center=cc-eng&month=${PER_COST_CENTER_MONTH}`);
    await waitForChart(6, 'cc-eng');
    await checkView('cost-center');
  }
});

test('the drill-down is sorted by amount with headers, shares and late charges in words', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  const found = await drillableMonth();
  await openPage(`?org=${ORG}&month=${found.month}`);
  const detail = page.locator(`#history-body .month-detail[data-month="${found.month}"][data-state="ready"]`);
  await detail.waitFor();
  const truth = await api(orgPath(`usage-history/${found.month}`));
  assertItemsMatch(await readItemRows(detail.locator(':scope > ul.tree')), truth.items, `items of ${found.month}`);
  assert.deepEqual(await detail.locator('.items-head span').allTextContents(), ['Item', 'Quantity', 'Unit', 'Amount', 'Share', 'Events']);

  const node = detail.locator(`:scope > ul.tree > li.item[data-id=${cssString(found.item.id)}]`);
  await node.locator(':scope > .item-row button.expand').click();
  const children = node.locator(':scope > ul.children[data-state="ready"]');
  await children.waitFor();
  const childTruth = await api(orgPath(`usage-history/${found.month}/items/${encodeURIComponent(found.item.id)}`));
  assertItemsMatch(await readItemRows(children), childTruth.children, `providers of ${found.item.label}`);
  const shares = await children.locator(':scope > li.item > .item-row .share').allTextContents();
  shares.forEach((s) => assert.match(s, /\d+\.\d%$/, 'each child shows its share of the parent'));

  // Late charges (adjustment items labelled with a month) are named in words.
  const history = await api(orgPath('usage-history?months=6'));
  const late = history.months.find((m) => !/^0(\.0+)?$/.test(m.adjustments.replace('-', '')));
  assert.ok(late, 'the golden example has a late charge');
  await openPage(`?org=${ORG}&month=${late.month}`);
  const lateRow = page.locator(`#history-body .month-detail[data-month="${late.month}"] li.item[data-category="adjustment"] .item-label`).first();
  assert.match(await lateRow.textContent(), /^Late charges for [A-Z][a-z]+ \d{4}$/);
});

test('a bar click opens that month, selects its invoices, and the address keeps it', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  await openPage();
  await page.click(`#chart .bar-group[data-month="${PER_COST_CENTER_MONTH}"]`);
  await page.waitForSelector(`#history-body .month-detail[data-month="${PER_COST_CENTER_MONTH}"][data-state="ready"]`);
  assert.equal(await page.getAttribute(`#history-body button.month-row[data-month="${PER_COST_CENTER_MONTH}"]`, 'aria-expanded'), 'true');
  await page.waitForSelector(`#invoices[data-state="ready"] #invoices-body[data-month="${PER_COST_CENTER_MONTH}"]`);
  assert.equal(await page.inputValue('#invoice-month'), PER_COST_CENTER_MONTH);
  assert.equal(new URL(page.url()).searchParams.get('month'), PER_COST_CENTER_MONTH);
  assert.equal(await page.getAttribute(`#chart .bar-group[data-month="${PER_COST_CENTER_MONTH}"]`, 'aria-pressed'), 'true');

  // Keyboard: a focused bar opens on Enter.
  const other = (await api(orgPath('dashboard?months=6'))).months.find((m) => m.month !== PER_COST_CENTER_MONTH && m.billed !== '0.00');
  await page.focus(`#chart .bar-group[data-month="${other.month}"]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`#history-body .month-detail[data-month="${other.month}"][data-state="ready"]`);
  assert.equal(new URL(page.url()).searchParams.get('month'), other.month);
  // Back returns to the previous month.
  await page.goBack();
  await page.waitForSelector(`#history-body button.month-row[data-month="${PER_COST_CENTER_MONTH}"][aria-expanded="true"]`);
});

test('a URL with month, drill path and invoice restores them after reload', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  const found = await drillableMonth();
  await openPage(`?org=${ORG}&month=${found.month}`);
  const detail = page.locator(`#history-body .month-detail[data-month="${found.month}"][data-state="ready"]`);
  await detail.waitFor();
  const top = detail.locator(`:scope > ul.tree > li.item[data-id=${cssString(found.item.id)}]`);
  await top.locator(':scope > .item-row button.expand').click();
  const providers = top.locator(':scope > ul.children[data-state="ready"]');
  await providers.waitFor();
  const provider = providers.locator(':scope > li.item').filter({ has: page.locator(':scope > .item-row button.expand') }).first();
  const providerId = await provider.getAttribute('data-id');
  await provider.locator(':scope > .item-row button.expand').click();
  await provider.locator(':scope > ul.children[data-state="ready"]').waitFor();
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('path'), `${found.item.id}/${providerId}`, 'the drill path is in the address');

  await page.reload({ waitUntil: 'domcontentloaded' });
  await waitReady();
  const again = page.locator(`#history-body .month-detail[data-month="${found.month}"]`);
  await again.locator(`li.item[data-id=${cssString(providerId)}] > ul.children[data-state="ready"]`).waitFor();
  assert.equal(await page.getAttribute(`#history-body button.month-row[data-month="${found.month}"]`, 'aria-expanded'), 'true');
  assert.equal(await again.locator(`li.item[data-id=${cssString(providerId)}] > .item-row button.expand`).getAttribute('aria-expanded'), 'true');

  // An invoice named in the address opens with its lines.
  const invoices = await api(orgPath(`invoices?month=${PER_COST_CENTER_MONTH}`));
  const invoice = invoices.invoices[0];
  await openPage(`?org=${ORG}&month=${PER_COST_CENTER_MONTH}&invoice=${encodeURIComponent(invoice.invoice_id)}`);
  const card = page.locator(`#invoices-body article.invoice[data-invoice-id="${invoice.invoice_id}"]`);
  await card.locator('.invoice-lines[data-state="ready"]').waitFor();
  const full = await api(orgPath(`invoices/${encodeURIComponent(invoice.invoice_id)}`));
  const lines = await card.locator('tr.line').evaluateAll((rows) => rows.map((r) => ({
    category: r.getAttribute('data-category'), description: r.getAttribute('data-description'), amount: r.getAttribute('data-amount'),
  })));
  assert.deepEqual(byKey(lines), byKey(full.lines.map(({ category, description, amount }) => ({ category, description, amount }))));
});

test(`invoices of ${PER_COST_CENTER_MONTH} are documents: captions, facts, print view and downloads`, { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  await openPage(`?org=${ORG}&month=${PER_COST_CENTER_MONTH}`);
  const truth = await api(orgPath(`invoices?month=${PER_COST_CENTER_MONTH}`));
  const structure = await api(orgPath(''));
  assert.equal(truth.mode, 'PER_COST_CENTER');
  const caption = await page.textContent('#invoices-sub');
  assert.match(caption, /invoiced per cost center/);
  assert.equal(/organization invoice/.test(caption), truth.invoices.some((i) => !i.cost_center_id), 'the org invoice is mentioned only when it exists');
  for (const invoice of truth.invoices) {
    const card = page.locator(`#invoices-body article.invoice[data-invoice-id="${invoice.invoice_id}"]`);
    const text = await card.textContent();
    const cc = structure.cost_centers.find((c) => c.cost_center_id === invoice.cost_center_id);
    assert.ok(text.includes(cc ? cc.name : structure.name), `${invoice.invoice_id} names its cost center`);
    assert.ok(text.includes(invoice.billing_account || 'not assigned'), `${invoice.invoice_id} shows its billing account`);
    assert.ok(text.includes('1–31 January 2026'), `${invoice.invoice_id} shows its billing period`);
    assert.equal(await card.locator('.invoice-total .amount').textContent(), expectedMoney(invoice.total, '$'));
  }

  // A SINGLE month is captioned as such.
  const single = (await api(orgPath('usage-history?months=6'))).months.find((m) => m.month < PER_COST_CENTER_MONTH && m.total !== '0.00');
  await openPage(`?org=${ORG}&month=${single.month}`);
  assert.match(await page.textContent('#invoices-sub'), /single invoice for the whole organization/);
  assert.match(await page.textContent('#invoices-body .invoice-kind'), /Single invoice for the organization/);

  // Print view: only the chosen invoice, as a document.
  await openPage(`?org=${ORG}&month=${PER_COST_CENTER_MONTH}`);
  const invoice = truth.invoices[0];
  await page.evaluate(() => { window.print = () => { window.printed = true; }; });
  await page.click(`#invoices-body article.invoice[data-invoice-id="${invoice.invoice_id}"] button.print`);
  await page.waitForFunction(() => window.printed === true);
  await page.emulateMedia({ media: 'print' });
  try {
    const doc = await page.textContent('#print-doc');
    for (const words of [structure.name, `Organization ${ORG}`, invoice.invoice_id, invoice.billing_account || 'not assigned', '1–31 January 2026', 'Draft', expectedMoney(invoice.total, '$')]) {
      assert.ok(doc.includes(words), `the printed invoice shows ${words}`);
    }
    assert.equal(await page.isVisible('#print-doc'), true, 'the invoice document is printed');
    assert.equal(await page.isVisible('main'), false, 'nothing but the invoice is printed');
    await screenshot('invoice-print');
  } finally {
    await page.emulateMedia({ media: 'screen' });
    await page.evaluate(() => window.dispatchEvent(new Event('afterprint')));
  }
  assert.equal(await page.isVisible('#print-doc'), false, 'the document is not on screen');

  // Downloads carry the ledger's own CSV.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click(`#invoices-body article.invoice[data-invoice-id="${invoice.invoice_id}"] button.download[data-format="focus"]`),
  ]);
  assert.equal(download.suggestedFilename(), `${ORG}-${invoice.invoice_id}-focus.csv`);
  const saved = await readFile(await download.path(), 'utf8');
  const direct = await (await fetch(`${BASE}${orgPath(`invoices/${invoice.invoice_id}.csv?format=focus`)}`)).text();
  assert.equal(saved, direct, 'the downloaded file is the FOCUS export');
});

test('stale money never stays: an unknown org, a bad address or an unknown cost center clear every figure', { timeout: TEST_TIMEOUT_MS }, async () => {
  expectingHttpErrors = true;
  try {
    for (const width of WIDTHS) {
      await setWidth(width);
      await openPage();
      assert.ok((await shownAmounts()).length > 0, 'acme shows figures first');
      await page.fill('#org', 'nope');
      await page.click('#org-form button[type="submit"]');
      await page.waitForSelector('#dashboard[data-state="error"]');
      await page.waitForSelector('#banner:not([hidden])');
      assert.match(await page.textContent('#banner'), /Unknown organization "nope"/);
      await assertNoFigures('unknown org after acme');
      assert.equal(await page.textContent('#org-caption'), '', 'the org name is gone too');
      await checkView('unknown-org');

      await openPage(`?org=${ORG}&cost_center=cc-data`);
      await waitForChart(6, 'cc-data');
      await page.goto(`${BASE}/?org=${ORG}&cost_center=no-such-cc`, { waitUntil: 'domcontentloaded' });
      await page.waitForSelector('#dashboard[data-state="error"]');
      assert.match(await page.textContent('#banner'), /no cost center "no-such-cc"/);
      await assertNoFigures('unknown cost center after cc-data');
      await checkView('unknown-cost-center');

      await openPage();
      await page.goto(`${BASE}/?org=${encodeURIComponent('bad org!')}`, { waitUntil: 'domcontentloaded' });
      await page.waitForSelector('#banner:not([hidden])');
      assert.match(await page.textContent('#banner'), /not an organization id/);
      await assertNoFigures('malformed org in the address');

      await openPage(`?org=${ORG}&months=99`);
      assert.match(await page.textContent('#banner'), /not 1 to 36 months/);
      assert.equal(await page.inputValue('#months'), '6');
    }
  } finally {
    expectingHttpErrors = false;
  }
});

test('a 401 after a good view clears every figure', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!AUTH_BASE) {
    t.skip('LEDGER_AUTH_URL is not set');
    return;
  }
  expectingHttpErrors = true;
  try {
    await setWidth(1440);
    await page.goto(`${AUTH_BASE}/?org=${ORG}`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#banner:not([hidden])');
    assert.match(await page.textContent('#banner'), /needs an access token/);
    await page.fill('#token', AUTH_TOKEN);
    await page.click('#org-form button[type="submit"]');
    await waitReady();
    assert.ok((await shownAmounts()).length > 0, 'the viewer token shows acme');
    await page.fill('#token', 'wrong-token');
    await page.click('#org-form button[type="submit"]');
    await page.waitForSelector('#dashboard[data-state="error"]');
    assert.match(await page.textContent('#banner'), /needs an access token/);
    await assertNoFigures('401 after a good view');
    await checkView('unauthorized');
    // The token field is cleared for the next tests (sessionStorage is per tab).
    await page.fill('#token', '');
    await Promise.all([unauthorizedLogged(), page.click('#org-form button[type="submit"]')]);
  } finally {
    expectingHttpErrors = false;
  }
});

// ---------------------------------------------------------------------------------------------
// Explanations and seals.

// app.js asks for this many events per "Load more" (EXPLAIN_PAGE_EVENTS).
const EXPLAIN_PAGE_EVENTS = 200;
// The SPEC's largest page: the truth is read here in as few requests as possible.
const EVENTS_LIMIT_MAX = 10000;
const EXACT_DIGITS = 9;
// An org made here, whose one usage item has more events than three pages of the dialog hold.
const PAGING_ORG = 'web-paging';
const PAGING_MONTH = '2026-02';
const PAGING_USAGE_EVENTS = 2 * EXPLAIN_PAGE_EVENTS + 50;

// An exact decimal as a BigInt of nano-units; the test's own arithmetic, independent of app.js.
function nanos(text) {
  const m = /^(-?)(\d+)(?:\.(\d{1,9}))?$/.exec(text);
  assert.ok(m, `"${text}" is an exact decimal with at most ${EXACT_DIGITS} digits`);
  const value = BigInt(m[2] + (m[3] || '').padEnd(EXACT_DIGITS, '0'));
  return m[1] ? -value : value;
}
const sumNanos = (texts) => texts.reduce((total, t) => total + nanos(t), 0n);

// Every line of an explanation route, paged with `after` like any client would.
async function explanationLines(routePath, base = BASE) {
  const lines = [];
  let after = 0;
  for (;;) {
    const response = await fetch(`${base}${routePath}?after=${after}&limit=${EVENTS_LIMIT_MAX}`, { headers: { Accept: 'application/x-ndjson' } });
    const text = await response.text();
    assert.ok(response.ok, `GET ${routePath} answered ${response.status}: ${text.slice(0, 300)}`);
    const page = text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
    lines.push(...page);
    if (page.length < EVENTS_LIMIT_MAX) return lines;
    after = page[page.length - 1].sequence;
  }
}

const itemEventsPath = (month, id, org = ORG) => orgPath(`usage-history/${month}/items/${encodeURIComponent(id)}/events`, org);
const invoiceEventsPath = (id, org = ORG) => orgPath(`invoices/${encodeURIComponent(id)}/events`, org);

// Presses an Explain button and waits until the dialog has listed its first page.
async function openExplain(button) {
  await button.click();
  await page.waitForSelector('#explain[open] #explain-check[data-result]');
}

async function readExplainRows() {
  return page.$$eval('#explain tr.event-row', (rows) => rows.map((r) => ({
    sequence: Number(r.getAttribute('data-sequence')),
    amount: r.getAttribute('data-amount'),
    shown: r.querySelector('.ev-amount .amount').getAttribute('data-amount'),
    kind: r.getAttribute('data-kind'),
    kindText: r.querySelector('.ev-kind').textContent,
    provider: r.querySelector('.ev-provider').textContent,
    resource: r.querySelector('.ev-resource').textContent,
    time: r.querySelector('.ev-time time').getAttribute('datetime'),
    eventId: r.getAttribute('data-event-id'),
    category: r.getAttribute('data-category'),
    description: r.getAttribute('data-description'),
  })));
}

// The dialog's rows are the route's lines, in order, and add up to `figure` as its footer says.
async function assertExplainMatches(truth, figure, what, structure) {
  await page.waitForSelector('#explain-check[data-result="match"]');
  const rows = await readExplainRows();
  assert.deepEqual(rows.map((r) => r.sequence), truth.map((l) => Number(l.sequence)), `${what}: one row per event the ledger names, in sequence order`);
  assert.deepEqual(rows.map((r) => r.amount), truth.map((l) => l.amount), `${what}: each row's amount is the event's contribution`);
  rows.forEach((r) => assert.equal(r.shown, r.amount, `${what}: #${r.sequence} shows its exact amount`));
  assert.equal(sumNanos(rows.map((r) => r.amount)), nanos(figure), `${what}: the rows add up to the figure exactly`);
  const check = await page.textContent('#explain-check');
  assert.equal(check, `✓${rows.length} event${rows.length === 1 ? '' : 's'} add up to ${expectedMoney(figure, '$')}, the figure shown.`,
    `${what}: the footer says the events add up to the figure`);
  const providers = new Map();
  for (const cc of structure.cost_centers) for (const ws of cc.workspaces) for (const p of ws.providers) providers.set(p.provider_id, p.name);
  truth.forEach((line, i) => {
    const usage = line.event.usage_recorded;
    assert.equal(rows[i].eventId, line.event.event_id, `${what}: row ${i} is event ${line.event.event_id}`);
    assert.equal(rows[i].time, line.event.occurred_at, `${what}: #${line.sequence} shows when it occurred`);
    if (usage) {
      assert.equal(rows[i].kind, 'usage');
      assert.equal(rows[i].provider, providers.get(usage.provider_id) || usage.provider_id, `${what}: #${line.sequence} names its provider`);
      assert.equal(rows[i].resource, usage.resource_id, `${what}: #${line.sequence} names its resource`);
    }
    if (line.event.event_voided) assert.equal(rows[i].kindText, `void of ${line.event.event_voided.voided_event_id}`);
  });
  return rows;
}

// Esc closes the dialog, empties it (no figure stays behind, hidden or not) and gives the
// keyboard back to the button that opened it.
// The dialog's `close` event comes a task after it closes, so this waits for the emptying.
async function closeExplainWithEsc(button, what) {
  await page.keyboard.press('Escape');
  await page.waitForSelector('#explain:not([open])', { state: 'attached' });
  await page.waitForFunction(() => document.querySelectorAll('#explain .amount, #explain tr.event-row').length === 0)
    .catch(() => assert.fail(`${what}: the closed dialog keeps no amount`));
  assert.equal(await button.evaluate((b) => b === document.activeElement), true, `${what}: focus is back on its Explain button`);
}

const itemRowOf = (list, id) => list.locator(`:scope > li.item[data-id=${cssString(id)}]`);

// Opens the given node's children and resolves to their list.
async function expandItem(node) {
  await node.locator(':scope > .item-row button.expand').click();
  const children = node.locator(':scope > ul.children[data-state="ready"]');
  await children.waitFor();
  return children;
}

test('Explain on an item and on drill-down nodes lists the ledger events that add up to each amount', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  const found = await drillableMonth();
  const structure = await api(orgPath(''));
  await openPage(`?org=${ORG}&month=${found.month}`);
  const detail = page.locator(`#history-body .month-detail[data-month="${found.month}"][data-state="ready"]`);
  await detail.waitFor();

  // Every item and every node of the drill path has its own Explain.
  const month = await api(orgPath(`usage-history/${found.month}`));
  assert.equal(await detail.locator(':scope > ul.tree > li.item > .item-row button.explain').count(), month.items.length, 'each item has an Explain button');
  const top = itemRowOf(detail.locator(':scope > ul.tree'), found.item.id);
  const topButton = top.locator(':scope > .item-row button.explain');
  assert.match(await topButton.getAttribute('aria-label'), /^Explain .+: the ledger events behind \$/, 'the button says what it explains');
  await openExplain(topButton);
  assert.match(await page.textContent('#explain-title'), new RegExp(`^Explain: ${found.item.label}`));
  await assertExplainMatches(await explanationLines(itemEventsPath(found.month, found.item.id)), found.item.amount, `item ${found.item.label}`, structure);

  // The raw event is there, pretty-printed, one click away.
  const firstRaw = page.locator('#explain tr.event-row button.raw-toggle').first();
  await firstRaw.click();
  assert.equal(await firstRaw.getAttribute('aria-expanded'), 'true');
  const rawId = await firstRaw.getAttribute('aria-controls');
  const rawText = await page.textContent(`#${rawId} pre`);
  const firstLine = (await explanationLines(itemEventsPath(found.month, found.item.id)))[0];
  assert.deepEqual(JSON.parse(rawText), firstLine.event, 'the JSON shown is the event itself');
  assert.ok(rawText.includes('\n  "'), 'the JSON is indented');
  await closeExplainWithEsc(topButton, `item ${found.item.label}`);

  // A provider node and a resource node below it.
  let node = top;
  let ids = [found.item.id];
  for (let depth = 1; depth <= 2; depth++) {
    const children = await expandItem(node);
    const next = children.locator(':scope > li.item').filter({ has: page.locator(':scope > .item-row button.expand') }).first();
    node = (await next.count()) ? next : children.locator(':scope > li.item').first();
    const id = await node.getAttribute('data-id');
    const amount = await node.getAttribute('data-amount');
    const truth = await api(orgPath(`usage-history/${found.month}/items/${encodeURIComponent(ids[ids.length - 1])}`));
    assert.equal(amount, truth.children.find((c) => c.id === id).amount, 'the node shows the ledger\'s amount');
    ids = [...ids, id];
    const button = node.locator(':scope > .item-row button.explain');
    await openExplain(button);
    await assertExplainMatches(await explanationLines(itemEventsPath(found.month, id)), amount, `drill-down node at depth ${depth}`, structure);
    await page.click('#explain-close');
    await page.waitForSelector('#explain:not([open])', { state: 'attached' });
    assert.equal(await button.evaluate((b) => b === document.activeElement), true, 'Close gives focus back too');
  }
});

// Events for an org of its own: one usage item with more events than two pages, and a void.
function pagingEvents() {
  const envelope = (id, at, payload) => ({ event_id: id, org_id: PAGING_ORG, occurred_at: at, source: 'web-test', ...payload });
  const events = [
    envelope('org', '2026-02-01T00:00:00Z', { organization_created: { name: 'Paging Test', currency: 'USD', billing_account: 'PG-1' } }),
    envelope('cc', '2026-02-01T00:00:01Z', { cost_center_created: { cost_center_id: 'cc-a', name: 'Alpha' } }),
    envelope('ws', '2026-02-01T00:00:02Z', { workspace_created: { workspace_id: 'ws-a', cost_center_id: 'cc-a', name: 'Alpha prod' } }),
    envelope('prov', '2026-02-01T00:00:03Z', { provider_registered: { provider_id: 'aws-pg', workspace_id: 'ws-a', name: 'AWS paging', kind: 'aws' } }),
  ];
  for (let i = 1; i <= PAGING_USAGE_EVENTS; i++) {
    const start = new Date(Date.UTC(2026, 1, 2) + i * 60_000).toISOString().replace('.000Z', 'Z');
    events.push(envelope(`use-${i}`, start, {
      usage_recorded: {
        provider_id: 'aws-pg', service: 'AmazonS3', sku: 'Requests', resource_id: `bucket-${i % 3}`, region: 'us-east-1',
        quantity: String(i), unit: 'Requests', amount: `${i % 7}.${String((i * 7919) % 1_000_000_000).padStart(9, '0')}`,
        usage_start: start, usage_end: start,
      },
    }));
  }
  events.push(envelope('void-5', '2026-02-20T00:00:00Z', { event_voided: { voided_event_id: 'use-5', reason: 'duplicate export row' } }));
  return events;
}

test('Explain pages with "Load more" and checks the sum only once every event is listed', { timeout: TEST_TIMEOUT_MS }, async () => {
  const response = await fetch(`${BASE}/v1/events`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-ndjson' },
    body: pagingEvents().map((e) => JSON.stringify(e)).join('\n') + '\n',
  });
  const posted = await response.json();
  assert.deepEqual(posted.rejected, [], 'the paging org is accepted');
  const month = await api(orgPath(`usage-history/${PAGING_MONTH}`, PAGING_ORG));
  assert.equal(month.items.length, 1);
  const item = month.items[0];
  const truth = await explanationLines(itemEventsPath(PAGING_MONTH, item.id, PAGING_ORG));
  assert.equal(truth.length, PAGING_USAGE_EVENTS + 1, 'every usage event and the void are behind the item');

  await setWidth(1440);
  await openPage(`?org=${PAGING_ORG}&month=${PAGING_MONTH}`);
  const button = page.locator(`#history-body .month-detail[data-month="${PAGING_MONTH}"] li.item[data-id=${cssString(item.id)}] > .item-row button.explain`);
  await openExplain(button);
  const more = page.locator('#explain-more');
  for (let shown = EXPLAIN_PAGE_EVENTS; shown < truth.length; shown += EXPLAIN_PAGE_EVENTS) {
    assert.equal(await page.locator('#explain tr.event-row').count(), shown, `a page of ${EXPLAIN_PAGE_EVENTS} events`);
    assert.equal(await page.getAttribute('#explain-check', 'data-result'), 'partial', 'no verdict before the last page');
    assert.match(await page.textContent('#explain-check'), new RegExp(`^${shown} events so far`));
    assert.equal(await more.isVisible(), true, '"Load more" is offered');
    await more.click();
    await page.waitForFunction((n) => document.querySelectorAll('#explain tr.event-row').length > n
      && document.querySelector('#explain-more').getAttribute('aria-busy') === null, shown);
  }
  const rows = await assertExplainMatches(truth, item.amount, 'paged item', await api(orgPath('', PAGING_ORG)));
  assert.equal(new Set(rows.map((r) => r.sequence)).size, rows.length, 'no event listed twice');
  assert.equal(await more.isVisible(), false, '"Load more" goes once all are listed');
  const voidRow = rows.find((r) => r.kind === 'void');
  assert.equal(voidRow.kindText, 'void of use-5');
  assert.equal(voidRow.provider, 'AWS paging', 'a void names the provider of the event it reverses');
  assert.ok(voidRow.amount.startsWith('-'), 'a void takes its amount away');
  await checkView('explain-paged');
  await closeExplainWithEsc(button, 'paged item');
});

test('an invoice line\'s Explain lists only that line\'s events; the whole invoice\'s add up to its total', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  const structure = await api(orgPath(''));
  const invoices = await api(orgPath(`invoices?month=${PER_COST_CENTER_MONTH}`));
  let invoice = null;
  for (const summary of invoices.invoices) {
    const full = await api(orgPath(`invoices/${encodeURIComponent(summary.invoice_id)}`));
    if (full.lines.length >= 2 && (!invoice || full.lines.length > invoice.lines.length)) invoice = full;
  }
  assert.ok(invoice, `${PER_COST_CENTER_MONTH} has an invoice with two lines or more`);
  const all = await explanationLines(invoiceEventsPath(invoice.invoice_id));
  await openPage(`?org=${ORG}&month=${PER_COST_CENTER_MONTH}&invoice=${encodeURIComponent(invoice.invoice_id)}`);
  const card = page.locator(`#invoices-body article.invoice[data-invoice-id="${invoice.invoice_id}"]`);
  await card.locator('.invoice-lines[data-state="ready"]').waitFor();

  for (const line of invoice.lines) {
    const truth = all.filter((l) => l.category === line.category && l.description === line.description);
    assert.ok(truth.length < all.length, 'the line has fewer events than the invoice');
    const button = card.locator(`tr.line[data-category="${line.category}"][data-description=${cssString(line.description)}] button.explain`);
    await openExplain(button);
    const rows = await assertExplainMatches(truth, line.amount, `line ${line.category}/${line.description}`, structure);
    rows.forEach((r) => assert.deepEqual([r.category, r.description], [line.category, line.description], `#${r.sequence} belongs to the line`));
    await closeExplainWithEsc(button, `line ${line.description}`);
  }

  // The invoice as a whole: its events add up to the exact total, which rounds to the one shown.
  const whole = card.locator('.invoice-actions button.explain');
  assert.equal(await whole.textContent(), 'Explain total');
  await openExplain(whole);
  await page.waitForSelector('#explain-check[data-result="match"]');
  const rows = await readExplainRows();
  assert.deepEqual(rows.map((r) => r.sequence), all.map((l) => Number(l.sequence)));
  const exact = sumNanos(rows.map((r) => r.amount));
  const unit = 10n ** 7n; // nanos per cent
  const cents = (exact < 0n ? -1n : 1n) * (((exact < 0n ? -exact : exact) + unit / 2n) / unit);
  assert.equal(cents, nanos(invoice.total) / unit, 'the events\' exact sum rounds to the invoice total');
  const exactText = `${exact / 10n ** 9n}.${String(exact % 10n ** 9n).padStart(9, '0')}`;
  assert.equal(await page.textContent('#explain-check'),
    `✓${all.length} events add up to ${expectedMoney(exactText, '$')}; rounded to the minor unit that is ${expectedMoney(invoice.total, '$')}, the invoice total shown.`,
    'the footer gives the exact sum and the rounded total');
  assert.equal(await page.locator('#explain th', { hasText: 'Invoice line' }).count(), 1, 'the whole invoice names each event\'s line');
  await checkView('explain-invoice');
  await closeExplainWithEsc(whole, 'whole invoice');
});

test('the Explain dialog reads well at 1440, 1024 and 390 px', { timeout: TEST_TIMEOUT_MS * 2 }, async () => {
  const found = await drillableMonth();
  for (const width of WIDTHS) {
    await setWidth(width);
    await openPage(`?org=${ORG}&month=${found.month}`);
    const detail = page.locator(`#history-body .month-detail[data-month="${found.month}"][data-state="ready"]`);
    await detail.waitFor();
    const top = itemRowOf(detail.locator(':scope > ul.tree'), found.item.id);
    const children = await expandItem(top);
    const button = children.locator(':scope > li.item > .item-row button.explain').first();
    await openExplain(button);
    await page.waitForSelector('#explain-check[data-result="match"]');
    await page.locator('#explain tr.event-row button.raw-toggle').first().click();
    await checkView('explain-node');
    await closeExplainWithEsc(button, `at ${width}px`);
  }
});

test('a final invoice shows its seal and a PDF download; a draft shows neither', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  const history = await api(orgPath('usage-history?months=6'));
  const closed = history.months.find((m) => m.status === 'closed' && m.total !== '0.00');
  assert.ok(closed, 'the golden example has a closed month with charges');
  const finals = await api(orgPath(`invoices?month=${closed.month}`));
  const invoice = finals.invoices[0];
  assert.equal(invoice.status, 'final');
  assert.ok(invoice.seal, 'a final invoice carries its seal');
  await openPage(`?org=${ORG}&month=${closed.month}`);
  const card = page.locator(`#invoices-body article.invoice[data-invoice-id="${invoice.invoice_id}"]`);
  const seal = card.locator('dd.seal');
  assert.equal(await seal.getAttribute('data-document-hash'), invoice.seal.document_hash);
  const sealText = await seal.textContent();
  assert.ok(sealText.includes(`Sealed at #${invoice.seal.sequence}`), `the seal names its sequence: ${sealText}`);
  assert.ok(sealText.includes(invoice.seal.document_hash.slice(0, 12)), 'the seal shows the start of the document hash');
  assert.ok((await seal.locator('code.hash').getAttribute('title')).includes(invoice.seal.document_hash), 'the whole hash is in its title');
  for (const width of WIDTHS) {
    await setWidth(width);
    await checkView('invoice-final');
  }
  await setWidth(1440);

  const pdf = card.locator('button.pdf');
  assert.equal(await pdf.getAttribute('aria-label'), `Download invoice ${invoice.invoice_id} as PDF`);
  const [download] = await Promise.all([page.waitForEvent('download'), pdf.click()]);
  assert.equal(download.suggestedFilename(), `${ORG}-${invoice.invoice_id}.pdf`);
  const bytes = await readFile(await download.path());
  assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-', 'the download is a PDF document');

  const drafts = await api(orgPath(`invoices?month=${PER_COST_CENTER_MONTH}`));
  assert.ok(drafts.invoices.every((i) => i.status === 'draft' && i.seal === null), `${PER_COST_CENTER_MONTH} is still a draft`);
  await openPage(`?org=${ORG}&month=${PER_COST_CENTER_MONTH}`);
  assert.equal(await page.locator('#invoices-body article.invoice').count(), drafts.invoices.length);
  assert.equal(await page.locator('#invoices-body dd.seal').count(), 0, 'a draft shows no seal');
  assert.equal(await page.locator('#invoices-body button.pdf').count(), 0, 'a draft offers no PDF');
});

test('Explain sends the access token like every other request', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!AUTH_BASE) {
    t.skip('LEDGER_AUTH_URL is not set');
    return;
  }
  await setWidth(1440);
  const found = await drillableMonth();
  // The page asks once without a token (401) before the token is entered; the browser's
  // console line for it is awaited, as it may come after the page has shown the banner.
  expectingHttpErrors = true;
  try {
    await Promise.all([unauthorizedLogged(), page.goto(`${AUTH_BASE}/?org=${ORG}&month=${found.month}`, { waitUntil: 'domcontentloaded' })]);
    await page.waitForSelector('#banner:not([hidden])');
  } finally {
    expectingHttpErrors = false;
  }
  await page.fill('#token', AUTH_TOKEN);
  await page.click('#org-form button[type="submit"]');
  await waitReady();
  const button = page.locator(`#history-body .month-detail[data-month="${found.month}"] li.item[data-id=${cssString(found.item.id)}] > .item-row button.explain`);
  await openExplain(button);
  assert.equal(await page.getAttribute('#explain-check', 'data-result'), 'match', 'the events are listed with the viewer token');
  await closeExplainWithEsc(button, 'with a token');
  // The token field is cleared for the next tests, as in the 401 test (the 401 that follows is expected).
  expectingHttpErrors = true;
  try {
    await page.fill('#token', '');
    await Promise.all([unauthorizedLogged(), page.click('#org-form button[type="submit"]')]);
    await page.waitForSelector('#banner:not([hidden])');
  } finally {
    expectingHttpErrors = false;
  }
});

// ---- Budgets, forecasts and alerts (the budgets example) ----------------------------------

// The `response` of expected/<org>/<name>.json in the budgets example.
async function expected(org, name) {
  return JSON.parse(await readFile(path.join(BUDGETS_DIR, 'expected', org, `${name}.json`), 'utf8')).response;
}

const budgetPage = (org, query = '') => `?org=${encodeURIComponent(org)}&months=${BUDGET_MONTHS}${query}`;

// The chart and its table as the page shows them: the table's cells, the bars, the forecast
// ghost bars and the budget line's steps, with the geometry needed to check their heights.
async function readBudgetChart() {
  return page.evaluate(() => {
    const cell = (tr, series) => {
      const td = tr.querySelector(`td.c-${series}`);
      return td.dataset.none === 'true' ? null : td.querySelector('.amount').getAttribute('data-amount');
    };
    const num = (el, name) => Number(el.getAttribute(name));
    return {
      table: [...document.querySelectorAll('#chart-table tbody tr')].map((tr) => ({
        month: tr.dataset.month, billed: cell(tr, 'billed'), budget: cell(tr, 'budget'), forecast: cell(tr, 'forecast'),
      })),
      zeroY: num(document.querySelector('#chart .grid line.baseline'), 'y1'),
      topY: Math.min(...[...document.querySelectorAll('#chart .grid line')].map((l) => num(l, 'y1'))),
      bars: [...document.querySelectorAll('#chart rect.bar')].map((r) => ({
        month: r.dataset.month, billed: r.dataset.billed, height: num(r, 'height'),
      })),
      forecasts: [...document.querySelectorAll('#chart rect.forecast')].map((r) => ({
        month: r.dataset.month, forecast: r.dataset.forecast, top: num(r, 'y'), height: num(r, 'height'),
        painted: getComputedStyle(r).fill !== 'none' && getComputedStyle(r).stroke !== 'none',
      })),
      steps: [...document.querySelectorAll('#chart line.budget-step')].map((l) => ({
        month: l.dataset.month, budget: l.dataset.budget, y1: num(l, 'y1'), y2: num(l, 'y2'), length: num(l, 'x2') - num(l, 'x1'),
        stroke: getComputedStyle(l).stroke, strokeWidth: parseFloat(getComputedStyle(l).strokeWidth),
      })),
      legend: [...document.querySelectorAll('#chart .chart-legend li')].map((li) => li.dataset.series),
    };
  });
}

// The page's chart and table equal the expected dashboard answer: every figure exactly in the
// table, one ghost bar per forecast and one budget step per budget at the height of its value.
function assertBudgetChart(view, truth, what) {
  assert.deepEqual(view.table, truth.months.map(({ month, billed, budget, forecast }) => ({ month, billed, budget, forecast })),
    `${what}: the table shows every month's billed, budget and forecast exactly`);
  assert.deepEqual(view.bars.map((b) => [b.month, b.billed]), truth.months.map((m) => [m.month, m.billed]), `${what}: one bar per month`);
  const withForecast = truth.months.filter((m) => m.forecast !== null);
  const withBudget = truth.months.filter((m) => m.budget !== null);
  assert.deepEqual(view.forecasts.map((f) => [f.month, f.forecast]), withForecast.map((m) => [m.month, m.forecast]),
    `${what}: one forecast bar per open month`);
  assert.deepEqual(view.steps.map((s) => [s.month, s.budget]), withBudget.map((m) => [m.month, m.budget]),
    `${what}: one budget step per month with a budget, none where it is null`);
  // Pixels per currency unit, from the tallest bar.
  const tallest = view.bars.reduce((a, b) => (Number(b.billed) > Number(a.billed) ? b : a));
  const perUnit = tallest.height / Number(tallest.billed);
  // The scale covers budgets and forecasts: nothing rises above the top gridline.
  for (const top of [...view.forecasts.map((f) => f.top), ...view.steps.map((s) => s.y1)]) {
    assert.ok(top >= view.topY - 0.5, `${what}: budgets and forecasts stay inside the scale`);
  }
  for (const f of view.forecasts) {
    assert.ok(f.painted, `${what}: the forecast bar of ${f.month} is painted`);
    assert.ok(Math.abs(f.height - Number(f.forecast) * perUnit) <= 1, `${what}: the forecast bar of ${f.month} reaches ${f.forecast}`);
  }
  for (const s of view.steps) {
    assert.equal(s.y1, s.y2, `${what}: the budget step of ${s.month} is level`);
    assert.ok(Math.abs(view.zeroY - s.y1 - Number(s.budget) * perUnit) <= 1, `${what}: the budget step of ${s.month} is at ${s.budget}`);
    assert.ok(s.stroke !== 'none' && s.strokeWidth >= 2 && s.length > 10, `${what}: the budget step of ${s.month} is visible`);
  }
  const legend = ['billed', ...(withForecast.length ? ['forecast'] : []), withBudget.length ? 'budget' : 'none'];
  assert.deepEqual(view.legend, legend, `${what}: the legend names what is drawn`);
}

test('the chart draws noor.bh\'s budget as a step line and open months\' forecasts as ghost bars, with the golden figures in its table', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  for (const [name, costCenter] of [['dashboard', ''], ['dashboard-cc-app', 'cc-app'], ['dashboard-cc-data', 'cc-data']]) {
    await openPage(budgetPage(BUDGET_ORG, costCenter ? `&cost_center=${costCenter}` : ''));
    await waitForChart(BUDGET_MONTHS, costCenter);
    assertBudgetChart(await readBudgetChart(), await expected(BUDGET_ORG, name), `${BUDGET_ORG} ${name}`);
  }
  // The whole organization: budget 100 in January, 80 after, so one riser; the forecast of
  // March stands against its budget in the key figures and in the bar's name.
  await openPage(budgetPage(BUDGET_ORG));
  await waitForChart(BUDGET_MONTHS);
  const view = await readBudgetChart();
  assert.ok(view.steps[0].y1 < view.steps[1].y1, 'January\'s higher budget is drawn higher');
  assert.equal(await page.locator('#chart line.budget-riser').count(), 1, 'one riser where the budget changes');
  assert.equal(await page.locator('#kpis [data-kpi="forecast"] .amount').getAttribute('data-amount'), '136.000');
  assert.match(await page.textContent('#kpis [data-kpi="forecast"]'), /Forecast, March 2026.*170\.0% of the .*80\.000 budget/);
  const name = await page.getAttribute('#chart .bar-group[data-month="2026-03"]', 'aria-label');
  assert.match(name, /^March 2026: .*16\.000 billed, forecast .*136\.000, budget .*80\.000\. Open this month\.$/);

  // hoshi.jp's latest month is 2026-01 (its last charge), where the page's period ends: its
  // row is the golden one, and the months before it are the service's.
  await openPage(budgetPage(BUDGET_JPY_ORG));
  await waitForChart(BUDGET_MONTHS);
  const jpy = await readBudgetChart();
  assertBudgetChart(jpy, await api(orgPath(`dashboard?months=${BUDGET_MONTHS}`, BUDGET_JPY_ORG)), `${BUDGET_JPY_ORG} dashboard`);
  const golden = (await expected(BUDGET_JPY_ORG, 'dashboard')).months.find((m) => m.month === '2026-01');
  assert.deepEqual(jpy.table.find((m) => m.month === '2026-01'), golden, `${BUDGET_JPY_ORG}: January is the golden month`);
  assert.equal(await page.textContent('#chart-table tr[data-month="2026-01"] td.c-forecast'), '¥124,012');
});

// The alerts the page lists, in its order.
const readAlerts = () => page.$$eval('#alerts-list li.alert', (items) => items.map((li) => ({
  alert_id: li.dataset.alertId, budget_id: li.dataset.budgetId, cost_center_id: li.dataset.costCenter || null,
  month: li.dataset.month, kind: li.dataset.kind, threshold: Number(li.dataset.threshold),
  budget: li.querySelector('.alert-budget').getAttribute('data-amount'),
  amount: li.querySelector('.alert-amount').getAttribute('data-amount'),
  sequence: Number(li.dataset.sequence), text: li.textContent,
})));

// The listed alerts are the expected ones, newest first. The example was loaded after the main
// one, so its sequences are the expected ones plus one offset; alert ids are the service's.
async function assertAlerts(shown, truth, org, what) {
  const key = (a) => `${a.budget_id} ${a.month} ${a.kind} ${a.threshold}`;
  const strip = ({ budget_id, cost_center_id, month, kind, threshold, budget, amount }) => ({ budget_id, cost_center_id, month, kind, threshold, budget, amount });
  assert.deepEqual(byKey(shown.map(strip)), byKey(truth.map(strip)), `${what}: the alerts listed are the expected ones`);
  for (let i = 1; i < shown.length; i++) assert.ok(shown[i - 1].sequence >= shown[i].sequence, `${what}: newest first`);
  const live = new Map((await api(orgPath('alerts', org))).alerts.map((a) => [key(a), a]));
  const expectedSeq = new Map(truth.map((a) => [key(a), a.sequence]));
  const offsets = new Set(shown.map((a) => a.sequence - expectedSeq.get(key(a))));
  assert.ok(offsets.size <= 1, `${what}: sequences keep the example's order and spacing`);
  for (const a of shown) {
    assert.equal(a.alert_id, live.get(key(a)).alert_id, `${what}: ${key(a)} carries its alert id`);
    const digits = a.text.replace(/,/g, '');
    assert.ok(digits.includes(a.amount) && digits.includes(a.budget), `${what}: ${key(a)} shows amount and budget`);
  }
}

test('budget alerts are listed as the ledger raised them, newest first, scoped to the cost center and the period', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  const all = (await expected(BUDGET_ORG, 'alerts')).alerts;
  await openPage(budgetPage(BUDGET_ORG));
  const shown = await readAlerts();
  await assertAlerts(shown, all, BUDGET_ORG, `${BUDGET_ORG} alerts`);
  assert.match(shown[0].text, /^Forecast 100%Forecast reached budget org-totalMarch 2026 · the whole organization · ledger sequence \d+.*136\.000 forecast against .*80\.000$/);
  const actual = shown.find((a) => a.budget_id === 'data-team' && a.kind === 'actual');
  assert.match(actual.text, /^Actual 50%Actual charges reached 50% of budget data-teamJanuary 2026 · cost center .*\(cc-data\) · ledger sequence \d+.*16\.500 charged of .*30\.000$/);

  await openPage(budgetPage(BUDGET_ORG, '&cost_center=cc-data'));
  await assertAlerts(await readAlerts(), all.filter((a) => a.cost_center_id === 'cc-data'), BUDGET_ORG, 'cc-data alerts');
  await openPage(budgetPage(BUDGET_ORG, '&cost_center=cc-app'));
  assert.equal((await readAlerts()).length, 0, 'cc-app has no budget, so no alert');
  assert.match(await page.textContent('#alerts-list'), /No budget alerts for cost center .*\(cc-app\) in these 3 months\./);

  // One month shown: only its alerts.
  await openPage(`?org=${BUDGET_ORG}&months=1`);
  await assertAlerts(await readAlerts(), (await expected(BUDGET_ORG, 'alerts-2026-03')).alerts, BUDGET_ORG, 'March alone');

  await openPage(budgetPage(BUDGET_JPY_ORG));
  await assertAlerts(await readAlerts(), (await expected(BUDGET_JPY_ORG, 'alerts')).alerts, BUDGET_JPY_ORG, `${BUDGET_JPY_ORG} alerts`);
});

test('an organization without budgets draws no budget line and lists no alerts, but shows its forecasts', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  await openPage();
  await waitForChart(DEFAULT_MONTHS_SHOWN);
  const truth = await api(orgPath(`dashboard?months=${DEFAULT_MONTHS_SHOWN}`));
  assert.ok(truth.months.every((m) => m.budget === null), 'acme has no budget');
  assert.ok(truth.months.some((m) => m.forecast !== null), 'acme has open months with a forecast');
  const view = await readBudgetChart();
  assertBudgetChart(view, truth, 'acme');
  assert.equal(await page.locator('#chart .budget-layer *').count(), 0, 'no budget line');
  assert.match(await page.textContent('#chart .chart-legend'), /No budget set for the whole organization/);
  assert.equal((await readAlerts()).length, 0, 'no alerts');
  assert.match(await page.textContent('#alerts-list'), /No budget alerts for the whole organization/);
});

test('budget figures and alerts never stay stale: another org, an unknown org or a failing alerts answer clears them', { timeout: TEST_TIMEOUT_MS }, async () => {
  await setWidth(1440);
  await openPage(budgetPage(BUDGET_ORG));
  assert.ok((await readAlerts()).length > 0, 'noor.bh lists alerts first');
  await page.fill('#org', ORG);
  await page.click('#org-form button[type="submit"]');
  await waitReady();
  assert.equal((await readAlerts()).length, 0, 'no alert of noor.bh is left under acme');
  assert.equal(await page.locator('#chart .budget-step').count(), 0, 'no budget of noor.bh is left under acme');

  expectingHttpErrors = true;
  try {
    await openPage(budgetPage(BUDGET_ORG));
    await page.fill('#org', 'nope');
    await page.click('#org-form button[type="submit"]');
    await page.waitForSelector('#dashboard[data-state="error"]');
    assert.equal(await page.isHidden('#alerts'), true, 'the alerts are gone with an unknown org');
    await assertNoFigures('unknown org after noor.bh');

    // The alerts are part of the view's load: when they fail, nothing of the view is shown.
    await openPage(budgetPage(BUDGET_ORG));
    await page.route('**/alerts*', (route) => route.fulfill({
      status: 500, contentType: 'application/json', body: '{"error":{"code":"internal","message":"alerts are broken"}}',
    }));
    try {
      await page.selectOption('#cost-center', 'cc-data');
      await page.waitForSelector('#dashboard[data-state="error"]');
      assert.match(await page.textContent('#banner'), /alerts are broken/);
      assert.equal(await page.isHidden('#alerts'), true, 'no alert is left after a failed load');
      await assertNoFigures('failed alerts answer');
    } finally {
      await page.unroute('**/alerts*');
    }
  } finally {
    expectingHttpErrors = false;
  }
});

test('budgets, forecasts and alerts read well at 1440, 1024 and 390 px', { timeout: TEST_TIMEOUT_MS * 2 }, async () => {
  for (const width of WIDTHS) {
    await setWidth(width);
    await openPage(budgetPage(BUDGET_ORG));
    await checkView('budgets');
    await page.click('#chart-table-box summary');
    await checkView('budgets-table');
    await openPage(budgetPage(BUDGET_ORG, '&cost_center=cc-data'));
    await waitForChart(BUDGET_MONTHS, 'cc-data');
    await checkView('budgets-cc-data');
    // Twelve months: the budget line starts in the middle, after months without one.
    await openPage(`?org=${BUDGET_ORG}&months=12`);
    await checkView('budgets-12');
    await openPage(budgetPage(BUDGET_JPY_ORG));
    await checkView('budgets-jpy');
  }
});

test('the page loaded nothing from outside the ledger and raised no script errors', () => {
  assert.deepEqual(foreignRequests, [], 'requests to other origins');
  assert.deepEqual(pageErrors, [], 'uncaught page errors');
  assert.deepEqual(consoleErrors, [], 'console errors');
});
