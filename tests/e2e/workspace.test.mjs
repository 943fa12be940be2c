// workspace.test.mjs — browser tests of tandem's workspace (web/), run by tests/e2e/run.sh
// against a real `tandem serve` that it set up (support-triage, trained, ~300 messages in).
//
// Debian's chromium, headless, driven by playwright-core. Every wait is bounded; a failure
// prints what was expected and what the page showed, and saves a screenshot of it. The
// scenarios run in order (later ones read what earlier ones did) and each failure is
// counted; the last line says "N passed, N failed".

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
function need(name) {
    const v = process.env[name];
    if (!v) {
        console.error(`workspace.test.mjs: ${name} is not set (run it through tests/e2e/run.sh)`);
        process.exit(2);
    }
    return v;
}
const URL_ = need('TDM_URL');
const WORK = need('TDM_WORK');
const TOKENS = {
    admin: need('TDM_ADMIN_TOKEN'),
    ana: need('TDM_ANA_TOKEN'),
    olga: need('TDM_OLGA_TOKEN'),
    vic: need('TDM_VIC_TOKEN'),
    bob: need('TDM_BOB_TOKEN'),
    svc: need('TDM_SVC_TOKEN'),
};
const CHROMIUM = process.env.TDM_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.TDM_E2E_SCREENSHOTS || path.resolve(HERE, '../../build/e2e/screenshots');
const AXE = fs.readFileSync(path.join(HERE, 'node_modules/axe-core/axe.min.js'), 'utf8');
const T = 10000; /* the bound on any one wait, in ms */
fs.mkdirSync(SHOTS, { recursive: true });

/* ---- the API, as the test's own witness ---------------------------------------------- */

async function api(who, method, p, body) {
    const headers = { Authorization: 'Bearer ' + TOKENS[who] };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(URL_ + p, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(T),
    });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = text; }
    return { status: res.status, data };
}
async function apiOk(who, method, p, body) {
    const r = await api(who, method, p, body);
    assert.ok(r.status >= 200 && r.status < 300, `${method} ${p} as ${who}: status ${r.status}, expected 2xx: ${JSON.stringify(r.data)}`);
    return r.data;
}
const dashboardApi = async who => (await apiOk(who, 'GET', '/v1/processes/support-triage/dashboard?bucket=minute&points=60')).totals;

/* ---- the browser --------------------------------------------------------------------- */

const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
});
const pageProblems = []; /* script errors and CSP refusals, from every page */

async function newPage(who, viewport = { width: 1280, height: 800 }, { signedIn = false } = {}) {
    const context = await browser.newContext({ viewport, baseURL: URL_ });
    context.setDefaultTimeout(T);
    if (signedIn) {
        await context.addInitScript(tok => sessionStorage.setItem('tdm.token', tok), TOKENS[who]);
    }
    const page = await context.newPage();
    page.on('pageerror', e => pageProblems.push(`${who}: page error: ${e.message}`));
    page.on('console', m => {
        if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) pageProblems.push(`${who}: ${m.text()}`);
    });
    return page;
}

async function shot(page, name) {
    const file = path.join(SHOTS, name + '.png');
    /* Without the passing status toast, so that the picture shows the page itself. */
    await page.evaluate(() => { document.getElementById('status').textContent = ''; }).catch(() => {});
    await page.screenshot({ path: file, timeout: T });
    return file;
}

/* Reads the text of a test id, trimmed; '' when absent. */
const text = (page, testid) => page.evaluate(id => {
    const el = document.querySelector(`[data-testid="${id}"]`);
    return el ? el.textContent.trim() : '';
}, testid);
const numberAt = async (page, testid) => {
    const t = await text(page, testid);
    const n = Number(t.replace(/[^0-9.\-]/g, ''));
    assert.ok(t !== '' && !Number.isNaN(n), `[data-testid=${testid}] should show a number; it shows "${t}"`);
    return n;
};
const mainText = page => page.evaluate(() => document.getElementById('main').innerText.slice(0, 600));

/* Waits for fn (run in the page) to be truthy; on timeout says what was awaited and what
 * the page showed. */
async function waitUntil(page, what, fn, arg) {
    try {
        await page.waitForFunction(fn, arg, { timeout: T, polling: 100 });
    } catch (e) {
        throw new Error(`timed out after ${T} ms waiting for ${what}; the page shows:\n${await mainText(page).catch(() => '?')}`);
    }
}

