// Proves the web page at / shows what the ledger answers: headless Chromium drives the page on a
// running ledgerd, and every amount on screen is compared with the same endpoint fetched here.
//
// Needs a service loaded with shared/examples/events.ndjson (org `acme`, PER_COST_CENTER 2026-01).
// Env: LEDGER_URL (required, e.g. http://127.0.0.1:8080), LEDGER_TOKEN (optional bearer token),
// SCREENSHOT_DIR (default <repo>/build/screenshots), CHROMIUM_PATH (default /usr/bin/chromium).
// Run: cd tests/web && npm ci && LEDGER_URL=http://127.0.0.1:8080 node --test dashboard.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.LEDGER_URL || '').replace(/\/+$/, '');
const TOKEN = process.env.LEDGER_TOKEN || '';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR
  ? path.resolve(process.env.SCREENSHOT_DIR)
  : path.resolve(HERE, '..', '..', 'build', 'screenshots');
const ORG = 'acme';
// The golden example switches acme to PER_COST_CENTER during this month.
const PER_COST_CENTER_MONTH = '2026-01';
const MONTH_CHOICES = ['3', '6', '12', '24'];

// Every wait has a deadline so a broken page fails the run instead of hanging it.
const STEP_TIMEOUT_MS = 15_000;
const TEST_TIMEOUT_MS = 90_000;
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

if (!BASE) {
  console.error('LEDGER_URL is not set: point it at a running ledgerd, e.g. http://127.0.0.1:8080');
  process.exit(2);
}

let browser;
let context;
let page;
const pageErrors = [];
const consoleErrors = [];
const foreignRequests = [];
// Set while a test provokes API errors on purpose, whose console noise is expected.
let expectingHttpErrors = false;

async function api(pathAndQuery) {
  const headers = { Accept: 'application/json' };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const response = await fetch(BASE + pathAndQuery, { headers });
  const text = await response.text();
  assert.ok(response.ok, `GET ${pathAndQuery} answered ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

const orgPath = (rest) => `/v1/orgs/${encodeURIComponent(ORG)}/${rest}`;

async function screenshot(name) {
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

// Opens the page afresh and waits until the dashboard and the usage history have both answered.
async function openPage(query = `?org=${encodeURIComponent(ORG)}`) {
  const response = await page.goto(`${BASE}/${query}`, { waitUntil: 'domcontentloaded' });
  assert.equal(response.status(), 200, 'GET / answers 200');
  assert.match(response.headers()['content-type'] || '', /^text\/html/, 'GET / is served as text/html');
  await page.waitForSelector('#dashboard[data-state="ready"]');
  await page.waitForSelector('#history[data-state="ready"]');
}

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
      shown: g.querySelector('text.bar-amount').textContent,
      tooltip: rect.querySelector('title') ? rect.querySelector('title').textContent : '',
      height: Number(rect.getAttribute('height')),
    };
  }));
}

function assertBarsMatch(bars, truth, what) {
  assert.equal(bars.length, truth.months.length, `${what}: one bar per month the API returns`);
  truth.months.forEach((m, i) => {
    assert.equal(bars[i].month, m.month, `${what}: bar ${i} is month ${m.month}`);
    assert.equal(bars[i].billed, m.billed, `${what}: data-billed of ${m.month}`);
    assert.equal(bars[i].shown, m.billed, `${what}: amount shown for ${m.month}`);
    assert.ok(bars[i].tooltip.includes(m.billed), `${what}: tooltip of ${m.month} names ${m.billed}`);
    assert.ok(Number.isFinite(bars[i].height) && bars[i].height >= 0, `${what}: bar ${m.month} has a height`);
  });
}

// Quotes any string for a CSS attribute selector (item ids are opaque: they may hold anything).
const cssString = (text) => `"${String(text).replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\a ')}"`;

// Items, providers and invoice lines may come in any order the service likes, so compare as sets.
const byKey = (rows) => rows.map((r) => JSON.stringify(r)).sort();

// Rows directly under a tree list: [{category?, label, amount, drillable}].
async function readItemRows(listLocator) {
  return listLocator.locator(':scope > li.item').evaluateAll((items) => items.map((li) => ({
    label: li.getAttribute('data-label'),
    amount: li.getAttribute('data-amount'),
    shownAmount: li.querySelector(':scope > .item-row .amount').textContent,
    drillable: li.querySelector(':scope > .item-row > button.expand') !== null,
  })));
}

function assertItemsMatch(rows, truth, what) {
  for (const row of rows) assert.equal(row.shownAmount, row.amount, `${what}: ${row.label} shows its amount as given`);
  assert.deepEqual(
    byKey(rows.map(({ label, amount, drillable }) => ({ label, amount, drillable }))),
    byKey(truth.map(({ label, amount, drillable }) => ({ label, amount, drillable: Boolean(drillable) }))),
    `${what}: rows equal the API's`);
}

before(async () => {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  if (TOKEN) {
    await context.addInitScript((token) => window.sessionStorage.setItem('ledger.token', token), TOKEN);
  }
  page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const origin = new URL(BASE).origin;
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !expectingHttpErrors) consoleErrors.push(msg.text());
  });
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith('data:') && new URL(url).origin !== origin) foreignRequests.push(url);
  });
});

