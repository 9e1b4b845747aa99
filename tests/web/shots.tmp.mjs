import { chromium } from 'playwright-core';
const BASE = process.env.LEDGER_URL;
const W = Number(process.env.W || 390);
const Q = process.env.Q || '?org=acme&month=2026-01';
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--headless','--no-sandbox','--disable-gpu'] });
const page = await browser.newPage({ viewport: { width: W, height: 900 } });
page.on('pageerror', (e) => console.log('PAGEERROR', String(e)));
await page.goto(`${BASE}/${Q}`);
await page.waitForSelector('#invoices[data-state="ready"]', { timeout: 10000 }).catch((e) => console.log('timeout', e.message));
if (process.env.ACTION) await eval(process.env.ACTION);
await page.waitForTimeout(400);
const height = await page.evaluate(() => document.documentElement.scrollHeight);
for (let y = 0, i = 0; y < height; y += 800, i++) {
  await page.screenshot({ path: `/tmp/webshot/p${W}-${i}.png`, fullPage: true, clip: { x: 0, y, width: W, height: Math.min(800, height - y) } });
}
console.log('height', height, 'chunks', Math.ceil(height / 800));
await browser.close();