const axeFindings = [];
async function axe(page, name) {
    await page.evaluate(AXE);
    const violations = await page.evaluate(async () => {
        const r = await window.axe.run(document, { resultTypes: ['violations'] });
        return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + n.failureSummary) }));
    });
    const bad = violations.filter(v => v.impact === 'serious' || v.impact === 'critical');
    const minor = violations.filter(v => !bad.includes(v));
    console.log(`  axe ${name}: ${bad.length} serious or critical, ${minor.length} other` + (minor.length ? ' (' + minor.map(v => v.id + '/' + v.impact).join(', ') + ')' : ''));
    for (const v of bad) axeFindings.push(`${name}: ${v.id} (${v.impact}) ${v.help}\n    ${v.nodes.join('\n    ')}`);
    assert.equal(bad.length, 0, `axe on ${name}: serious or critical violations:\n` + bad.map(v => `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.join('\n    ')}`).join('\n'));
}

async function signIn(page, who) {
    await page.goto('/#/signin', { timeout: T });
    await page.waitForSelector('#token', { timeout: T });
    /* The field has the focus: type the token and press Enter, as a person would. */
    await waitUntil(page, 'the token field to have the focus', () => document.activeElement && document.activeElement.id === 'token');
    await page.keyboard.type(TOKENS[who]);
    await page.keyboard.press('Enter');
    await waitUntil(page, `${who} signed in`, n => (document.getElementById('whoname') || {}).textContent?.startsWith(n), who);
}

async function go(page, hash, ready) {
    await page.evaluate(h => { location.hash = h; }, hash);
    if (ready) await page.waitForSelector(ready, { timeout: T });
}

/* ---- scenarios ----------------------------------------------------------------------- */

let passed = 0, failed = 0;
const failures = [];
async function scenario(name, fn) {
    const t0 = Date.now();
    console.log(`- ${name}`);
    try {
        await fn();
        passed++;
        console.log(`ok: ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
        failed++;
        failures.push(name);
        console.log(`FAIL: ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n  ${String(e && e.stack || e).split('\n').join('\n  ')}`);
    }
}
/* Saves a screenshot of a page that a failed scenario left, for the person who reads the log. */
async function keepOnFailure(page, name, fn) {
    try {
        await fn();
    } catch (e) {
        const f = await shot(page, 'failed-' + name).catch(() => null);
        if (f) e.message += `\n  (screenshot: ${f})`;
        throw e;
    }
}

const submitted = fs.readFileSync(path.join(WORK, 'submitted.jsonl'), 'utf8').trim().split('\n').map(l => JSON.parse(l));
const decided = submitted.filter(r => r.status === 'decided');
const restLines = fs.readFileSync(path.join(WORK, 'rest.jsonl'), 'utf8').trim().split('\n').map(l => JSON.parse(l));

const ana = await newPage('ana');
const olga = await newPage('olga');
const work = []; /* what ana did in scenario 2: {task, item, action, value, proposal} */
let before = null, beforeDom = null;

await scenario('1. ana signs in with her token; the inbox shows the support queue and counts live', () => keepOnFailure(ana, 'inbox', async () => {
    await ana.goto('/', { timeout: T });
    await ana.waitForSelector('#token', { timeout: T });
    await shot(ana, 'signin');
    await axe(ana, 'sign-in');
    /* A wrong token is refused plainly, and so is a service token (made for machines). */
    await ana.keyboard.type('tdm_not_a_token');
    await ana.keyboard.press('Enter');
    await waitUntil(ana, 'the sign-in to refuse a wrong token', () => /unknown or revoked/.test(document.getElementById('signin-msg')?.textContent || ''));
    await ana.keyboard.press('Control+A');
    await ana.keyboard.press('Backspace');
    await ana.keyboard.type(TOKENS.svc);
    await ana.keyboard.press('Enter');
    await waitUntil(ana, 'the sign-in to turn a service token away', () => /service token/.test(document.getElementById('signin-msg')?.textContent || ''));
    assert.equal(await ana.evaluate(() => sessionStorage.getItem('tdm.token')), null, 'a service token must not be kept');
    await ana.keyboard.press('Control+A');
    await ana.keyboard.press('Backspace');
    await ana.keyboard.type(TOKENS.ana);
    await ana.keyboard.press('Enter');
    await ana.waitForSelector('[data-testid="open-support"]', { timeout: T });
    const nav = await ana.$$eval('#navlist a', as => as.map(a => a.textContent));
    assert.deepEqual(nav, ['Inbox'], `a reviewer's navigation should offer the inbox only; it offers ${JSON.stringify(nav)}`);
    const queues = (await apiOk('ana', 'GET', '/v1/queues')).queues;
    const support = queues.find(q => q.queue === 'support');
    assert.ok(support && support.open > 20, `GET /v1/queues as ana should show support with more than 20 open tasks: ${JSON.stringify(queues)}`);
    const shown = await numberAt(ana, 'open-support');
    assert.equal(shown, support.open, `the inbox shows ${shown} open in support; the API says ${support.open}`);
    assert.equal(await ana.$('[data-queue="support-leads"]'), null, 'ana (scope: support) should not see support-leads in her inbox');
    await waitUntil(ana, 'the live badge', () => document.querySelector('[data-testid="live"]')?.textContent === 'Live');
    /* A message a person must see (a review rule names "fraud"), sent over the API: the count
     * moves without a reload, through the event stream. */
    const r = await apiOk('admin', 'POST', '/v1/processes/support-triage/items', { text: 'I think there is fraud on my account, someone used my card', customer: 'c-1' });
    assert.equal(r.status, 'queued', `a message with "fraud" should be queued: ${JSON.stringify(r)}`);
    await waitUntil(ana, `the open count of support to become ${support.open + 1} live`,
        n => Number(document.querySelector('[data-testid="open-support"]')?.textContent) === n, support.open + 1);
    await shot(ana, 'inbox');
    await axe(ana, 'inbox');
}));