after(async () => {
  if (browser) await browser.close();
});

test('dashboard shows one bar per month, following the period selector', { timeout: TEST_TIMEOUT_MS }, async () => {
  await openPage();
  assert.equal(await page.inputValue('#months'), '6', 'the period selector defaults to 6 months');
  await waitForChart(6);
  assertBarsMatch(await readBars(), await api(orgPath('dashboard?months=6')), 'default view');
  const currency = (await api(orgPath('dashboard?months=6'))).currency;
  assert.equal(await page.getAttribute('#chart svg.bar-chart', 'data-currency'), currency);
  assert.ok((await page.textContent('#chart svg .axis-title')).includes(currency), 'the y axis names the currency');
  await screenshot('dashboard-6');

  for (const months of [...MONTH_CHOICES, '6']) {
    await page.selectOption('#months', months);
    await waitForChart(months);
    const truth = await api(orgPath(`dashboard?months=${months}`));
    assert.equal(truth.months.length, Number(months));
    assertBarsMatch(await readBars(), truth, `${months} months`);
    if (months === '24') await screenshot('dashboard-24');
  }
});

test('dashboard filtered by a cost center shows that cost center\'s billed amounts', { timeout: TEST_TIMEOUT_MS }, async () => {
  await openPage();
  const invoices = await api(orgPath(`invoices?month=${PER_COST_CENTER_MONTH}`));
  const costCenter = invoices.invoices.map((i) => i.cost_center_id).find(Boolean);
  assert.ok(costCenter, `the API lists a cost-center invoice in ${PER_COST_CENTER_MONTH}`);

  await page.fill('#cost-center', costCenter);
  await page.press('#cost-center', 'Enter');
  await waitForChart(6, costCenter);
  const truth = await api(orgPath(`dashboard?months=6&cost_center=${encodeURIComponent(costCenter)}`));
  assertBarsMatch(await readBars(), truth, `cost center ${costCenter}`);
  assert.ok(new URL(page.url()).searchParams.get('cost_center') === costCenter, 'the filter is kept in the address');
  await screenshot('dashboard-cost-center');

  await page.fill('#cost-center', '');
  await page.click('#cc-form button[type="submit"]');
  await waitForChart(6, '');
  assertBarsMatch(await readBars(), await api(orgPath('dashboard?months=6')), 'filter cleared');
});

