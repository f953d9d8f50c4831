// A person using the self-service site, in Debian's headless Chromium driven
// by playwright-core (no browser download of its own).
//
// usage: node selfservice.mjs BASE_URL OUT_DIR STEP ARGS...
//   refusals USER WRONG_PASSWORD UNKNOWN_USER
//       the sign-in page, then a wrong password for USER and any password
//       for UNKNOWN_USER: {known: {status, text}, unknown: {status, text}}
//   enrol USER PASSWORD
//       sign in with the password alone, set up an authenticator on the
//       account page (QR code shown, the code computed from the key shown,
//       confirmed), sign out: {qr, secret, note, signedOut}
//   signin USER PASSWORD SECRET PROFILE_FILE
//       sign in with password and code, download the first server's profile
//       into PROFILE_FILE; the session is kept in OUT_DIR/state.json:
//       {title, filename}
//   usage
//       with the kept session: the overview's exact bytes used and its
//       connections table, also on a phone-sized screen: {exact, sessions}
// Screenshots go to OUT_DIR/shots/NAME.png. The result is one JSON line on
// stdout; a step that cannot be done throws (exit 1).
import { chromium } from "playwright-core";
import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";

const [base, out, step, ...args] = process.argv.slice(2);
mkdirSync(`${out}/shots`, { recursive: true });
const state = `${out}/state.json`;

function base32(s) {
    const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bits = "";
    for (const c of s.replace(/[\s=]/g, "").toUpperCase()) {
        const v = abc.indexOf(c);
        if (v < 0) throw new Error(`not base32: ${c}`);
        bits += v.toString(2).padStart(5, "0");
    }
    const bytes = [];
    for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
    return Buffer.from(bytes);
}

// RFC 6238 code of the step `offset` steps from now. Never within 2 s of a
// step's end, so that the step it is checked in is the one it was made for.
async function totp(secret, offset) {
    while (30 - ((Date.now() / 1000) % 30) < 2) await new Promise((r) => setTimeout(r, 250));
    const counter = Buffer.alloc(8);
    counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + offset));
    const h = createHmac("sha1", base32(secret)).update(counter).digest();
    const o = h[19] & 15;
    return String((h.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, "0");
}

// The site's certificate is trusted by its key (SITE_SPKI: base64 SHA-256 of
// its public key), so that the origin counts as secure, as a real site's
// would: Chromium refuses downloads from a page whose certificate it merely
// ignores.
const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage", `--ignore-certificate-errors-spki-list=${process.env.SITE_SPKI}`],
});
const shot = (page, name) => page.screenshot({ path: `${out}/shots/${name}.png`, fullPage: true });

// Submit the page's form whose button says `label`; the response it led to.
async function submit(page, label) {
    const [resp] = await Promise.all([
        page.waitForNavigation(),
        page.getByRole("button", { name: label }).click(),
    ]);
    return resp;
}

async function signIn(page, user, password, code) {
    await page.goto(`${base}/signin`);
    await page.fill("input[name=username]", user);
    await page.fill("input[name=password]", password);
    if (code) await page.fill("input[name=code]", code);
    return submit(page, "Sign in");
}

let result;
try {
    const ctx = await browser.newContext({
        acceptDownloads: true,
        storageState: step === "usage" ? state : undefined,
        viewport: { width: 1000, height: 700 },
    });
    const page = await ctx.newPage();
    if (step === "refusals") {
        const [user, wrong, unknown] = args;
        await page.goto(`${base}/signin`);
        await shot(page, "signin");
        const attempt = async (u) => {
            const resp = await signIn(page, u, wrong);
            return { status: resp.status(), text: await page.locator("main").innerText() };
        };
        const known = await attempt(user);
        await shot(page, "signin-refused");
        result = { known, unknown: await attempt(unknown) };
    } else if (step === "enrol") {
        const [user, password] = args;
        await signIn(page, user, password);
        if (!page.url().endsWith("/")) throw new Error(`sign-in ended at ${page.url()}`);
        await page.goto(`${base}/account`);
        await submit(page, "Set up authenticator");
        const qr = await page.locator(".qr svg").count();
        const secret = (await page.locator(".secret").innerText()).replace(/\s/g, "");
        await shot(page, "account-enrol");
        await page.fill("input[name=code]", await totp(secret, -1));
        await submit(page, "Turn on");
        const note = await page.locator(".note").innerText();
        await shot(page, "account");
        await submit(page, "Sign out");
        result = { qr: qr === 1, secret, note, signedOut: page.url().endsWith("/signin?m=signed-out") };
    } else if (step === "signin") {
        const [user, password, secret, file] = args;
        await signIn(page, user, password, await totp(secret, 0));
        const title = await page.locator("h1").innerText();
        await shot(page, "overview");
        const [download] = await Promise.all([
            page.waitForEvent("download"),
            page.getByRole("link", { name: "Download profile" }).first().click(),
        ]);
        await download.saveAs(file);
        await ctx.storageState({ path: state });
        result = { title, filename: download.suggestedFilename() };
    } else if (step === "usage") {
        await page.goto(`${base}/`);
        const exact = await page.locator("#usage .exact").innerText();
        const sessions = await page.locator("#sessions").innerText();
        await shot(page, "overview-usage");
        await page.setViewportSize({ width: 390, height: 844 });
        await page.reload();
        await shot(page, "overview-phone");
        result = { exact, sessions };
    } else {
        throw new Error(`unknown step ${step}`);
    }
} finally {
    await browser.close();
}
console.log(JSON.stringify(result));
