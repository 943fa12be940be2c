// report.test.mjs — renders `tandem report --format html` files in Debian's chromium
// (headless, through playwright-core) and checks what a reader would get: every chart drawn
// with a real size, no request for anything but the file itself, no script error, a page
// that fits its width on a laptop and on a phone, and an A4 PDF of a few pages. Saves the
// first file as report.png (the screen), report-top.png (its top, down to the charts),
// report-print.png (print media) and report.pdf in $TDM_REPORT_DIR. Run by tests/integration/report.sh:
//
//     node tests/e2e/report.test.mjs REPORT.html [MORE.html...]

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const files = process.argv.slice(2);
if (files.length === 0) {
    console.error('usage: node report.test.mjs REPORT.html [MORE.html...]');
    process.exit(2);
}
const OUT = process.env.TDM_REPORT_DIR || path.dirname(path.resolve(files[0]));
const CHROMIUM = process.env.TDM_CHROMIUM || '/usr/bin/chromium';
const T = 15000;

const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

let failed = 0;
async function check(file, first) {
    const url = pathToFileURL(path.resolve(file)).href;
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    context.setDefaultTimeout(T);
    const page = await context.newPage();
    const problems = [], requests = [];
    page.on('pageerror', e => problems.push(`page error: ${e.message}`));
    page.on('console', m => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    // Everything the page asks for is seen here; only the file itself may be loaded.
    await context.route('**/*', route => {
        const u = route.request().url();
        if (u === url) return route.continue();
        requests.push(u);
        return route.abort();
    });
    await page.goto(url, { waitUntil: 'load' });
    const name = path.basename(file);

    if (first) {
        await page.screenshot({ path: path.join(OUT, 'report.png'), fullPage: true });
        // The top of the report, down to the trends, for the README (docs/img/report.png).
        const bottom = await page.$eval('.charts', c => c.getBoundingClientRect().bottom + window.scrollY);
        await page.screenshot({ path: path.join(OUT, 'report-top.png'), fullPage: true,
            clip: { x: 0, y: 0, width: 1100, height: Math.ceil(bottom) + 24 } });
    }
    const figures = await page.$$eval('figure svg', svgs => svgs.map(s => {
        const box = s.getBoundingClientRect(), inner = s.getBBox();
        return { w: box.width, h: box.height, iw: inner.width, ih: inner.height,
            marks: s.querySelectorAll('rect, path, circle').length, label: s.getAttribute('aria-label') };
    }));
    assert.ok(figures.length >= 4, `${name}: ${figures.length} charts, expected 4`);
    for (const f of figures) {
        assert.ok(f.w > 200 && f.h > 80, `${name}: chart "${f.label}" is ${f.w}x${f.h} on screen`);
        assert.ok(f.iw > 100 && f.ih > 50 && f.marks > 0, `${name}: chart "${f.label}" draws nothing (${f.iw}x${f.ih}, ${f.marks} marks)`);
    }
    const summary = await page.textContent('.summary');
    assert.match(summary, /received [\d,]+ items\. The AI decided \d+(\.\d+)?% of the/, `${name}: the summary: ${summary}`);
    const sections = await page.$$eval('h2', hs => hs.map(h => h.textContent));
    for (const want of ['Summary', 'Baseline against actual', 'Where the AI goes wrong', 'Steps'])
        assert.ok(sections.some(s => s.startsWith(want)), `${name}: no section "${want}" in ${sections}`);
    for (const width of [1100, 760, 390]) {
        await page.setViewportSize({ width, height: 900 });
        const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(over <= 0, `${name}: ${over} px wider than a ${width} px window`);
    }
    await page.setViewportSize({ width: 1100, height: 900 });

    if (first) {
        await page.emulateMedia({ media: 'print' });
        await page.setViewportSize({ width: 794, height: 1123 }); /* A4 at 96 dpi */
        await page.screenshot({ path: path.join(OUT, 'report-print.png'), fullPage: true });
        await page.emulateMedia({ media: 'screen' });
    }
    await page.emulateMedia({ media: 'print' });
    const pdf = await page.pdf({ format: 'A4', printBackground: false, preferCSSPageSize: true });
    const pages = (pdf.toString('latin1').match(/\/Type\s*\/Page(?!s)/g) || []).length;
    assert.ok(pages >= 1 && pages <= 5, `${name}: the PDF has ${pages} pages, expected 1 to 5`);
    if (first) fs.writeFileSync(path.join(OUT, 'report.pdf'), pdf);

    assert.deepEqual(requests, [], `${name}: the page asked for ${requests.join(', ')}`);
    assert.deepEqual(problems, [], `${name}: ${problems.join('; ')}`);
    console.log(`ok: ${name}: ${figures.length} charts drawn, nothing fetched, fits 390 to 1100 px, ${pages} A4 pages`);
    await context.close();
}

for (const [i, file] of files.entries()) {
    try {
        await check(file, i === 0);
    } catch (e) {
        failed++;
        console.error(`FAIL: ${e.message}`);
    }
}
await browser.close();
if (failed === 0 && files.length > 0)
    console.log(`ok: ${files.length} reports rendered; ${path.join(OUT, 'report.png')}, report-print.png, report.pdf`);
process.exit(failed ? 1 : 0);