test('usage history lists the API months, and opening a month shows its items', { timeout: TEST_TIMEOUT_MS }, async () => {
  await openPage();
  const history = await api(orgPath('usage-history?months=12'));
  const rows = await page.$$eval('#history-body button.month-row', (buttons) =>
    buttons.map((b) => ({ month: b.getAttribute('data-month'), text: b.textContent })));
  assert.deepEqual(rows.map((r) => r.month), history.months.map((m) => m.month), 'months newest first, as the API lists them');
  history.months.forEach((m, i) => assert.ok(rows[i].text.includes(m.total), `row ${m.month} shows total ${m.total}`));

  const charged = history.months.filter((m) => !/^0+(\.0+)?$/.test(m.total));
  assert.ok(charged.length > 0, 'the example org has months with charges');
  let first = true;
  for (const m of charged) {
    const button = page.locator(`#history-body button.month-row[data-month="${m.month}"]`);
    // The first month is opened from the keyboard, to prove the rows are real buttons.
    if (first) {
      await button.focus();
      await page.keyboard.press('Enter');
      first = false;
    } else {
      await button.click();
    }
    const detail = page.locator(`#history-body .month-detail[data-month="${m.month}"]`);
    await detail.and(page.locator('[data-state="ready"]')).waitFor();
    assert.equal(await button.getAttribute('aria-expanded'), 'true');
    const truth = await api(orgPath(`usage-history/${m.month}`));
    const shown = await readItemRows(detail.locator(':scope > ul.tree'));
    assertItemsMatch(shown, truth.items, `items of ${m.month}`);
    const categories = await detail.locator(':scope > ul.tree > li.item').evaluateAll(
      (items) => items.map((li) => li.getAttribute('data-category')));
    assert.deepEqual(categories.sort(), truth.items.map((i) => i.category).sort(), `categories of ${m.month}`);
  }
  await screenshot('usage-history');
});

test('expanding a usage item shows its providers, and drills down to SKUs', { timeout: TEST_TIMEOUT_MS }, async () => {
  await openPage();
  const history = await api(orgPath('usage-history?months=12'));
  let month = null;
  let items = null;
  for (const m of history.months) {
    const answer = await api(orgPath(`usage-history/${m.month}`));
    if (answer.items.some((i) => i.drillable)) {
      month = m.month;
      items = answer.items;
      break;
    }
  }
  assert.ok(month, 'some month has a drillable usage item');

  await page.click(`#history-body button.month-row[data-month="${month}"]`);
  const detail = page.locator(`#history-body .month-detail[data-month="${month}"]`);
  await detail.and(page.locator('[data-state="ready"]')).waitFor();

  const top = items.find((i) => i.drillable);
  const topNode = detail.locator(`:scope > ul.tree > li.item[data-id=${cssString(top.id)}]`);
  assert.equal(await topNode.getAttribute('data-label'), top.label);
  let item = top;
  let node = topNode;
  for (let depth = 1; item; depth++) {
    assert.ok(depth <= 3, 'usage drills at most service -> provider -> resource -> sku');
    const expand = node.locator(':scope > .item-row > button.expand');
    assert.equal(await expand.getAttribute('aria-expanded'), 'false');
    await expand.click();
    const children = node.locator(':scope > ul.children');
    await children.and(page.locator('[data-state="ready"]')).waitFor();
    assert.equal(await expand.getAttribute('aria-expanded'), 'true');

    const truth = await api(orgPath(`usage-history/${month}/items/${encodeURIComponent(item.id)}`));
    assert.equal(truth.label, item.label);
    const shown = await readItemRows(children);
    assertItemsMatch(shown, truth.children, `depth ${depth} under ${item.label}`);
    if (depth === 1) {
      assert.deepEqual(shown.map((r) => r.label).sort(), truth.children.map((c) => c.label).sort(),
        `providers of ${item.label}`);
      await screenshot('usage-drilldown-providers');
    }
    item = truth.children.find((c) => c.drillable) || null;
    if (item) node = children.locator(`:scope > li.item[data-id=${cssString(item.id)}]`);
  }
  await screenshot('usage-drilldown');

  // Collapsing hides the breakdown again without refetching.
  const topExpand = topNode.locator(':scope > .item-row > button.expand');
  await topExpand.click();
  assert.equal(await topExpand.getAttribute('aria-expanded'), 'false');
  assert.equal(await topNode.locator(':scope > ul.children').isHidden(), true);
});