await scenario('2. ana works 20 tasks by keyboard alone: accept, correct by type-ahead, escalate', () => keepOnFailure(ana, 'task', async () => {
    /* The owner's numbers before. */
    await signIn(olga, 'olga');
    await go(olga, '#/dashboard/support-triage', '[data-testid="human-answers"]');
    before = await dashboardApi('olga');
    beforeDom = { answers: await numberAt(olga, 'human-answers'), overrides: await numberAt(olga, 'overrides') };
    assert.equal(beforeDom.answers, before.human_answers, `the dashboard shows ${beforeDom.answers} human answers; the API says ${before.human_answers}`);

    /* From the inbox: Tab to the queue, Enter. */
    await ana.waitForSelector('[data-testid="work-support"]', { timeout: T });
    let found = false;
    for (let i = 0; i < 40 && !found; i++) {
        await ana.keyboard.press('Tab');
        found = await ana.evaluate(() => document.activeElement?.dataset?.testid === 'work-support');
    }
    assert.ok(found, 'Tab should reach the "Work support" control within 40 presses');
    const focusStyle = await ana.evaluate(() => getComputedStyle(document.activeElement).outlineStyle + ' ' + getComputedStyle(document.activeElement).outlineWidth);
    assert.match(focusStyle, /solid [2-9]/, `the focused control should show a solid outline of 2 px or more; it shows "${focusStyle}"`);
    await ana.keyboard.press('Enter');
    await ana.waitForSelector('[data-testid="task"]', { timeout: T });

    const plan = 'ACAEACAACEACAACAEACA'; /* 11 accept, 6 correct, 3 escalate */
    for (let i = 0; i < plan.length; i++) {
        const id = await ana.getAttribute('[data-testid="task"]', 'data-task-id', { timeout: T });
        const task = await apiOk('ana', 'GET', '/v1/tasks/' + encodeURIComponent(id));
        assert.equal(task.claimed_by, 'ana', `the task the queue opened (${id}) should be claimed by ana: ${task.state} ${task.claimed_by}`);
        const proposal = task.proposal && task.proposal.value;
        const shownProposal = await ana.getAttribute('[data-testid="proposal"]', 'data-value', { timeout: T });
        assert.equal(shownProposal, proposal, `task ${id}: the page proposes ${shownProposal}, the API ${proposal}`);
        if (i === 0) {
            const conf = await text(ana, 'confidence');
            assert.match(conf, /^\d+(\.\d)?%/, `the confidence should show as a percentage: "${conf}"`);
            const marks = await ana.$$eval('dd[data-field="text"] mark', ms => ms.length);
            assert.ok(marks > 0, 'the words behind the proposal should be highlighted (<mark>) in the text');
            const alts = await ana.$$eval('[data-testid="alternatives"] li', ls => ls.length);
            assert.equal(alts, task.alternatives.length, `the page lists ${alts} alternatives; the task has ${task.alternatives.length}`);
            await shot(ana, 'task');
            await axe(ana, 'task view');
            /* The help overlay lists the keys; Escape closes it. */
            await ana.keyboard.press('?');
            await waitUntil(ana, 'the help overlay', () => document.getElementById('help').open);
            await axe(ana, 'task view with the help overlay');
            await ana.keyboard.press('Escape');
            await waitUntil(ana, 'the help overlay to close', () => !document.getElementById('help').open);
        }
        /* A task drawn as an audit sample of the AI is accepted whatever the plan says: one
         * audited error is enough to pause the step automatically (its bound on three
         * samples is over the budget), which scenario 5 wants to do by hand. */
        const action = task.why === 'audit_sample' ? 'accept' : { A: 'accept', C: 'correct', E: 'escalate' }[plan[i]];
        let value;
        if (action === 'accept') {
            await ana.keyboard.press('a');
        } else if (action === 'correct') {
            /* Another label than the proposal: the first alternative, else any other choice. */
            value = (task.alternatives.find(a => a.value !== proposal) || {}).value || task.choices.find(c => c !== proposal);
            await ana.keyboard.press('c');
            await waitUntil(ana, 'the type-ahead to have the focus', () => document.activeElement?.id === 'correct');
            await ana.keyboard.type(value.slice(0, 4));
            let picked = false;
            for (let k = 0; k < 12 && !picked; k++) {
                picked = await ana.evaluate(v => {
                    const inp = document.getElementById('correct');
                    const opt = document.getElementById(inp.getAttribute('aria-activedescendant') || '-');
                    return !!opt && opt.textContent === v;
                }, value);
                if (!picked) await ana.keyboard.press('ArrowDown');
            }
            if (!picked) {
                /* Not among the first suggestions for its first letters: type it whole. */
                await ana.keyboard.press('Control+A');
                await ana.keyboard.type(value);
            }
            if (i === 1) await axe(ana, 'task view with the type-ahead open');
            await ana.keyboard.press('Enter');
        } else {
            /* With a comment: m focuses the box, Escape leaves it, e escalates. */
            await ana.keyboard.press('m');
            await waitUntil(ana, 'the comment box to have the focus', () => document.activeElement?.id === 'comment');
            await ana.keyboard.type('needs a team lead');
            await ana.keyboard.press('Escape');
            await ana.keyboard.press('e');
        }
        work.push({ task: id, item: task.item_id, action, value, proposal });
        await waitUntil(ana, `the next task after ${action} on ${id}`,
            prev => { const t = document.querySelector('[data-testid="task"]'); return t && t.dataset.taskId !== prev; }, id);
    }

    /* Every answer landed. */
    for (const w of work) {
        const t = await apiOk('admin', 'GET', '/v1/tasks/' + encodeURIComponent(w.task));
        if (w.action === 'escalate') {
            assert.equal(t.queue, 'support-leads', `escalated task ${w.task} should be in support-leads; it is in ${t.queue} (${t.state})`);
            assert.equal(t.state, 'open', `escalated task ${w.task} should be open in support-leads; it is ${t.state}`);
        } else {
            assert.equal(t.state, 'done', `task ${w.task} (${w.action}) should be done; it is ${t.state}`);
            assert.equal(t.action, w.action, `task ${w.task}: action ${t.action}, expected ${w.action}`);
            assert.equal(t.completed_by, 'ana', `task ${w.task}: completed by ${t.completed_by}, expected ana`);
            const item = await apiOk('admin', 'GET', '/v1/items/' + encodeURIComponent(w.item));
            const d = item.decisions[item.decisions.length - 1];
            const want = w.action === 'accept' ? w.proposal : w.value;
            assert.equal(d.value, want, `item ${w.item}: decision ${d.value}, expected ${want} (${w.action})`);
            assert.equal(d.by, 'person:ana', `item ${w.item}: decided by ${d.by}, expected person:ana`);
        }
    }
    const count = a => work.filter(w => w.action === a).length;
    console.log(`  answered ${work.length}: ${count('accept')} accepted, ${count('correct')} corrected, ${count('escalate')} escalated`);
}));