test(`invoices of ${ORG} ${PER_COST_CENTER_MONTH} show one card per cost-center invoice`, { timeout: TEST_TIMEOUT_MS }, async () => {
  await openPage();
  const truth = await api(orgPath(`invoices?month=${PER_COST_CENTER_MONTH}`));
  assert.equal(truth.mode, 'PER_COST_CENTER', `${PER_COST_CENTER_MONTH} is a PER_COST_CENTER month`);
  assert.ok(truth.invoices.some((i) => i.cost_center_id), 'the month has cost-center invoices');

  await page.selectOption('#invoice-month', PER_COST_CENTER_MONTH);
  await page.waitForSelector(`#invoices[data-state="ready"] #invoices-body[data-month="${PER_COST_CENTER_MONTH}"]`);
  const cards = await page.$$eval('#invoices-body article.invoice', (articles) => articles.map((a) => ({
    id: a.getAttribute('data-invoice-id'), text: a.textContent,
  })));
  assert.deepEqual(cards.map((c) => c.id).sort(), truth.invoices.map((i) => i.invoice_id).sort(),
    'one card per invoice the API returns');
  for (const invoice of truth.invoices) {
    const card = cards.find((c) => c.id === invoice.invoice_id);
    assert.ok(card.text.includes(invoice.cost_center_id || 'Organization'), `${invoice.invoice_id} names its cost center`);
    assert.ok(card.text.includes(invoice.billing_account || 'not assigned'), `${invoice.invoice_id} shows its billing account`);
    assert.ok(card.text.includes(invoice.total), `${invoice.invoice_id} shows total ${invoice.total}`);
    assert.ok(card.text.includes(invoice.currency), `${invoice.invoice_id} shows its currency`);
    assert.ok(card.text.toLowerCase().includes(invoice.status), `${invoice.invoice_id} shows status ${invoice.status}`);
  }

  for (const invoice of truth.invoices) {
    const card = page.locator(`#invoices-body article.invoice[data-invoice-id="${invoice.invoice_id}"]`);
    await card.locator('button.show-lines').click();
    await card.locator('.invoice-lines[data-state="ready"]').waitFor();
    const full = await api(orgPath(`invoices/${encodeURIComponent(invoice.invoice_id)}`));
    const lines = await card.locator('tr.line').evaluateAll((rows) => rows.map((r) => ({
      category: r.getAttribute('data-category'),
      description: r.getAttribute('data-description'),
      amount: r.getAttribute('data-amount'),
      shown: r.querySelector('.amount').textContent,
    })));
    for (const line of lines) assert.equal(line.shown, line.amount, `${invoice.invoice_id}: line amount shown as given`);
    assert.deepEqual(
      byKey(lines.map(({ category, description, amount }) => ({ category, description, amount }))),
      byKey(full.lines.map(({ category, description, amount }) => ({ category, description, amount }))),
      `${invoice.invoice_id}: lines equal the API's`);
  }
  await screenshot('invoices');
});

test('an unknown organization is reported in plain words', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const ghost = 'no-such-org-web-test';
  const response = await fetch(`${BASE}/v1/orgs/${ghost}/dashboard`,
    { headers: TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {} });
  // A token scoped to one org may answer 403 instead; the page words that differently.
  if (response.status !== 404) {
    t.skip(`the service answers ${response.status} for an unknown org with this token`);
    return;
  }
  expectingHttpErrors = true;
  try {
    await page.goto(`${BASE}/?org=${ghost}`, { waitUntil: 'domcontentloaded' });
    // Both sections must have failed before the expected console noise stops being ignored.
    await page.waitForSelector('#dashboard[data-state="error"]');
    await page.waitForSelector('#history[data-state="error"]');
    await page.waitForSelector('#banner:not([hidden])');
    assert.match(await page.textContent('#banner'), /Unknown organization/);
    await screenshot('unknown-org');
  } finally {
    expectingHttpErrors = false;
  }
});

test('the page loaded nothing from outside the ledger and raised no script errors', () => {
  assert.deepEqual(foreignRequests, [], 'requests to other origins');
  assert.deepEqual(pageErrors, [], 'uncaught page errors');
  assert.deepEqual(consoleErrors, [], 'console errors');
});