await scenario('3. the dashboard shows exactly what ana did', () => keepOnFailure(olga, 'dashboard', async () => {
    assert.ok(before && work.length === 20, 'needs scenario 2');
    const count = a => work.filter(w => w.action === a).length;
    const after = await dashboardApi('olga');
    const want = {
        human_answers: before.human_answers + count('accept') + count('correct'),
        overrides: before.overrides + count('correct'),
        decided_by_people: before.decided_by_people + count('accept') + count('correct'),
        escalations: before.escalations + count('escalate'),
    };
    for (const [k, v] of Object.entries(want)) {
        assert.equal(after[k], v, `dashboard API ${k}: ${after[k]}, expected ${v} (${before[k]} before ana's answers)`);
    }
    /* The page: refresh with its key and read the numbers beside the charts. */
    await olga.keyboard.press('r');
    await waitUntil(olga, `the dashboard to show ${want.human_answers} human answers`,
        n => Number(document.querySelector('[data-testid="human-answers"]')?.textContent) === n, want.human_answers);
    const dom = {
        human_answers: await numberAt(olga, 'human-answers'),
        overrides: await numberAt(olga, 'overrides'),
        decided_by_people: await numberAt(olga, 'decided-by-people'),
        decided_by_ai: await numberAt(olga, 'decided-by-ai'),
    };
    assert.equal(dom.human_answers - beforeDom.answers, count('accept') + count('correct'), `human answers on the page went from ${beforeDom.answers} to ${dom.human_answers}`);
    assert.equal(dom.overrides - beforeDom.overrides, count('correct'), `overrides on the page went from ${beforeDom.overrides} to ${dom.overrides}`);
    assert.equal(dom.decided_by_people, after.decided_by_people, `decided by people: page ${dom.decided_by_people}, API ${after.decided_by_people}`);
    assert.equal(dom.decided_by_ai, after.decided_by_ai, `decided by AI: page ${dom.decided_by_ai}, API ${after.decided_by_ai}`);
    const rate = await text(olga, 'override-rate');
    assert.equal(rate, (after.override_rate * 100).toFixed(1) + '%', `override rate: page "${rate}", API ${after.override_rate}`);
    const auto = await text(olga, 'automation-rate');
    assert.equal(auto, (after.automation_rate * 100).toFixed(1) + '%', `automation rate: page "${auto}", API ${after.automation_rate}`);
    const hours = await numberAt(olga, 'hours-saved');
    assert.ok(Math.abs(hours - after.hours_saved) < 0.051, `hours saved: page ${hours}, API ${after.hours_saved}`);
    const dq = (await apiOk('olga', 'GET', '/v1/processes/support-triage/dashboard')).queues.find(q => q.queue === 'support-leads');
    await waitUntil(olga, `support-leads to show ${dq.open} open`, n => Number(document.querySelector('[data-testid="queue-open-support-leads"]')?.textContent) === n, dq.open);
    const charts = await olga.$$eval('main svg[role="img"]', ss => ss.map(s => s.getAttribute('aria-label')));
    assert.ok(charts.length >= 5, `the dashboard should draw at least 5 labelled SVG charts; it draws ${charts.length}: ${charts.join(' | ')}`);
    const confusions = await olga.$$eval('[aria-labelledby="h-conf"] svg rect', rs => rs.length);
    assert.ok(confusions >= 1, 'top confusions should show the corrections as bars');
    assert.ok(await olga.$('[data-testid="pause-triage"]'), 'olga, owner of support-triage, should see the kill switch');
    await shot(olga, 'dashboard');
    await axe(olga, 'dashboard');
}));

await scenario('4. vic (viewer) sees the registry and the dashboard, and no pause or resume control anywhere', async () => {
    const vic = await newPage('vic');
    await keepOnFailure(vic, 'viewer', async () => {
        await signIn(vic, 'vic');
        const nav = await vic.$$eval('#navlist a', as => as.map(a => a.textContent));
        assert.deepEqual(nav, ['Inbox', 'Dashboard', 'Registry', 'Audit'], `a viewer's navigation: ${JSON.stringify(nav)}`);
        const noKillSwitch = async where => {
            const found = await vic.evaluate(() => [...document.querySelectorAll('button, a, [role="button"]')]
                .filter(b => /pause|resume/i.test(b.textContent) || /^(pause|resume)-/.test(b.dataset.testid || ''))
                .map(b => b.textContent.trim()));
            assert.deepEqual(found, [], `${where}: a viewer should see no pause or resume control; found ${JSON.stringify(found)}`);
        };
        await go(vic, '#/registry', '[data-testid="registry"]');
        await vic.waitForSelector('[data-usecase="support-triage/triage"]', { timeout: T });
        await noKillSwitch('registry');
        await go(vic, '#/dashboard/support-triage', '[data-testid="human-answers"]');
        await noKillSwitch('dashboard');
        await go(vic, '#/inbox', '[data-testid="open-support"]');
        await noKillSwitch('inbox');
        assert.equal(await vic.$('[data-testid="work-support"]'), null, 'a viewer should get no "work this queue" control');
        await go(vic, '#/audit', '[data-testid="audit"]');
        await noKillSwitch('audit');
        await go(vic, '#/item/' + encodeURIComponent(decided[0].id), '[data-testid="decision"]');
        await noKillSwitch('item page');
        assert.equal(await vic.$('[data-testid="accurate"]'), null, 'a viewer should get no feedback buttons');
    });
    await vic.context().close();
});

await scenario('5. olga pauses the triage step with the kill switch: the next item queues (why: paused); then resumes', () => keepOnFailure(olga, 'kill-switch', async () => {
    await go(olga, '#/registry', '[data-usecase="support-triage/triage"]');
    await shot(olga, 'registry');
    await axe(olga, 'registry');
    /* A message the AI decided alone, confidently. */
    const sure = decided.slice().sort((a, b) => b.decision.confidence - a.decision.confidence)[0];
    const state = (await apiOk('admin', 'GET', '/v1/processes/support-triage')).steps.find(s => s.id === 'triage');
    assert.equal(state.paused, false, `the triage step should be running before olga pauses it; it is paused: ${state.pause_reason}`);
    const fields = (await apiOk('admin', 'GET', '/v1/items/' + encodeURIComponent(sure.id))).fields;
    await olga.click('[data-testid="pause-triage"]');
    await waitUntil(olga, 'the confirmation dialog', () => document.getElementById('confirm').open);
    await olga.keyboard.type('checking complaints about card routing');
    await axe(olga, 'registry with the kill switch dialog open');
    await olga.click('#confirm-ok');
    await olga.waitForSelector('[data-testid="resume-triage"]', { timeout: T });
    assert.equal(await text(olga, 'state-triage'), 'paused', 'the registry should say the step is paused');
    const step = (await apiOk('admin', 'GET', '/v1/processes/support-triage')).steps.find(s => s.id === 'triage');
    assert.equal(step.paused, true, `GET /v1/processes/support-triage: triage paused ${step.paused}`);
    assert.equal(step.pause_reason, 'checking complaints about card routing', `pause reason: ${step.pause_reason}`);
    const r = await apiOk('admin', 'POST', '/v1/processes/support-triage/items', { text: fields.text, customer: 'c-5' });
    assert.equal(r.status, 'queued', `while paused, "${fields.text}" (decided alone at ${sure.decision.confidence}) should be queued: ${JSON.stringify(r)}`);
    const t = await apiOk('admin', 'GET', '/v1/tasks/' + encodeURIComponent(r.task_id));
    assert.equal(t.why, 'paused', `the queued task's why: ${t.why}, expected paused`);
    /* The dashboard says so too, and resumes. */
    await go(olga, '#/dashboard/support-triage', '[data-testid="resume-triage"]');
    assert.equal(await text(olga, 'state-triage'), 'paused', 'the dashboard should say the step is paused');
    await olga.click('[data-testid="resume-triage"]');
    await waitUntil(olga, 'the confirmation dialog', () => document.getElementById('confirm').open);
    await olga.click('#confirm-ok');
    await olga.waitForSelector('[data-testid="pause-triage"]', { timeout: T });
    const again = (await apiOk('admin', 'GET', '/v1/processes/support-triage')).steps.find(s => s.id === 'triage');
    assert.equal(again.paused, false, 'after resume the step should not be paused');
    const r2 = await apiOk('admin', 'POST', '/v1/processes/support-triage/items', { text: fields.text, customer: 'c-5' });
    if (r2.status === 'queued') {
        /* Only the random audit sample (2%) may still send it to a person. */
        const t2 = await apiOk('admin', 'GET', '/v1/tasks/' + encodeURIComponent(r2.task_id));
        assert.equal(t2.why, 'audit_sample', `after resume the item should be decided by the AI (or sampled for audit): why ${t2.why}`);
    } else {
        assert.equal(r2.status, 'decided', `after resume: ${JSON.stringify(r2)}`);
    }
    /* Both switches are on the audit trail, with olga as the actor; the audit page filters them. */
    const audit = await apiOk('admin', 'GET', '/v1/audit?actor=olga&limit=100');
    const events = audit.entries.map(e => e.event);
    assert.ok(events.some(e => /paused/.test(e)) && events.some(e => /resumed/.test(e)), `the audit trail should show olga's pause and resume: ${JSON.stringify(events)}`);
    await go(olga, '#/audit?actor=olga', '[data-testid="chain"]');
    await olga.waitForSelector('[data-testid="audit"]', { timeout: T });
    const rows = await olga.$$eval('[data-testid="audit"] tbody tr', trs => trs.map(tr => tr.children[2].textContent));
    assert.ok(rows.length >= 2 && rows.every(a => a === 'olga'), `the audit page filtered by actor olga shows actors ${JSON.stringify(rows)}`);
    const chain = await text(olga, 'chain');
    assert.match(chain, /^Chain verified/, `the audit page should say the chain verifies: "${chain}"`);
    await shot(olga, 'audit');
    await axe(olga, 'audit (filtered)');
    /* Unfiltered, it opens on the latest entries, and pages back. */
    await go(olga, '#/audit', '[data-testid="audit-prev"]');
    const total = (await apiOk('admin', 'GET', '/v1/audit/verify')).entries;
    const seqs = await olga.$$eval('[data-testid="audit"] tbody tr', trs => trs.map(tr => Number(tr.children[0].textContent)));
    assert.equal(seqs[seqs.length - 1], total, `the unfiltered audit page should end on the latest entry ${total}; it ends on ${seqs[seqs.length - 1]}`);
    await axe(olga, 'audit');
}));

await scenario('6. feedback: one click "Accurate" on an AI decision; "Inaccurate" with a correction', () => keepOnFailure(ana, 'feedback', async () => {
    const [one, two] = decided.slice(-2);
    await go(ana, '#/item/' + encodeURIComponent(one.id), '[data-testid="accurate"]');
    await ana.click('[data-testid="accurate"]');
    await waitUntil(ana, 'the accurate verdict to show on the decision',
        () => /accurate by ana/.test(document.querySelector('[data-testid="feedback"]')?.textContent || ''));
    let item = await apiOk('admin', 'GET', '/v1/items/' + encodeURIComponent(one.id));
    let fb = item.decisions.find(d => d.id === one.decision.id).feedback;
    assert.ok(fb.some(f => f.verdict === 'accurate' && f.by === 'ana'), `GET /v1/items/${one.id}: feedback ${JSON.stringify(fb)}`);

    await go(ana, '#/item/' + encodeURIComponent(two.id), '[data-testid="inaccurate"]');
    const dec = (await apiOk('admin', 'GET', '/v1/items/' + encodeURIComponent(two.id))).decisions.find(d => d.id === two.decision.id);
    const correction = ['card_arrival', 'card_linking'].find(c => c !== dec.value && dec.choices.includes(c)) || dec.choices.find(c => c !== dec.value);
    await ana.click('[data-testid="inaccurate"]');
    const input = '#fix-' + two.decision.id;
    await ana.waitForSelector(input, { state: 'visible', timeout: T });
    await ana.fill(input, correction);
    await ana.keyboard.press('Enter');
    await waitUntil(ana, 'the correction to be picked', c => document.querySelector('[data-testid="picked"]')?.textContent === 'Correction: ' + c, correction);
    await ana.keyboard.type('the customer asks about something else');
    await shot(ana, 'item');
    await axe(ana, 'item page');
    await ana.click('[data-testid="send-inaccurate"]');
    await waitUntil(ana, 'the inaccurate verdict to show with its correction',
        c => { const t = document.querySelector('[data-testid="feedback"]')?.textContent || ''; return /inaccurate by ana/.test(t) && t.includes(c); }, correction);
    item = await apiOk('admin', 'GET', '/v1/items/' + encodeURIComponent(two.id));
    fb = item.decisions.find(d => d.id === two.decision.id).feedback;
    assert.ok(fb.some(f => f.verdict === 'inaccurate' && f.by === 'ana' && f.correction === correction && f.comment === 'the customer asks about something else'),
        `GET /v1/items/${two.id}: feedback ${JSON.stringify(fb)}, expected inaccurate by ana with correction ${correction}`);
}));

await scenario('9. the dashboard page weighs under 200 KB, everything included', async () => {
    const page = await newPage('olga', { width: 1280, height: 800 }, { signedIn: true });
    const sizes = [];
    page.on('response', async res => {
        if (res.url().includes('/v1/events')) return; /* a stream without end */
        try { sizes.push([res.url().replace(URL_, ''), (await res.body()).length]); } catch { /* redirects have none */ }
    });
    await page.goto('/#/dashboard/support-triage', { timeout: T });
    await page.waitForSelector('[data-testid="human-answers"]', { timeout: T });
    await page.waitForTimeout(500);
    const total = sizes.reduce((a, [, n]) => a + n, 0);
    console.log(`  page weight: ${total} bytes in ${sizes.length} responses: ` + sizes.map(([u, n]) => `${u} ${n}`).join(', '));
    assert.ok(total < 200 * 1024, `the dashboard page weighs ${total} bytes, expected under ${200 * 1024}`);
    await page.context().close();
});

await scenario('10. on a phone (375 × 740) the inbox and the task view fit the width', async () => {
    const page = await newPage('ana', { width: 375, height: 740 }, { signedIn: true });
    await keepOnFailure(page, 'phone', async () => {
        await page.goto('/#/inbox', { timeout: T });
        await page.waitForSelector('[data-testid="open-support"]', { timeout: T });
        const w1 = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(w1 <= 375, `the inbox is ${w1} px wide on a 375 px phone`);
        await shot(page, 'inbox-phone');
        await go(page, '#/queue/support', '[data-testid="task"]');
        const w2 = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(w2 <= 375, `the task view is ${w2} px wide on a 375 px phone`);
        await shot(page, 'task-phone');
        await axe(page, 'task view on a phone');
    });
    await page.context().close();
});

await scenario('7. a task claimed by someone else, opened directly, says plainly who has it', () => keepOnFailure(ana, 'claimed', async () => {
    const r = await api('bob', 'POST', '/v1/queues/support/next', {});
    assert.equal(r.status, 200, `bob claims the next support task: status ${r.status} ${JSON.stringify(r.data)}`);
    const id = r.data.id;
    await go(ana, '#/task/' + encodeURIComponent(id), '[data-testid="task"]');
    const banner = await text(ana, 'task-problem');
    assert.match(banner, /claimed by bob until \d\d:\d\d/, `the task page should say who holds the task: "${banner}"`);
    assert.equal(await ana.$eval('[data-testid="accept"]', b => b.disabled), true, 'accept should be disabled on a task someone else holds');
    await axe(ana, 'task view of a task someone else holds');
    await ana.keyboard.press('a');
    await ana.waitForTimeout(300);
    const t = await apiOk('admin', 'GET', '/v1/tasks/' + encodeURIComponent(id));
    assert.equal(t.claimed_by, 'bob', `the a key must not answer bob's task: ${t.state} ${t.claimed_by}`);
    /* A claim taken under ana's feet: the server's 409 is shown as it is. */
    const mine = await apiOk('ana', 'POST', '/v1/queues/support/next', {});
    await go(ana, '#/task/' + encodeURIComponent(mine.id), '[data-testid="accept"]');
    await apiOk('admin', 'POST', '/v1/processes/support-triage/items', { id: mine.item_id, ...mine.item, text: mine.item.text + ' (edited)' });
    await ana.keyboard.press('a');
    await waitUntil(ana, 'the conflict to be shown', () => /not recorded/.test(document.querySelector('[data-testid="task-problem"]')?.textContent || ''));
    const conflict = await text(ana, 'task-problem');
    console.log(`  409 shown as: "${conflict}"`);
    await axe(ana, 'task view after a conflict');
}));

await scenario('11. a second look: ana corrects a proposal the AI was sure of; bob sees why it waits and confirms it with y', async () => {
    /* A process of its own, in the support queue: two intents told apart by one word,
     * every item to a person (hybrid), a second look from 60% confidence. */
    const raw = async (method, p, type, body) => {
        const res = await fetch(URL_ + p, { method, headers: { Authorization: 'Bearer ' + TOKENS.admin, 'Content-Type': type }, body, signal: AbortSignal.timeout(30000) });
        assert.ok(res.ok, `${method} ${p}: status ${res.status} ${await res.text()}`);
    };
    await raw('PUT', '/v1/processes/second-look', 'application/yaml', [
        'process: second-look', 'owner: olga@example.com', 'kpis: [misrouted_share]',
        'baseline: {minutes_per_item: 2, error_rate: 0.05}', 'steps:', '  - id: sort', '    allocation: hybrid',
        '    owner: olga@example.com', '    inputs: [text]', '    output: {field: intent, labels: [billing, account]}',
        '    guardrails: {queue: support, second_look: 0.6}', ''].join('\n'));
    const rows = ['text,intent'];
    for (let i = 0; i < 40; i++) rows.push(i % 2 ? `"please reset my password, ticket ${i}",account` : `"question ${i} about my invoice",billing`);
    await raw('POST', '/v1/processes/second-look/train', 'text/csv', rows.join('\n') + '\n');
    const item = await apiOk('admin', 'POST', '/v1/processes/second-look/items', { text: 'a question about my invoice' });
    assert.equal(item.status, 'queued', `the item should wait for a person: ${JSON.stringify(item)}`);
    assert.equal(item.proposal.value, 'billing');
    assert.ok(item.proposal.confidence >= 0.6, `the AI should be sure: ${item.proposal.confidence}`);
    await apiOk('ana', 'POST', `/v1/tasks/${item.task_id}/claim`, {});
    const first = await apiOk('ana', 'POST', `/v1/tasks/${item.task_id}/complete`, { action: 'correct', value: 'account' });
    assert.equal(first.awaiting_confirmation, true, `ana's correction should wait: ${JSON.stringify(first)}`);
    /* ana herself is told that someone else must confirm. */
    await go(ana, '#/task/' + encodeURIComponent(item.task_id), '[data-testid="task-confirming"]');
    const own = await text(ana, 'task-confirming');
    assert.match(own, /^Second look: .*ana answered correct → account\. Someone else must confirm it\./, `ana's view: "${own}"`);
    /* bob sees why, and confirms with the keyboard. */
    const bob = await newPage('bob', { width: 1280, height: 800 }, { signedIn: true });
    await keepOnFailure(bob, 'second-look', async () => {
        await bob.goto('/#/task/' + encodeURIComponent(item.task_id), { timeout: T });
        await bob.waitForSelector('[data-testid="task-confirming"]', { timeout: T });
        const banner = await text(bob, 'task-confirming');
        assert.match(banner, /^Second look: the answer contradicts a proposal the AI was sure of/, `bob's view: "${banner}"`);
        await shot(bob, 'second-look');
        await axe(bob, 'task view of an answer waiting for a second look');
        await bob.keyboard.press('y');
        let t;
        for (let i = 0; i < 50; i++) {
            t = await apiOk('admin', 'GET', '/v1/tasks/' + encodeURIComponent(item.task_id));
            if (t.state === 'done') break;
            await bob.waitForTimeout(100);
        }
        assert.equal(t.state, 'done', `the task should be done after bob's y: ${t.state}`);
        const it = await apiOk('admin', 'GET', '/v1/items/' + encodeURIComponent(item.id));
        const d = it.decisions.find(x => x.step === 'sort');
        assert.ok(d && d.value === 'account' && d.by === 'person:ana' && d.confirmed_by === 'bob', `the decision: ${JSON.stringify(d)}`);
    });
    await bob.context().close();
});

await scenario('8. axe-core found no serious or critical violation on any page, and no page broke the CSP', async () => {
    /* Each page's axe run is in the scenario that showed it; this collects them. */
    assert.deepEqual(axeFindings, [], 'axe violations:\n' + axeFindings.join('\n'));
    assert.deepEqual(pageProblems, [], 'script errors or CSP refusals:\n' + pageProblems.join('\n'));
});

await browser.close();
console.log(`screenshots: ${SHOTS}`);
if (failures.length) console.log('failed: ' + failures.join('; '));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
